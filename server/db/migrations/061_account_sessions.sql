-- Sign-in state (server/accounts/): a login in progress waiting for its second factor (stage 'totp', or
-- 'enrolment' with the secret being enrolled), and the sessions it yields ('active'). Only a SHA-256 of each
-- opaque random token is stored; idle and absolute expiry are checked on every use.
CREATE TABLE account_session (
  token_hash      text        PRIMARY KEY,
  account_id      text        NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  stage           text        NOT NULL CHECK (stage IN ('totp', 'enrolment', 'active')),
  pending_secret  text,
  created_at      timestamptz NOT NULL,
  last_seen_at    timestamptz NOT NULL,
  expires_at      timestamptz NOT NULL
);
CREATE INDEX account_session_account ON account_session (account_id);
CREATE INDEX account_session_expires ON account_session (expires_at);
