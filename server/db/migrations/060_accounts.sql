-- Human accounts (server/accounts/): the platform's own tables for the people who sign in — administrators,
-- doctors, auditors. Their FHIR face is a Practitioner + PractitionerRole (DESIGN.md §3); the secrets live here.
-- Passwords are argon2id hashes; the TOTP secret is the second factor every human must have.
CREATE TABLE account (
  id                    text        PRIMARY KEY,
  login                 text        NOT NULL,
  password_hash         text        NOT NULL,
  password_set_at       timestamptz NOT NULL,
  must_change_password  boolean     NOT NULL DEFAULT true,
  failed_attempts       integer     NOT NULL DEFAULT 0,
  locked_until          timestamptz,
  totp_secret           text,
  totp_last_step        bigint,
  status                text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  roles                 text[]      NOT NULL DEFAULT '{}',
  institution           text,
  practitioner          text,
  practitioner_role     text,
  created_at            timestamptz NOT NULL,
  updated_at            timestamptz NOT NULL,
  -- 三权分立: no account holds two of the system, security and audit administrator roles (the API refuses first)
  CONSTRAINT account_separation_of_duties CHECK (
    (CASE WHEN 'system-admin' = ANY (roles) THEN 1 ELSE 0 END) +
    (CASE WHEN 'security-admin' = ANY (roles) THEN 1 ELSE 0 END) +
    (CASE WHEN 'audit-admin' = ANY (roles) THEN 1 ELSE 0 END) <= 1
  )
);
CREATE UNIQUE INDEX account_login ON account (lower(login));

-- The last password hashes of each account (a new password may not repeat one of the last five).
CREATE TABLE account_password_history (
  account_id     text        NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  password_hash  text        NOT NULL,
  set_at         timestamptz NOT NULL
);
CREATE INDEX account_password_history_account ON account_password_history (account_id, set_at DESC);
