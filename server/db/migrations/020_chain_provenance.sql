-- Chain provenance (DESIGN.md §4, §5; docs/chain-provenance.md).
--
-- report_original: a submitted transaction Bundle exactly as received (the original, 原件), with its
-- fingerprint. report_version: one row per DiagnosticReport version - its original (if it came in a
-- transaction Bundle), its hash-consistency status and why. report_member: the stored resources of a report
-- version (the DiagnosticReport, its results and imaging studies) with a digest and the row version (xmin)
-- taken when they were written, so the sweep notices a change made behind the server's back.
-- report_anchor: every chain anchor claimed for a report version (by the institution, in a chain
-- Provenance) or made by the platform, and what the chain said about it.
-- anchor_outbox / anchor_batch: the durable outbox of platform-side anchoring (reports of institutions that
-- do not anchor themselves, recognition records): one RFC 9162 tree and one transaction per batch.

CREATE TABLE report_original (
  id           text        PRIMARY KEY,
  received_at  timestamptz NOT NULL DEFAULT now(),
  raw          text        NOT NULL,
  raw_exact    boolean     NOT NULL,
  raw_digest   text        NOT NULL,
  alg          text        NOT NULL,
  fingerprint  text        NOT NULL
);

CREATE TABLE report_version (
  report_id          text        NOT NULL,
  version            integer     NOT NULL,
  current            boolean     NOT NULL DEFAULT true,
  created_at         timestamptz NOT NULL DEFAULT now(),
  original_id        text        REFERENCES report_original (id),
  original_xmin      text,
  alg                text,
  fingerprint        text,
  performer          text,
  integrity_ok       boolean     NOT NULL DEFAULT true,
  integrity_reasons  jsonb       NOT NULL DEFAULT '[]',
  chain_status       text        NOT NULL,
  chain_reasons      jsonb       NOT NULL DEFAULT '[]',
  anchor_source      text,
  ledger             text,
  tx_id              text,
  height             bigint,
  block_hash         text,
  root               text,
  checked_at         timestamptz,
  swept_at           timestamptz,
  status             text GENERATED ALWAYS AS (CASE WHEN integrity_ok THEN chain_status ELSE 'inconsistent' END) STORED,
  PRIMARY KEY (report_id, version)
);
CREATE INDEX report_version_current ON report_version (report_id) WHERE current;
CREATE INDEX report_version_original ON report_version (original_id);

CREATE TABLE report_member (
  report_id    text    NOT NULL,
  version      integer NOT NULL,
  type         text    NOT NULL,
  id           text    NOT NULL,
  res_version  integer NOT NULL,
  row_xmin     text    NOT NULL,
  digest       text    NOT NULL,
  PRIMARY KEY (report_id, version, type, id)
);

CREATE TABLE report_anchor (
  id                  text        PRIMARY KEY,
  report_id           text        NOT NULL,
  version             integer     NOT NULL,
  source              text        NOT NULL,
  provenance_id       text,
  provenance_version  integer,
  created_at          timestamptz NOT NULL DEFAULT now(),
  withdrawn           boolean     NOT NULL DEFAULT false,
  alg                 text        NOT NULL,
  fingerprint         text        NOT NULL,
  anchor              jsonb       NOT NULL,
  root                text        NOT NULL,
  status              text        NOT NULL,
  reasons             jsonb       NOT NULL DEFAULT '[]',
  ledger              text,
  tx_id               text,
  height              bigint,
  block_hash          text,
  nodes               jsonb,
  checked_at          timestamptz,
  next_check_at       timestamptz,
  attempts            integer     NOT NULL DEFAULT 0,
  lease_until         timestamptz
);
CREATE INDEX report_anchor_report ON report_anchor (report_id, version);
CREATE INDEX report_anchor_provenance ON report_anchor (provenance_id);
CREATE INDEX report_anchor_due ON report_anchor (next_check_at) WHERE status = 'pending' AND NOT withdrawn;
CREATE INDEX report_anchor_recheck ON report_anchor (checked_at) WHERE status = 'consistent' AND NOT withdrawn;

CREATE TABLE anchor_batch (
  id               text        PRIMARY KEY,
  created_at       timestamptz NOT NULL DEFAULT now(),
  alg              text        NOT NULL,
  root             text        NOT NULL,
  size             integer     NOT NULL,
  chain_batch_id   text        NOT NULL,
  state            text        NOT NULL,
  attempts         integer     NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  lease_until      timestamptz,
  last_error       text,
  ledger           text,
  tx_id            text,
  height           bigint,
  block_hash       text,
  anchored_at      timestamptz
);
CREATE INDEX anchor_batch_due ON anchor_batch (next_attempt_at) WHERE state = 'pending';

CREATE TABLE anchor_outbox (
  seq           bigserial   PRIMARY KEY,
  kind          text        NOT NULL,
  key           text        NOT NULL,
  digest        text        NOT NULL,
  state         text        NOT NULL DEFAULT 'queued',
  enqueued_at   timestamptz NOT NULL DEFAULT now(),
  available_at  timestamptz NOT NULL DEFAULT now(),
  batch_id      text        REFERENCES anchor_batch (id),
  leaf_index    integer,
  proof         jsonb,
  UNIQUE (kind, key, digest)
);
CREATE INDEX anchor_outbox_queued ON anchor_outbox (available_at, seq) WHERE state = 'queued';
CREATE INDEX anchor_outbox_batch ON anchor_outbox (batch_id, leaf_index);
CREATE INDEX anchor_outbox_key ON anchor_outbox (key);
