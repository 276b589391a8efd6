-- A refund asked for through the Payment API with an IdempotencyKey keeps that key (scoped per caller), so a
-- repeat that runs the work again (its claim given up, or its lease run out after a crash) finishes this refund
-- instead of reserving a second one.
ALTER TABLE refunds ADD COLUMN api_scope TEXT;
ALTER TABLE refunds ADD COLUMN api_key TEXT;
CREATE UNIQUE INDEX refunds_api_key ON refunds (api_scope, api_key);
CREATE INDEX refunds_pending ON refunds (status, created_at);
