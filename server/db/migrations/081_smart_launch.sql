-- SMART App Launch, EHR launch (server/auth/launch.ts): the launch contexts a HIS creates (POST /auth/launch),
-- each naming the patient, the HIS client and its institution. Only a SHA-256 of the opaque launch value is
-- stored; it is used once (used_at, by GET /auth/authorize) and lives 5 minutes (expires_at), in the database
-- so that every server process sharing it honours it. `his_user`: the user as the HIS asserts it (JSON: a
-- Practitioner reference, an identifier, the HIS login) — recorded in the audit trail; never a name.
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

-- The authorization codes GET /auth/authorize issues for a spent launch (server/auth/app-auth.ts): a SHA-256 of
-- the code, the app, its redirect URI, the PKCE S256 challenge and the granted scopes; used once (used_at, by
-- POST /auth/token), valid 60 s. `replayed_at`: the code was presented again, and the access token issued for
-- it stops working.
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
