-- Failed sign-ins, kept for the lockout window: by email (lower-cased, whether or not a user has it) and by
-- the client's address. A success deletes the email's rows; rows past a day are pruned as new ones arrive.
CREATE TABLE login_failures (
    id        TEXT PRIMARY KEY,
    email     TEXT NOT NULL,
    source    TEXT NOT NULL,
    failed_at TEXT NOT NULL
);
CREATE INDEX login_failures_email ON login_failures (email, failed_at);
CREATE INDEX login_failures_source ON login_failures (source, failed_at);
CREATE INDEX login_failures_age ON login_failures (failed_at);
