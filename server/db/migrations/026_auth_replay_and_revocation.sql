-- SMART Backend Services and CDS client JWTs (server/auth/keys.ts): the `jti` of every accepted client
-- assertion and CDS client JWT, kept until the JWT expires, so that a captured one cannot be used again —
-- not after a restart, not on another server sharing this database. `kind`: 'client-assertion' | 'cds-jwt'.
CREATE TABLE auth_jti (
  kind        text        NOT NULL,
  issuer      text        NOT NULL,
  jti         text        NOT NULL,
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (kind, issuer, jti)
);
CREATE INDEX auth_jti_expires ON auth_jti (expires_at);

-- Access tokens revoked per client (server/auth/backend.ts, POST /auth/revoke): every token of the client
-- issued before `revoked_before` is refused on use. By whom: a principal id, never a person's name.
CREATE TABLE auth_revocation (
  client_id       text        PRIMARY KEY,
  revoked_before  timestamptz NOT NULL,
  revoked_at      timestamptz NOT NULL DEFAULT now(),
  revoked_by      text        NOT NULL
);
