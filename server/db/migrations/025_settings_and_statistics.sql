-- Platform settings that an administrator changes at run time (docs/chain-provenance.md): one row per
-- setting, its value as JSON, when and by whom (a principal id, never a person's name) it was changed.
-- First setting: 'hash-badge' (the hash-consistent badge: on/off and the statuses that show it).
CREATE TABLE platform_setting (
  key         text        PRIMARY KEY,
  value       jsonb       NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  updated_by  text        NOT NULL
);

-- Chain statistics per institution and day (server/provenance/statistics.ts) read report versions by the
-- time they were received.
CREATE INDEX report_version_created ON report_version (created_at);
