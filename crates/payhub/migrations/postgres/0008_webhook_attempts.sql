-- A webhook registration about to be sent to Vipps, with its Idempotency-Key, stored before the call: a retry
-- after a crash repeats the same registration, and a new registration (another public URL, or the same URL
-- again later) gets a new key instead of Vipps' replay of an earlier, since deleted, one.
CREATE TABLE vipps_webhook_attempts (
    account_id      TEXT NOT NULL,
    url             TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (account_id, url)
);
