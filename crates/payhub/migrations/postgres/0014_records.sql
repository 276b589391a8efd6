-- The records UI. A refund made an installment's open amount grow again before this migration; a refund makes
-- nothing due, so what refunds opened is closed again (the refunded sum is read from the negative payments).
UPDATE installments SET amount_open_ore = 0 WHERE status IN ('Partially refunded', 'Refunded');

-- The lists page by key, newest first (created_at, id), whole or narrowed to a status or an account; a payer's
-- records are found from the payer.
CREATE INDEX installments_created ON installments (created_at, id);
CREATE INDEX installments_status_created ON installments (status, created_at, id);
CREATE INDEX installments_account_created ON installments (account_id, created_at, id);
CREATE INDEX installments_payer ON installments (payer_id);
CREATE INDEX payments_created ON payments (created_at, id);
CREATE INDEX refunds_created ON refunds (created_at, id);
CREATE INDEX payers_last_name ON payers (lower(last_name));
-- The search box finds a payment by the phone it was sent to Vipps with.
CREATE INDEX vipps_payments_phone ON vipps_payments (customer_phone);
CREATE INDEX mandates_phone ON mandates (customer_phone);
CREATE INDEX recurring_payments_created ON recurring_payments (created_at, id);
CREATE INDEX mandates_created ON mandates (created_at, id);
CREATE INDEX inbound_reports_created ON inbound_reports (created_at, id);
CREATE INDEX messages_received ON messages (received_at, id);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at, id);
CREATE INDEX jobs_created ON jobs (created_at, id);
