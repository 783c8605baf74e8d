-- Asynchronous requests (FHIR async pattern, Prefer: respond-async): the request as received, its state,
-- and its result, kept until `expires_at`. A lease lets another worker (or the same server after a restart)
-- take over a job whose worker died.

CREATE TABLE async_job (
  id           text        PRIMARY KEY,
  status       text        NOT NULL, -- pending | running | done | cancelled
  request      jsonb       NOT NULL,
  principal    jsonb       NOT NULL,
  base_url     text        NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  lease_until  timestamptz,
  attempts     integer     NOT NULL DEFAULT 0,
  result       jsonb,
  expires_at   timestamptz
);
CREATE INDEX async_job_claim ON async_job (status, created_at);
CREATE INDEX async_job_expiry ON async_job (expires_at);
