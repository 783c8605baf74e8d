-- Dictionary QC (字典数据质控): each institution's map of its local item dictionary to the platform catalogue
-- (a ConceptMap) has one row per entry (local code) with its review status, and an append-only log of every
-- change of an entry (who, when, from what to what), so that tracing one entry is one indexed read.
-- The ConceptMap resource stays as the institution uploaded it; its versions are diffed into the log.
CREATE TABLE dictionary_map (
  map_id          text        PRIMARY KEY, -- ConceptMap id
  organization_id text,                    -- the institution (ConceptMap.useContext venue)
  synced_version  integer     NOT NULL DEFAULT 0, -- the ConceptMap version diffed last
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dictionary_map_organization ON dictionary_map (organization_id);

CREATE TABLE dictionary_entry (
  map_id        text        NOT NULL,
  source_system text        NOT NULL, -- the institution's local code system
  code          text        NOT NULL, -- the local item code
  display       text,
  target_code   text,                 -- the platform catalogue code (null: mapped to nothing)
  in_map        boolean     NOT NULL DEFAULT true, -- false once the upload no longer lists it
  status        text        NOT NULL, -- pending | approved | rejected | retired
  changed_at    timestamptz NOT NULL,
  changed_by    text        NOT NULL,
  PRIMARY KEY (map_id, source_system, code)
);
CREATE INDEX dictionary_entry_status ON dictionary_entry (map_id, status, changed_at);

CREATE TABLE dictionary_entry_change (
  seq           bigserial   PRIMARY KEY,
  map_id        text        NOT NULL,
  source_system text        NOT NULL,
  code          text        NOT NULL,
  at            timestamptz NOT NULL,
  by            text        NOT NULL, -- a principal id, or the uploaded version ConceptMap/<id>/_history/<n>
  action        text        NOT NULL, -- created | target-changed | removed | restored | status-changed
  from_status   text,
  to_status     text,
  from_target   text,
  to_target     text,
  map_version   integer,
  comment       text
);
CREATE INDEX dictionary_entry_change_entry ON dictionary_entry_change (map_id, source_system, code, seq);
