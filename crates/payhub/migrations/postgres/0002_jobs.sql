-- The durable job queue, the heartbeat's run log, and outbound webhooks (endpoints, deliveries, the
-- installation secret that signs per-intent WebhookURL deliveries).
CREATE TABLE jobs (
    id           BIGSERIAL PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    dedupe_key   TEXT UNIQUE,
    ordering_key TEXT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_at       TEXT NOT NULL,
    locked_until TEXT,
    locked_by    TEXT,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX jobs_due ON jobs (status, run_at);
CREATE INDEX jobs_queued ON jobs (run_at, id) WHERE status = 'queued';
CREATE INDEX jobs_ordering ON jobs (ordering_key, id) WHERE ordering_key IS NOT NULL;

CREATE TABLE beat_runs (
    id           TEXT PRIMARY KEY,
    beat         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    period_start TEXT NOT NULL,
    trigger      TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    status       TEXT NOT NULL CHECK (status IN ('scheduled', 'running', 'succeeded', 'failed')),
    started_at   TEXT,
    duration_ms  BIGINT,
    error        TEXT,
    created_at   TEXT NOT NULL,
    UNIQUE (beat, scope, period_start)
);
CREATE INDEX beat_runs_recent ON beat_runs (beat, created_at);

CREATE TABLE webhook_endpoints (
    id            TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    description   TEXT NOT NULL,
    event_types   TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    endpoint_id      TEXT,
    url              TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    last_status_code BIGINT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    delivered_at     TEXT
);
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (created_at);

CREATE TABLE installation_secrets (
    name       TEXT PRIMARY KEY,
    sealed     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
