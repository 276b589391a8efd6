-- Retention finds what it prunes by index: a Message with no report, a report no Payment or intent points at,
-- rows past a date. Without these, pruning read the whole trail once per Message while holding the writer.
CREATE INDEX inbound_reports_message ON inbound_reports (message_id);
CREATE INDEX inbound_reports_created ON inbound_reports (created_at);
CREATE INDEX messages_received ON messages (received_at);
CREATE INDEX payments_report ON payments (inbound_report_id);
CREATE INDEX payment_intents_report ON payment_intents (inbound_report_id);
