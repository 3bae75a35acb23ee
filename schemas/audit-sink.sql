-- The PostgreSQL audit sink of runbook (`audit.sink_url_env`): an append-only table of every
-- audit record. Run this as the role that will OWN the table (an administrator's role, never
-- the one runbook connects as), naming the writer role runbook connects as:
--
--   psql "$OWNER_URL" -v ON_ERROR_STOP=1 -v writer=runbook_writer -f schemas/audit-sink.sql
--   (or: runbook audit sink-setup --writer runbook_writer | psql "$OWNER_URL" -v ON_ERROR_STOP=1)
--
-- The owner keeps the table, its triggers and their function; the writer gets INSERT and
-- SELECT only. Only an owner (or a superuser) may disable or drop a trigger, replace its
-- function or drop the table, so the writer cannot turn the protection off. runbook refuses a
-- sink where the role it connects as owns the table, its schema or the trigger function, is a
-- member of their owner, is a superuser, may UPDATE, DELETE or TRUNCATE it, or where a
-- trigger is missing or disabled.

CREATE TABLE IF NOT EXISTS runbook_audit_log (
    run_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    record JSONB NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);

CREATE OR REPLACE FUNCTION runbook_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'runbook_audit_log is append-only: % is not allowed', TG_OP;
END $$;

DROP TRIGGER IF EXISTS runbook_audit_no_change ON runbook_audit_log;
CREATE TRIGGER runbook_audit_no_change BEFORE UPDATE OR DELETE ON runbook_audit_log
    FOR EACH ROW EXECUTE FUNCTION runbook_audit_append_only();
DROP TRIGGER IF EXISTS runbook_audit_no_truncate ON runbook_audit_log;
CREATE TRIGGER runbook_audit_no_truncate BEFORE TRUNCATE ON runbook_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION runbook_audit_append_only();

REVOKE ALL ON runbook_audit_log FROM PUBLIC;
REVOKE ALL ON FUNCTION runbook_audit_append_only() FROM PUBLIC;
GRANT SELECT, INSERT ON runbook_audit_log TO :"writer";
