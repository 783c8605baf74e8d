-- The briefings' files (数据分析简报, docs/monitoring.md "Briefing"): the HTML and the PDF of each version of a
-- briefing DocumentReference, and the SHA-256 of the figures it shows (a regeneration with the same figures
-- writes nothing). Earlier versions stay downloadable.
CREATE TABLE monitoring_briefing_file (
  document_id   text        NOT NULL,
  version       integer     NOT NULL,
  content_type  text        NOT NULL,
  data          bytea       NOT NULL,
  data_sha256   text        NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (document_id, version, content_type)
);
