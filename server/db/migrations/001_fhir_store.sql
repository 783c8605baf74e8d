-- FHIR resource store: the current version of each resource, every version, and one search-index table
-- per search-parameter type (see DESIGN.md §6b). Index rows are keyed by (type, id) of the indexed resource.

CREATE TABLE resource (
  type         text        NOT NULL,
  id           text        NOT NULL,
  version      integer     NOT NULL,
  created      timestamptz NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean     NOT NULL DEFAULT false,
  content      jsonb       NOT NULL,
  PRIMARY KEY (type, id)
);
-- default search order and paging snapshot: (created, id) never changes for a resource
CREATE INDEX resource_type_created ON resource (type, created, id);
CREATE INDEX resource_type_updated ON resource (type, last_updated);

CREATE TABLE resource_history (
  type         text        NOT NULL,
  id           text        NOT NULL,
  version      integer     NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean     NOT NULL DEFAULT false,
  method       text        NOT NULL,
  content      jsonb       NOT NULL,
  PRIMARY KEY (type, id, version)
);
CREATE INDEX resource_history_updated ON resource_history (last_updated);
CREATE INDEX resource_history_type_updated ON resource_history (type, last_updated);

CREATE TABLE idx_token (
  type   text NOT NULL,
  id     text NOT NULL,
  param  text NOT NULL,
  system text,
  code   text,
  text   text
);
CREATE INDEX idx_token_lookup ON idx_token (type, param, code, system);
CREATE INDEX idx_token_owner ON idx_token (id, type);

CREATE TABLE idx_string (
  type  text NOT NULL,
  id    text NOT NULL,
  param text NOT NULL,
  norm  text NOT NULL,
  value text NOT NULL
);
CREATE INDEX idx_string_lookup ON idx_string (type, param, norm text_pattern_ops);
CREATE INDEX idx_string_owner ON idx_string (id, type);

CREATE TABLE idx_date (
  type  text        NOT NULL,
  id    text        NOT NULL,
  param text        NOT NULL,
  low   timestamptz NOT NULL,
  high  timestamptz NOT NULL
);
CREATE INDEX idx_date_lookup ON idx_date (type, param, low, high);
CREATE INDEX idx_date_owner ON idx_date (id, type);

-- number and quantity parameters (a number has no system/code)
CREATE TABLE idx_quantity (
  type   text    NOT NULL,
  id     text    NOT NULL,
  param  text    NOT NULL,
  value  numeric NOT NULL,
  system text,
  code   text
);
CREATE INDEX idx_quantity_lookup ON idx_quantity (type, param, value);
CREATE INDEX idx_quantity_owner ON idx_quantity (id, type);

CREATE TABLE idx_reference (
  type        text NOT NULL,
  id          text NOT NULL,
  param       text NOT NULL,
  target_type text,
  target_id   text,
  url         text
);
CREATE INDEX idx_reference_lookup ON idx_reference (target_id, param, type, target_type);
CREATE INDEX idx_reference_owner ON idx_reference (id, type);

CREATE TABLE idx_uri (
  type  text NOT NULL,
  id    text NOT NULL,
  param text NOT NULL,
  value text NOT NULL
);
CREATE INDEX idx_uri_lookup ON idx_uri (type, param, value);
CREATE INDEX idx_uri_owner ON idx_uri (id, type);
