-- The audit trail (server/audit/, docs/security.md 安全审计). Every AuditEvent is a FHIR resource in `resource`
-- (searchable by the audit administrator) and an entry of one hash chain: audit_chain holds, per entry, its
-- sequence number, the AuditEvent's id, the key id and MAC = HMAC-SM3(key, previous MAC ‖ the AuditEvent's
-- canonical JSON). The key is outside the database. audit_head is the chain's tip (locked by each append, so
-- appends are serialised); audit_archive keeps the entries moved out of the live tables after the retention
-- period, with their content, so the whole chain stays verifiable.
CREATE TABLE audit_chain (
  seq       bigint      PRIMARY KEY,
  event_id  text        NOT NULL UNIQUE,
  recorded  timestamptz NOT NULL,
  key_id    text        NOT NULL,
  mac       text        NOT NULL
);
CREATE INDEX audit_chain_recorded ON audit_chain (recorded);

CREATE TABLE audit_archive (
  seq          bigint      PRIMARY KEY,
  event_id     text        NOT NULL UNIQUE,
  recorded     timestamptz NOT NULL,
  key_id       text        NOT NULL,
  mac          text        NOT NULL,
  content      jsonb       NOT NULL,
  archived_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_head (
  one  boolean PRIMARY KEY DEFAULT true CHECK (one),
  seq  bigint  NOT NULL,
  mac  text    NOT NULL
);
INSERT INTO audit_head (one, seq, mac) VALUES (true, 0, '');

-- Append-only, enforced by the database. The only removal allowed is the archive job's: an entry (and its
-- AuditEvent rows) may leave the live tables once the archive holds it with the same MAC. Whoever bypasses these
-- triggers (a superuser: ALTER TABLE … DISABLE TRIGGER, session_replication_role = replica) is caught by the chain check.
CREATE FUNCTION audit_refuse(op text, tab text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the audit trail is append-only: % on % refused', op, tab USING ERRCODE = '42501'; END $$;
CREATE FUNCTION audit_chain_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_archive a WHERE a.seq = OLD.seq AND a.mac = OLD.mac) THEN RETURN OLD; END IF; PERFORM audit_refuse(TG_OP, TG_TABLE_NAME); RETURN NULL; END $$;
CREATE FUNCTION audit_resource_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_archive a WHERE a.event_id = OLD.id) THEN RETURN OLD; END IF; PERFORM audit_refuse(TG_OP, TG_TABLE_NAME); RETURN NULL; END $$;
CREATE FUNCTION audit_archive_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM audit_refuse(TG_OP, TG_TABLE_NAME); RETURN NULL; END $$;
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain FOR EACH ROW EXECUTE FUNCTION audit_chain_guard();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain FOR EACH STATEMENT EXECUTE FUNCTION audit_archive_guard();
CREATE TRIGGER audit_archive_append_only BEFORE UPDATE OR DELETE ON audit_archive FOR EACH ROW EXECUTE FUNCTION audit_archive_guard();
CREATE TRIGGER audit_archive_no_truncate BEFORE TRUNCATE ON audit_archive FOR EACH STATEMENT EXECUTE FUNCTION audit_archive_guard();
CREATE TRIGGER audit_resource_append_only BEFORE UPDATE OR DELETE ON resource FOR EACH ROW WHEN (OLD.type = 'AuditEvent') EXECUTE FUNCTION audit_resource_guard();
CREATE TRIGGER audit_history_append_only BEFORE UPDATE OR DELETE ON resource_history FOR EACH ROW WHEN (OLD.type = 'AuditEvent') EXECUTE FUNCTION audit_resource_guard();
