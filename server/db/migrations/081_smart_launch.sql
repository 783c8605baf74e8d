-- SMART App Launch, EHR launch (server/auth/launch.ts, server/auth/app-auth.ts): the launch contexts a HIS
-- creates (POST /auth/launch) and the authorization codes the platform issues for them (GET /auth/authorize).
-- Only a SHA-256 of each opaque value is stored. Both are single-use (used_at) and short-lived (expires_at),
-- in the database so that every server process sharing it honours them. `his_user`: the user as the HIS
-- asserts it (JSON: a Practitioner reference, an identifier, a login) — recorded in the audit trail, no name.
CREATE TABLE smart_launch (
  launch_hash   text        PRIMARY KEY,
  client_id     text        NOT NULL,
  organization  text        NOT NULL,
  patient_id    text        NOT NULL,
  encounter_id  text,
  his_user      text        NOT NULL,
  created_at    timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL,
  used_at       timestamptz
);
CREATE INDEX smart_launch_expires ON smart_launch (expires_at);

-- `replayed_at`: a second use of the code was attempted; the access token issued for it stops working.
CREATE TABLE smart_code (
  code_hash       text        PRIMARY KEY,
  launch_hash     text        NOT NULL,
  app_id          text        NOT NULL,
  redirect_uri    text        NOT NULL,
  code_challenge  text        NOT NULL,
  scope           text        NOT NULL,
  expires_at      timestamptz NOT NULL,
  used_at         timestamptz,
  replayed_at     timestamptz
);
CREATE INDEX smart_code_expires ON smart_code (expires_at);
