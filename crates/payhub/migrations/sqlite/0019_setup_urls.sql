-- Setup URLs: one unguessable token per recurring payment (`/renew/{token}`), made the first time the link is
-- asked for, as PayLinks are; the recurring payment id is unique so two first asks agree on one token.
CREATE TABLE renew_links (
    token                TEXT PRIMARY KEY,
    recurring_payment_id TEXT NOT NULL UNIQUE,
    created_at           TEXT NOT NULL
);

-- Renewals: a mandate a payer asked for through a Setup URL, for a recurring payment whose agreement was stopped
-- or expired; once Vipps says ACTIVE the recurring payment collects under it. At most one renewal per recurring
-- payment waits for the payer at a time (`waiting`, cleared once its mandate is no longer Pending), so a second
-- tab or a double click drafts no second agreement. A table of its own rather than a column on `mandates`: a
-- connection that read the schema before this migration would expand `SELECT * FROM mandates` to the old columns.
CREATE TABLE renewals (
    mandate_id           TEXT PRIMARY KEY REFERENCES mandates (id),
    recurring_payment_id TEXT NOT NULL REFERENCES recurring_payments (id),
    waiting              INTEGER NOT NULL DEFAULT 1,
    created_at           TEXT NOT NULL
);
CREATE UNIQUE INDEX renewals_waiting ON renewals (recurring_payment_id) WHERE waiting = 1;
