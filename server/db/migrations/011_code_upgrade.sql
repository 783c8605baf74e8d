-- The code upgrade (编码升级): one row per walk over the stored DiagnosticReport / Observation /
-- ServiceRequest resources that carry legacy price codes. The cursor (type, last id) is the checkpoint: a
-- walk stopped early (a limit, a crash, a restart) continues from it. Counters and the codes that could not
-- be mapped accumulate over the whole walk.
CREATE TABLE code_upgrade_job (
  id           text        PRIMARY KEY,
  status       text        NOT NULL, -- open | done | abandoned
  types        jsonb       NOT NULL, -- resource types, in walk order
  cursor_type  text,                 -- the type being walked
  cursor_id    text        NOT NULL DEFAULT '', -- the last id done in cursor_type
  total        integer     NOT NULL DEFAULT 0,  -- resources with legacy codes when the walk started
  scanned      integer     NOT NULL DEFAULT 0,
  upgraded     integer     NOT NULL DEFAULT 0,
  unchanged    integer     NOT NULL DEFAULT 0,
  unmapped     jsonb       NOT NULL DEFAULT '{}'::jsonb, -- legacy code -> { reason, count, examples }
  failed       jsonb       NOT NULL DEFAULT '[]'::jsonb, -- [{ reference, message }]
  map_version  text,
  started_by   text        NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz
);
CREATE INDEX code_upgrade_job_open ON code_upgrade_job (status, created_at);
