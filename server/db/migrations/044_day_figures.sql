-- Figures per closed day (server/db/day-figures.ts): the monitoring usage figures (per institution, district and
-- city) and the chain statistics (per institution) of a day that ended more than an hour ago are counted once
-- from the facts and kept here, so the big screen and the statistics read a few rows per day instead of every
-- fact of the range (issue 14: a first load with a million reports stored).
--
-- day_figures_gen: a generation per (kind, day), bumped by the triggers below whenever a fact of a day before
-- today (Asia/Shanghai) is written, changed or removed — a late decision on an old recognition record, a sweep
-- that finds an old report changed, a backfill. Kind 'organizations' (day 2000-01-01) is bumped by every
-- Organization write: the districts the figures are grouped by.
-- day_figures_day: the days kept, with the generation they were counted at and the basis (the settings they
-- depend on); a day whose generation or basis moved is counted again at its next read.
-- day_figures: the figures of a kept day, one row per (scope, key).
-- Facts of today are never kept here (they are counted live), so the triggers do nothing on the upload path
-- beyond a comparison.
CREATE TABLE day_figures_gen (
  kind  text   NOT NULL,
  day   date   NOT NULL,
  gen   bigint NOT NULL DEFAULT 1,
  PRIMARY KEY (kind, day)
);
CREATE TABLE day_figures_day (
  kind         text        NOT NULL,
  day          date        NOT NULL,
  gen          bigint      NOT NULL,
  basis        text        NOT NULL,
  counted_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, day)
);
CREATE TABLE day_figures (
  kind     text  NOT NULL,
  day      date  NOT NULL,
  scope    text  NOT NULL,
  key      text  NOT NULL,
  figures  jsonb NOT NULL,
  PRIMARY KEY (kind, day, scope, key)
);

CREATE FUNCTION huren_today_start() RETURNS timestamptz LANGUAGE sql STABLE AS $$ SELECT (date_trunc('day', (now() AT TIME ZONE 'UTC') + interval '8 hours') - interval '8 hours') AT TIME ZONE 'UTC' $$;
CREATE FUNCTION huren_day(t timestamptz) RETURNS date LANGUAGE sql IMMUTABLE AS $$ SELECT ((t AT TIME ZONE 'UTC') + interval '8 hours')::date $$;
CREATE FUNCTION day_figures_touch(k text, days date[]) RETURNS void LANGUAGE sql AS $$ INSERT INTO day_figures_gen (kind, day) SELECT k, d FROM unnest(days) AS d WHERE d IS NOT NULL GROUP BY d ON CONFLICT (kind, day) DO UPDATE SET gen = day_figures_gen.gen + 1 $$;

-- monitoring_report: by received_at (usage)
CREATE FUNCTION day_figures_report_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM day_figures_touch('usage', ARRAY(SELECT DISTINCT huren_day(received_at) FROM changed WHERE received_at < huren_today_start())); RETURN NULL; END $$;
CREATE FUNCTION day_figures_report_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM day_figures_touch('usage', ARRAY[huren_day(OLD.received_at), huren_day(NEW.received_at)]); RETURN NULL; END $$;
CREATE TRIGGER day_figures_report_insert AFTER INSERT ON monitoring_report REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION day_figures_report_rows();
CREATE TRIGGER day_figures_report_delete AFTER DELETE ON monitoring_report REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION day_figures_report_rows();
CREATE TRIGGER day_figures_report_update AFTER UPDATE ON monitoring_report FOR EACH ROW
  WHEN (least(OLD.received_at, NEW.received_at) < huren_today_start() AND (OLD.institution, OLD.flow, OLD.received_at, OLD.issued_at) IS DISTINCT FROM (NEW.institution, NEW.flow, NEW.received_at, NEW.issued_at))
  EXECUTE FUNCTION day_figures_report_row();

-- monitoring_record: by its time (usage)
CREATE FUNCTION day_figures_record_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM day_figures_touch('usage', ARRAY(SELECT DISTINCT huren_day(at) FROM changed WHERE at < huren_today_start())); RETURN NULL; END $$;
CREATE FUNCTION day_figures_record_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM day_figures_touch('usage', ARRAY[huren_day(OLD.at), huren_day(NEW.at)]); RETURN NULL; END $$;
CREATE TRIGGER day_figures_record_insert AFTER INSERT ON monitoring_record REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION day_figures_record_rows();
CREATE TRIGGER day_figures_record_delete AFTER DELETE ON monitoring_record REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION day_figures_record_rows();
CREATE TRIGGER day_figures_record_update AFTER UPDATE ON monitoring_record FOR EACH ROW
  WHEN (least(OLD.at, NEW.at) < huren_today_start() AND (OLD.institution, OLD.kind, OLD.at, OLD.implicated) IS DISTINCT FROM (NEW.institution, NEW.kind, NEW.at, NEW.implicated))
  EXECUTE FUNCTION day_figures_record_row();

-- monitoring_decision: by the time of its record (usage)
CREATE FUNCTION day_figures_decision_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM day_figures_touch('usage', ARRAY(SELECT DISTINCT huren_day(r.at) FROM changed c JOIN monitoring_record r ON r.id = c.record_id WHERE r.at < huren_today_start())); RETURN NULL; END $$;
CREATE FUNCTION day_figures_decision_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM day_figures_touch('usage', ARRAY(SELECT huren_day(r.at) FROM monitoring_record r WHERE r.id IN (OLD.record_id, NEW.record_id))); RETURN NULL; END $$;
CREATE TRIGGER day_figures_decision_insert AFTER INSERT ON monitoring_decision REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION day_figures_decision_rows();
CREATE TRIGGER day_figures_decision_delete AFTER DELETE ON monitoring_decision REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION day_figures_decision_rows();
CREATE TRIGGER day_figures_decision_update AFTER UPDATE ON monitoring_decision FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION day_figures_decision_row();

-- report_version: by the time the version was received (chain statistics)
CREATE FUNCTION day_figures_version_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM day_figures_touch('chain', ARRAY(SELECT DISTINCT huren_day(created_at) FROM changed WHERE created_at < huren_today_start())); RETURN NULL; END $$;
CREATE FUNCTION day_figures_version_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM day_figures_touch('chain', ARRAY[huren_day(OLD.created_at), huren_day(NEW.created_at)]); RETURN NULL; END $$;
CREATE TRIGGER day_figures_version_insert AFTER INSERT ON report_version REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION day_figures_version_rows();
CREATE TRIGGER day_figures_version_delete AFTER DELETE ON report_version REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION day_figures_version_rows();
CREATE TRIGGER day_figures_version_update AFTER UPDATE ON report_version FOR EACH ROW
  WHEN (least(OLD.created_at, NEW.created_at) < huren_today_start() AND (OLD.performer, OLD.derived_from, OLD.created_at, OLD.anchor_source, OLD.status) IS DISTINCT FROM (NEW.performer, NEW.derived_from, NEW.created_at, NEW.anchor_source, NEW.status))
  EXECUTE FUNCTION day_figures_version_row();

-- Organizations: the districts the usage figures are grouped by
CREATE FUNCTION day_figures_organization() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM day_figures_touch('organizations', ARRAY['2000-01-01'::date]); RETURN NULL; END $$;
CREATE TRIGGER day_figures_organization_insert AFTER INSERT ON resource FOR EACH ROW WHEN (NEW.type = 'Organization') EXECUTE FUNCTION day_figures_organization();
CREATE TRIGGER day_figures_organization_update AFTER UPDATE ON resource FOR EACH ROW
  WHEN (NEW.type = 'Organization' AND (OLD.deleted, OLD.content->'extension') IS DISTINCT FROM (NEW.deleted, NEW.content->'extension'))
  EXECUTE FUNCTION day_figures_organization();
CREATE TRIGGER day_figures_organization_delete AFTER DELETE ON resource FOR EACH ROW WHEN (OLD.type = 'Organization') EXECUTE FUNCTION day_figures_organization();
