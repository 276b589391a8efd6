-- The polls read the open rows least recently checked first and stamp each row they read, so every open row is
-- read within ceil(open / limit) polls however many stay open at Vipps ('' = never checked, read first).
ALTER TABLE vipps_payments ADD COLUMN checked_at TEXT NOT NULL DEFAULT '';
ALTER TABLE vipps_charges ADD COLUMN checked_at TEXT NOT NULL DEFAULT '';
CREATE INDEX vipps_payments_checked ON vipps_payments (checked_at);
CREATE INDEX vipps_charges_checked ON vipps_charges (checked_at);

-- At most one run of a beat (per scope) is running at a time: a run whose period starts while the previous run
-- is still going is recorded `skipped`. SQLite cannot change a CHECK constraint in place, so the table is rebuilt.
CREATE TABLE beat_runs_new (
    id           TEXT PRIMARY KEY,
    beat         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    period_start TEXT NOT NULL,
    trigger      TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    status       TEXT NOT NULL CHECK (status IN ('scheduled', 'running', 'succeeded', 'failed', 'skipped')),
    started_at   TEXT,
    duration_ms  BIGINT,
    error        TEXT,
    created_at   TEXT NOT NULL,
    UNIQUE (beat, scope, period_start)
);
INSERT INTO beat_runs_new SELECT id, beat, scope, period_start, trigger, status, started_at, duration_ms, error, created_at
    FROM beat_runs;
DROP TABLE beat_runs;
ALTER TABLE beat_runs_new RENAME TO beat_runs;
CREATE INDEX beat_runs_recent ON beat_runs (beat, created_at);
-- Two runs of one beat left `running` (possible before this migration): all but the latest lost their worker.
UPDATE beat_runs SET status = 'failed', error = 'its worker stopped before it finished'
    WHERE status = 'running' AND started_at < (SELECT MAX(r.started_at) FROM beat_runs r
        WHERE r.beat = beat_runs.beat AND r.scope = beat_runs.scope AND r.status = 'running');
CREATE UNIQUE INDEX beat_runs_one_running ON beat_runs (beat, scope) WHERE status = 'running';
