-- Reconciliation (issue 15): the Vipps settlement ledgers, every ledger transaction as received, the import runs,
-- payouts, the Guided Matching queue, and the settled facts of a Payment.

-- A ledger of an account (Report API `ledgerId`; one sales unit each). `recipient_handle` is `api:<MSN>` for the
-- API sales unit, `NO:<number>` for a Vipps number (reached through settlement files only).
CREATE TABLE ledgers (
    id                  TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL REFERENCES accounts (id),
    vipps_ledger_id     TEXT NOT NULL,
    recipient_handle    TEXT NOT NULL,
    currency            TEXT NOT NULL,
    payout_account      TEXT,
    payout_scheme       TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (account_id, vipps_ledger_id)
);

-- How far the import of one topic of a ledger got, written in the same transaction as the rows it reached:
-- `date_done` is the last ledger date imported whole; `page_date` / `page_cursor` the date being read and the
-- cursor of its next page; `feed_cursor` the feed's cursor; `next_seq` the `seq` of the next row stored.
CREATE TABLE ledger_positions (
    ledger_id    TEXT NOT NULL REFERENCES ledgers (id),
    topic        TEXT NOT NULL CHECK (topic IN ('funds', 'fees')),
    date_done    TEXT,
    page_date    TEXT,
    page_cursor  TEXT,
    feed_cursor  TEXT,
    next_seq     BIGINT NOT NULL DEFAULT 0,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (ledger_id, topic)
);

-- One row per ledger transaction, as Vipps sent it (unique on ledger, topic, pspReference, entry type). `kind` is
-- payhub's reading of `entry_type` (domain::ledger::EntryKind; an unknown type by the sign of the amount).
-- `seq` keeps Vipps' order within a ledger date. `status`: new (not matched yet), booked, queued (in
-- match_queue), ignored, held (its date does not balance, so nothing of it is booked).
CREATE TABLE ledger_entries (
    id                 TEXT PRIMARY KEY,
    ledger_id          TEXT NOT NULL REFERENCES ledgers (id),
    account_id         TEXT NOT NULL,
    topic              TEXT NOT NULL CHECK (topic IN ('funds', 'fees')),
    psp_reference      TEXT NOT NULL,
    entry_type         TEXT NOT NULL,
    kind               TEXT NOT NULL,
    amount_ore         BIGINT NOT NULL,
    balance_before_ore BIGINT,
    balance_after_ore  BIGINT,
    currency           TEXT NOT NULL,
    ledger_date        TEXT NOT NULL,
    entry_time         TEXT NOT NULL,
    seq                BIGINT NOT NULL,
    reference          TEXT,
    recipient_handle   TEXT,
    payer_name         TEXT,
    payer_message      TEXT,
    masked_phone       TEXT,
    source             TEXT NOT NULL CHECK (source IN ('api', 'file')),
    inbound_report_id  TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('new', 'booked', 'queued', 'ignored', 'held')),
    payment_id         TEXT,
    installment_id     TEXT,
    payout_id          TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    UNIQUE (ledger_id, topic, psp_reference, entry_type)
);
CREATE INDEX ledger_entries_date ON ledger_entries (ledger_id, ledger_date, topic, seq);
CREATE INDEX ledger_entries_status ON ledger_entries (status, account_id, topic, ledger_date, seq, id);

-- The check of one ledger date and topic: opening balance + rows = closing balance, and a payout clears the
-- balance. An `unbalanced` date is flagged and none of its rows are booked.
CREATE TABLE ledger_days (
    ledger_id       TEXT NOT NULL REFERENCES ledgers (id),
    topic           TEXT NOT NULL CHECK (topic IN ('funds', 'fees')),
    ledger_date     TEXT NOT NULL,
    rows_count      BIGINT NOT NULL,
    opening_ore     BIGINT NOT NULL,
    closing_ore     BIGINT NOT NULL,
    sum_ore         BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('balanced', 'unbalanced')),
    problem         TEXT,
    checked_at      TEXT NOT NULL,
    PRIMARY KEY (ledger_id, topic, ledger_date)
);

-- One import run (the beat, the command, the admin UI, or a settlement file).
CREATE TABLE reconcile_runs (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    trigger          TEXT NOT NULL CHECK (trigger IN ('beat', 'command', 'admin', 'file')),
    actor            TEXT,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    pages            BIGINT NOT NULL DEFAULT 0,
    rows_new         BIGINT NOT NULL DEFAULT 0,
    rows_already     BIGINT NOT NULL DEFAULT 0,
    rows_booked      BIGINT NOT NULL DEFAULT 0,
    rows_queued      BIGINT NOT NULL DEFAULT 0,
    dates_unbalanced BIGINT NOT NULL DEFAULT 0,
    outcome          TEXT NOT NULL CHECK (outcome IN ('running', 'succeeded', 'no_new_data', 'failed')),
    error            TEXT
);
CREATE INDEX reconcile_runs_recent ON reconcile_runs (account_id, started_at);

-- A payout (`payout-scheduled` row): the ledger dates it covers (first_date .. ledger_date) and, through
-- ledger_entries.payout_id, the rows.
CREATE TABLE payouts (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL,
    ledger_id         TEXT NOT NULL REFERENCES ledgers (id),
    entry_id          TEXT NOT NULL UNIQUE,
    psp_reference     TEXT NOT NULL,
    payout_number     TEXT,
    bank_text         TEXT,
    amount_ore        BIGINT NOT NULL,
    fees_retained_ore BIGINT NOT NULL DEFAULT 0,
    captures_ore      BIGINT NOT NULL DEFAULT 0,
    refunds_ore       BIGINT NOT NULL DEFAULT 0,
    rows_count        BIGINT NOT NULL DEFAULT 0,
    currency          TEXT NOT NULL,
    first_date        TEXT NOT NULL,
    ledger_date       TEXT NOT NULL,
    inbound_report_id TEXT,
    created_at        TEXT NOT NULL
);
CREATE INDEX payouts_account ON payouts (account_id, ledger_date);

-- Guided Matching: a ledger line the rules could not book, with why. `worked_by` / `worked_at` / `lease_until`
-- are the lease of the person working it; `decided_by` / `decided_at` / `remark` the decision.
CREATE TABLE match_queue (
    id           TEXT PRIMARY KEY,
    entry_id     TEXT NOT NULL UNIQUE REFERENCES ledger_entries (id),
    account_id   TEXT NOT NULL,
    reason       TEXT NOT NULL CHECK (reason IN ('no_candidate', 'several_candidates', 'amount_differs',
                     'already_paid', 'unknown_type', 'vipps_number_payment', 'dispute', 'correction')),
    detail       TEXT,
    status       TEXT NOT NULL CHECK (status IN ('open', 'matched', 'ignored')),
    worked_by    TEXT,
    worked_at    TEXT,
    lease_until  TEXT,
    remark       TEXT,
    decided_by   TEXT,
    decided_at   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX match_queue_open ON match_queue (status, created_at, id);

-- The matching rules, ordered, per account ('' = the shipped defaults) and report sub type.
CREATE TABLE match_rules (
    account_id TEXT NOT NULL,
    sub_type   TEXT NOT NULL,
    ordinal    BIGINT NOT NULL,
    rule       TEXT NOT NULL,
    PRIMARY KEY (account_id, sub_type, ordinal)
);
INSERT INTO match_rules (account_id, sub_type, ordinal, rule) VALUES
    ('', 'ledger.capture', 1, 'payment_by_psp_reference'),
    ('', 'ledger.capture', 2, 'installment_by_reference'),
    ('', 'ledger.refund', 1, 'refund_by_psp_reference'),
    ('', 'ledger.capture-fee', 1, 'fee_of_capture'),
    ('', 'ledger.fees-retained', 1, 'payout'),
    ('', 'ledger.payout-scheduled', 1, 'payout'),
    ('', 'ledger.scheduled-for-payout', 1, 'payout');

-- The settled facts of a Payment, from its ledger row.
ALTER TABLE payments ADD COLUMN ledger_date TEXT;
ALTER TABLE payments ADD COLUMN fee_ore BIGINT;
ALTER TABLE payments ADD COLUMN net_amount_ore BIGINT;
ALTER TABLE payments ADD COLUMN payout_id TEXT;
ALTER TABLE payments ADD COLUMN ledger_entry_id TEXT;
CREATE INDEX payments_payout ON payments (payout_id);
