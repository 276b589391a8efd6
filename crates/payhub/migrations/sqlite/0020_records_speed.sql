-- The records lists at 1,000,000 installments (issue #17). Each index here costs every installment write, so
-- there are two, each for a list query the (created_at, id) indexes of 0014 cannot serve.

-- `/installments?date=due&from=…&to=…`: the due-date range is read from this index, and the page's keys
-- (created_at, id) with it, so the newest lines of a week's due installments are sorted from the index alone
-- instead of reading the whole list newest first until enough of them turned up (1.9 s at 1,000,000). A range
-- that covers most of the list is still read by created_at: SQLite weighs the bound dates against its samples.
CREATE INDEX installments_due_created ON installments (due_date, created_at, id);

-- `/installments?q=<phone>`: installments under the agreements sent to Vipps with a phone. Most installments
-- have no mandate; in the full index their NULLs counted as one value held by nearly every row, so once ANALYZE
-- had run SQLite read all installments for this part of a phone search rather than use the index. Only rows
-- with a mandate are indexed now; `mandate_id = ?` still finds them by it, and one-time installments write it
-- no longer.
DROP INDEX installments_mandate;
CREATE INDEX installments_mandate ON installments (mandate_id) WHERE mandate_id IS NOT NULL;
