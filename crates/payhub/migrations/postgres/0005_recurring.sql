-- Recurring payments: mandates (Vipps agreements), recurring payments, the installments they generate (one per
-- schedule period, unique), the Vipps charges behind installments (charge id = the installment's payment
-- reference, unique at Vipps per merchant), and the organisation's changes, each stored before Vipps is called.
CREATE TABLE mandates (
    id                     TEXT PRIMARY KEY,
    account_id             TEXT NOT NULL,
    payer_id               TEXT NOT NULL REFERENCES payers (id),
    payment_profile_id     TEXT REFERENCES payment_profiles (id),
    intent_id              TEXT,
    agreement_id           TEXT UNIQUE,
    status                 TEXT NOT NULL,
    vipps_status           TEXT NOT NULL,
    idempotency_key        TEXT NOT NULL UNIQUE,
    confirmation_url       TEXT,
    product_name           TEXT NOT NULL,
    merchant_agreement_url TEXT NOT NULL,
    redirect_url           TEXT NOT NULL,
    customer_phone         TEXT,
    price_ore              BIGINT NOT NULL,
    interval_unit          TEXT NOT NULL,
    interval_count         BIGINT NOT NULL,
    initial_installment_id TEXT,
    last_error             TEXT,
    checked_at             TEXT,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
);
CREATE INDEX mandates_status ON mandates (vipps_status);
CREATE INDEX mandates_checked ON mandates (status, checked_at);

CREATE TABLE recurring_payments (
    id                         TEXT PRIMARY KEY,
    intent_id                  TEXT,
    mandate_id                 TEXT NOT NULL REFERENCES mandates (id),
    account_id                 TEXT NOT NULL,
    payer_id                   TEXT NOT NULL REFERENCES payers (id),
    payment_profile_id         TEXT REFERENCES payment_profiles (id),
    amount_ore                 BIGINT NOT NULL CHECK (amount_ore > 0),
    frequency                  TEXT NOT NULL,
    start_date                 TEXT NOT NULL,
    end_date                   TEXT,
    collection_day             BIGINT,
    status                     TEXT NOT NULL,
    status_reason              TEXT,
    paused_until               TEXT,
    next_period                BIGINT NOT NULL DEFAULT 0,
    next_collection_date       TEXT,
    bank_statement_description TEXT,
    product                    TEXT,
    created_at                 TEXT NOT NULL,
    updated_at                 TEXT NOT NULL
);
CREATE INDEX recurring_payments_status ON recurring_payments (status, id);
CREATE INDEX recurring_payments_mandate ON recurring_payments (mandate_id);

ALTER TABLE installments ADD COLUMN recurring_payment_id TEXT;
ALTER TABLE installments ADD COLUMN mandate_id TEXT;
ALTER TABLE installments ADD COLUMN period BIGINT;
CREATE UNIQUE INDEX installments_period ON installments (recurring_payment_id, period);
CREATE INDEX installments_mandate ON installments (mandate_id);
CREATE INDEX installments_status_id ON installments (status, id);

CREATE TABLE vipps_charges (
    charge_id       TEXT PRIMARY KEY,
    installment_id  TEXT NOT NULL UNIQUE REFERENCES installments (id),
    mandate_id      TEXT NOT NULL REFERENCES mandates (id),
    agreement_id    TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('INITIAL', 'RECURRING')),
    amount_ore      BIGINT NOT NULL,
    due_date        TEXT NOT NULL,
    retry_days      BIGINT NOT NULL,
    description     TEXT NOT NULL,
    state           TEXT NOT NULL,
    failure_reason  TEXT,
    transaction_id  TEXT,
    captured_ore    BIGINT NOT NULL DEFAULT 0,
    refunded_ore    BIGINT NOT NULL DEFAULT 0,
    cancelled_ore   BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX vipps_charges_state ON vipps_charges (state, due_date);
CREATE INDEX vipps_charges_agreement ON vipps_charges (agreement_id);

CREATE TABLE recurring_changes (
    id                   TEXT PRIMARY KEY,
    mandate_id           TEXT,
    recurring_payment_id TEXT,
    kind                 TEXT NOT NULL,
    details              TEXT NOT NULL,
    status               TEXT NOT NULL,
    message              TEXT,
    actor                TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE INDEX recurring_changes_mandate ON recurring_changes (mandate_id);

ALTER TABLE accounts ADD COLUMN cancel_agreement_on_cancel BOOLEAN NOT NULL DEFAULT FALSE;
