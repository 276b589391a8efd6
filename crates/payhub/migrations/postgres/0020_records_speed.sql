-- The records lists at 1,000,000 installments (issue #17). Each index here costs every installment write, so
-- there is one, for a list query the (created_at, id) indexes of 0014 cannot serve.

-- `/installments?date=due&from=…&to=…`: the due-date range is read from this index, and the page's keys
-- (created_at, id) with it, so the newest lines of a week's due installments are sorted from the index alone
-- instead of reading the whole list newest first until enough of them turned up. A range that covers most of
-- the list is still read by created_at: the planner weighs the bound dates against its statistics.
CREATE INDEX installments_due_created ON installments (due_date, created_at, id);

-- SQLite's twin of this migration also makes installments_mandate partial, because SQLite's statistics count
-- the NULLs of installments without a mandate as one value; PostgreSQL's count them apart (null_frac), so its
-- full index already serves a phone search's agreements part.
