-- A claim of an API IdempotencyKey holds it until `locked_until` (payhub's clock); a claim whose holder died
-- without answering can be taken again after that. Rows without an answer from before this migration have no
-- lease, so they are free to be taken again at once (they were stuck for ever).
ALTER TABLE api_idempotency ADD COLUMN locked_until TEXT;
