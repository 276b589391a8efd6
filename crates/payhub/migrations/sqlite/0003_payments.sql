-- One-time payments: payers, profiles, intents, installments, payments, refunds, messages, inbound reports,
-- the Vipps payments behind installments, API idempotency, and each account's Vipps webhook registration.
CREATE TABLE payers (
    id          TEXT PRIMARY KEY,
    first_name  TEXT,
    last_name   TEXT,
    email       TEXT,
    phone       TEXT,
    fields      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX payers_email_unique ON payers (lower(email)) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX payers_phone_unique ON payers (phone) WHERE phone IS NOT NULL AND email IS NULL;
CREATE INDEX payers_phone ON payers (phone);

CREATE TABLE payment_profiles (
    id          TEXT PRIMARY KEY,
    payer_id    TEXT NOT NULL REFERENCES payers (id),
    record_type TEXT NOT NULL,
    wallet_type TEXT NOT NULL,
    identifier  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (payer_id, wallet_type, identifier)
);

CREATE TABLE messages (
    id           TEXT PRIMARY KEY,
    direction    TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    channel      TEXT NOT NULL,
    subject      TEXT,
    body         TEXT NOT NULL,
    status       TEXT NOT NULL,
    error        TEXT,
    received_at  TEXT NOT NULL,
    processed_at TEXT
);
CREATE INDEX messages_subject ON messages (subject);

CREATE TABLE inbound_reports (
    id             TEXT PRIMARY KEY,
    message_id     TEXT NOT NULL REFERENCES messages (id),
    report_type    TEXT NOT NULL,
    sub_type       TEXT NOT NULL,
    amount_ore     INTEGER,
    report_date    TEXT NOT NULL,
    reference      TEXT,
    status         TEXT NOT NULL,
    installment_id TEXT,
    intent_id      TEXT,
    detail         TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX inbound_reports_installment ON inbound_reports (installment_id);

CREATE TABLE payment_intents (
    id                TEXT PRIMARY KEY,
    inbound_report_id TEXT NOT NULL REFERENCES inbound_reports (id),
    status            TEXT NOT NULL,
    account_id        TEXT NOT NULL,
    payer_id          TEXT NOT NULL REFERENCES payers (id),
    installment_id    TEXT,
    success_url       TEXT NOT NULL,
    failure_url       TEXT NOT NULL,
    webhook_url       TEXT,
    origin            TEXT,
    campaign_id       TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE installments (
    id                         TEXT PRIMARY KEY,
    intent_id                  TEXT,
    payer_id                   TEXT NOT NULL REFERENCES payers (id),
    payment_profile_id         TEXT REFERENCES payment_profiles (id),
    account_id                 TEXT NOT NULL,
    amount_ore                 INTEGER NOT NULL CHECK (amount_ore > 0),
    amount_open_ore            INTEGER NOT NULL,
    due_date                   TEXT NOT NULL,
    status                     TEXT NOT NULL,
    status_reason              TEXT,
    payment_reference          TEXT NOT NULL UNIQUE,
    bank_statement_description TEXT,
    product                    TEXT,
    created_at                 TEXT NOT NULL,
    updated_at                 TEXT NOT NULL
);
CREATE INDEX installments_status ON installments (status);

CREATE TABLE vipps_payments (
    reference       TEXT PRIMARY KEY,
    installment_id  TEXT NOT NULL UNIQUE REFERENCES installments (id),
    account_id      TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    amount_ore      INTEGER NOT NULL,
    state           TEXT NOT NULL,
    customer_phone  TEXT,
    description     TEXT,
    redirect_url    TEXT,
    psp_reference   TEXT,
    authorized_ore  INTEGER NOT NULL DEFAULT 0,
    captured_ore    INTEGER NOT NULL DEFAULT 0,
    refunded_ore    INTEGER NOT NULL DEFAULT 0,
    cancelled_ore   INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX vipps_payments_state ON vipps_payments (state);

CREATE TABLE payments (
    id                TEXT PRIMARY KEY,
    installment_id    TEXT NOT NULL REFERENCES installments (id),
    amount_ore        INTEGER NOT NULL,
    collection_date   TEXT NOT NULL,
    psp_reference     TEXT NOT NULL UNIQUE,
    kind              TEXT NOT NULL CHECK (kind IN ('capture', 'refund')),
    inbound_report_id TEXT REFERENCES inbound_reports (id),
    created_at        TEXT NOT NULL
);
CREATE INDEX payments_installment ON payments (installment_id);

CREATE TABLE refunds (
    id              TEXT PRIMARY KEY,
    installment_id  TEXT NOT NULL REFERENCES installments (id),
    amount_ore      INTEGER NOT NULL CHECK (amount_ore > 0),
    reason          TEXT,
    status          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    psp_reference   TEXT,
    error           TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX refunds_installment ON refunds (installment_id);

CREATE TABLE api_idempotency (
    scope           TEXT NOT NULL,
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    response_status INTEGER,
    response_body   TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE vipps_webhooks (
    account_id    TEXT PRIMARY KEY,
    webhook_id    TEXT NOT NULL,
    url           TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
