-- Data-quality monitoring (docs/monitoring.md; server/monitoring/). The facts the monitors read, written in
-- the transaction of the write they describe (the monitoring module's write observer) or, for recognition
-- calls, after the call answered (its HTTP middleware), and the monitors' state.
--
-- monitoring_report: one row per DiagnosticReport version received: the performing institution, the data flow
-- (lab | exam), when the platform received it and when the institution says it issued it.
-- monitoring_event: recognition calls ($recognition-check, $duplicate-check, CDS Hooks) with their HTTP status,
-- and orders (ServiceRequest writes), per institution.
-- monitoring_record / monitoring_decision: each recognition record (DetectedIssue) and the doctor's decisions in
-- it, for the usage figures.
-- monitoring_alert: the current level of each (institution, monitor, flow) and the Flag that shows it.
-- monitoring_state: the last evaluation instant (flags only move forward in time).
CREATE TABLE monitoring_report (
  report_id    text        NOT NULL,
  version      integer     NOT NULL,
  institution  text        NOT NULL,
  flow         text        NOT NULL,
  received_at  timestamptz NOT NULL,
  issued_at    timestamptz,
  PRIMARY KEY (report_id, version)
);
CREATE INDEX monitoring_report_institution ON monitoring_report (institution, flow, received_at);
CREATE INDEX monitoring_report_received ON monitoring_report (received_at);

CREATE TABLE monitoring_event (
  id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  institution  text        NOT NULL,
  kind         text        NOT NULL,
  operation    text        NOT NULL,
  at           timestamptz NOT NULL,
  status       integer     NOT NULL
);
CREATE INDEX monitoring_event_institution ON monitoring_event (institution, kind, at);
CREATE INDEX monitoring_event_at ON monitoring_event (at);

CREATE TABLE monitoring_record (
  id           text        PRIMARY KEY,
  institution  text        NOT NULL,
  kind         text        NOT NULL,
  at           timestamptz NOT NULL,
  implicated   integer     NOT NULL
);
CREATE INDEX monitoring_record_institution ON monitoring_record (institution, at);
CREATE INDEX monitoring_record_at ON monitoring_record (at);

CREATE TABLE monitoring_decision (
  record_id    text        NOT NULL,
  idx          integer     NOT NULL,
  decision     text        NOT NULL,
  reason       text,
  item         text,
  at           timestamptz,
  PRIMARY KEY (record_id, idx)
);

CREATE TABLE monitoring_alert (
  institution  text        NOT NULL,
  monitor      text        NOT NULL,
  flow         text        NOT NULL,
  level        integer     NOT NULL,
  since        timestamptz,
  changed_at   timestamptz NOT NULL,
  flag_id      text        NOT NULL,
  PRIMARY KEY (institution, monitor, flow)
);

CREATE TABLE monitoring_state (
  key          text        PRIMARY KEY,
  at           timestamptz NOT NULL
);
