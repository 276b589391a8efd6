-- The records' detail pages. An outbound delivery names the record it is about (the event's `data.Id`: an
-- installment, an intent or a mandate), so a record's timeline finds its deliveries by key, not by reading
-- bodies; deliveries stored before this migration get theirs from their body.
ALTER TABLE webhook_deliveries ADD COLUMN subject TEXT;
UPDATE webhook_deliveries SET subject = (body::jsonb) -> 'data' ->> 'Id' WHERE body LIKE '{%';
CREATE INDEX webhook_deliveries_subject ON webhook_deliveries (subject);

-- A mandate's timeline: the Inbound Reports of its agreement (by the agreement id) and of its intent carry no
-- installment; only those are indexed, so the hot path of installments' reports pays nothing more.
CREATE INDEX inbound_reports_reference ON inbound_reports (reference) WHERE installment_id IS NULL;
CREATE INDEX inbound_reports_intent ON inbound_reports (intent_id) WHERE installment_id IS NULL;

-- The dashboard's collected-per-day chart reads captures by collection date over the last 30 days.
CREATE INDEX payments_collection_date ON payments (collection_date);
