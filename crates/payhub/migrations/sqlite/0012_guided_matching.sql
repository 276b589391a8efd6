-- Guided Matching: how a manual match books an amount the chosen installments do not expect (per account).
ALTER TABLE accounts ADD COLUMN remainder_handling TEXT NOT NULL DEFAULT 'book_on_next'
    CHECK (remainder_handling IN ('book_on_next', 'book_all_on_first', 'leave_on_report'));
