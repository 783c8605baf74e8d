-- The scheduler's claims (server/scheduler/): one row per job and tick. The server process that inserts the row
-- runs the job for that tick; the others see the conflict and skip it, so each tick of each job runs once
-- across every server process on the database. Kept for a few days as the schedule's run log.
CREATE TABLE scheduled_run (
  job          text        NOT NULL,
  tick         timestamptz NOT NULL,
  holder       text        NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  ok           boolean,
  PRIMARY KEY (job, tick)
);
CREATE INDEX scheduled_run_started ON scheduled_run (started_at);
