-- Retention finds what it prunes by index: a Message with no report, a report no Payment or intent points at,
-- rows past a date (by the records lists' (created_at, id) and (received_at, id) indexes of 0014). Without these, pruning read the whole trail once per Message while holding the writer.
CREATE INDEX inbound_reports_message ON inbound_reports (message_id);
CREATE INDEX payments_report ON payments (inbound_report_id);
CREATE INDEX payment_intents_report ON payment_intents (inbound_report_id);
