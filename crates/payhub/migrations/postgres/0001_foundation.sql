-- Foundation: merchant accounts, users, API keys, sessions, one-time setup links, audit log.
-- Timestamps are UTC text in RFC 3339 with microseconds (sortable, and the same on both backends).
CREATE TABLE accounts (
    id                      TEXT PRIMARY KEY,
    name                    TEXT NOT NULL,
    merchant_serial_number  TEXT NOT NULL,
    client_key              TEXT NOT NULL,
    client_secret_sealed    TEXT NOT NULL,
    subscription_key_sealed TEXT NOT NULL,
    is_test                 BOOLEAN NOT NULL DEFAULT FALSE,
    product_name            TEXT,
    merchant_agreement_url  TEXT,
    retry_days              BIGINT  NOT NULL DEFAULT 3 CHECK (retry_days BETWEEN 0 AND 14),
    is_default              BOOLEAN NOT NULL DEFAULT FALSE,
    reconciliation_enabled  BOOLEAN NOT NULL DEFAULT FALSE,
    initial_ledger_date     TEXT,
    api_base_url            TEXT,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    CHECK (NOT reconciliation_enabled OR initial_ledger_date IS NOT NULL)
);
CREATE UNIQUE INDEX accounts_name_unique ON accounts (lower(name));
CREATE UNIQUE INDEX accounts_one_default ON accounts (is_default) WHERE is_default;

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'finance', 'integrator')),
    created_at    TEXT NOT NULL,
    disabled_at   TEXT
);
CREATE UNIQUE INDEX users_email_unique ON users (lower(email));

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'finance', 'integrator')),
    key_hash     TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT,
    last_used_at TEXT
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE setup_links (
    token_hash TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);

CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    source      TEXT NOT NULL,
    details     TEXT NOT NULL
);
CREATE INDEX audit_log_object ON audit_log (object_type, object_id);
