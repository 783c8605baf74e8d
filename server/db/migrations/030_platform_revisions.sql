-- Versions the platform writes itself (a code upgrade, 编码升级): each rewritten resource version with the
-- version it was derived from, why, and a digest over (the new version as stored, the base version, its
-- digest or fingerprint, the reason). The digest is anchored on the chain by the platform like any other
-- record (anchor_outbox), so an upgraded report version keeps a chain status; the seal (HMAC-SM3, key
-- outside the database) keeps the row honest. A DiagnosticReport revision is also a report_version row
-- (derived_from, revision_reason), whose fingerprint is the revision's digest.
CREATE TABLE platform_revision (
  type          text        NOT NULL,
  id            text        NOT NULL,
  version       integer     NOT NULL,
  base_version  integer     NOT NULL,
  activity      text        NOT NULL,
  reason        text        NOT NULL,
  base_digest   text,
  digest        text        NOT NULL,
  seal          text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (type, id, version)
);

ALTER TABLE report_version ADD COLUMN derived_from integer;
ALTER TABLE report_version ADD COLUMN revision_reason text;
