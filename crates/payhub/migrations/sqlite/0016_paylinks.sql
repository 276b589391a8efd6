-- PayLinks: one unguessable token per installment, made the first time the link is asked for (so the intake's
-- hot path writes nothing more, and installments made before this migration get theirs the same way). The
-- token is the page's whole address; the installment id is unique so two first asks agree on one token.
CREATE TABLE paylinks (
    token TEXT PRIMARY KEY,
    installment_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
