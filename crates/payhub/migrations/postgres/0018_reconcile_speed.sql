-- Reconciliation speed and the undo of a manual match (issue 15).

-- A Payment by the ledger row that settled it: linking Payments to the payout their rows joined (one probe per
-- row instead of a scan of every Payment not yet in a payout).
CREATE INDEX payments_ledger_entry ON payments (ledger_entry_id) WHERE ledger_entry_id IS NOT NULL;

-- The rows of a payout (its totals, the Payments it covers, its rows booked): only rows in a payout are indexed.
CREATE INDEX ledger_entries_payout ON ledger_entries (payout_id) WHERE payout_id IS NOT NULL;

-- The rows of a ledger not in a payout yet, by date: what the next payout covers, without walking the ledger's
-- history (a row leaves this index when its payout is recorded).
CREATE INDEX ledger_entries_unpaid ON ledger_entries (ledger_id, ledger_date) WHERE payout_id IS NULL;

-- The undo of a person's match is a reversal, not a delete: the Payment stays, naming the Inbound Report of
-- the undo that reversed it (whose Message says who undid what); money state reads only Payments not reversed.
ALTER TABLE payments ADD COLUMN reversed_by_report_id TEXT;
