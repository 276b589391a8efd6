//! Where each list's facts are: its table and joins, which column is its status, amount, dates, payer and
//! references, and the columns a line shows. The filters, search and paging in the parent read only this.

use super::{Family, Kind};

/// A family without one of these has `None`: a filter or search on it then matches nothing. `raw` is where an
/// id or reference is looked for when the family has no column of that kind (a message's subject, the body of
/// a delivery or job); `numeric_id` marks a table whose ids are integers. `from` is the family's own table and
/// its alias (the paging key's), `through` the join its filters need as well (a payment's installment), `joins`
/// what only the shown columns need.
pub(super) struct Shape {
    pub(super) from: &'static str,
    pub(super) through: &'static str,
    pub(super) joins: &'static str,
    pub(super) created: &'static str,
    pub(super) numeric_id: bool,
    pub(super) status: &'static str,
    pub(super) amount: Option<&'static str>,
    pub(super) due: Option<&'static str>,
    pub(super) collected: Option<&'static str>,
    pub(super) intent: Option<&'static str>,
    pub(super) installment: Option<&'static str>,
    pub(super) reference: Option<&'static str>,
    pub(super) mandate: Option<&'static str>,
    pub(super) recurring: Option<&'static str>,
    pub(super) payer: Option<&'static str>,
    pub(super) account: Option<&'static str>,
    pub(super) raw: Option<(&'static str, bool)>,
    pub(super) columns: &'static [(&'static str, &'static str, Kind)],
}

impl Shape {
    /// The alias of the family's own table, whose `id` is the paging key's second half.
    pub(super) fn key(&self) -> &'static str {
        self.from.split(' ').nth(1).unwrap_or("t")
    }
}

// Every record has its payer (a foreign key), so a LEFT JOIN finds the same rows; it also keeps the record's
// table the outer loop. With an inner join SQLite's planner, once ANALYZE had run, read every payer's records
// and sorted them all for each page (0.45 s at 100,000 installments, seconds at 1,000,000). These joins are made
// only for a page's lines now, after its keys are found (`statement` in the parent), but stay LEFT for the same
// reason.
const JOINS_OF_I: &str = "LEFT JOIN payers p ON p.id = i.payer_id LEFT JOIN accounts a ON a.id = i.account_id \
     LEFT JOIN payment_intents pint ON pint.id = i.intent_id";
const JOINS_OF_T: &str = "LEFT JOIN payers p ON p.id = t.payer_id LEFT JOIN accounts a ON a.id = t.account_id \
     LEFT JOIN payment_intents pint ON pint.id = t.intent_id";
const PAYER: &str = "TRIM(COALESCE(p.first_name, '') || ' ' || COALESCE(p.last_name, ''))";
const REFUNDED: &str = "CAST((SELECT COALESCE(-SUM(x.amount_ore), 0) FROM payments x WHERE x.installment_id = i.id AND x.amount_ore < 0) AS BIGINT)";

impl Family {
    pub(super) fn shape(self) -> Shape {
        use Kind::*;
        match self {
            Family::Installments => Shape {
                from: "installments i",
                through: "",
                joins: JOINS_OF_I,
                created: "i.created_at",
                numeric_id: false,
                raw: None,
                status: "i.status",
                amount: Some("i.amount_ore"),
                due: Some("i.due_date"),
                collected: Some("EXISTS (SELECT 1 FROM payments y WHERE y.installment_id = i.id AND y.amount_ore > 0 AND y.reversed_by_report_id IS NULL AND y.collection_date >= ? AND y.collection_date <= ?)"),
                intent: Some("i.intent_id"),
                installment: Some("i.id"),
                reference: Some("i.payment_reference"),
                mandate: Some("i.mandate_id"),
                recurring: Some("i.recurring_payment_id"),
                payer: Some("i.payer_id"),
                account: Some("i.account_id"),
                columns: &[
                    ("Id", "i.id", Text),
                    ("Created (UTC)", "i.created_at", Text),
                    ("Due date", "i.due_date", Text),
                    ("Status", "i.status", Text),
                    ("Amount (NOK)", "i.amount_ore", Money),
                    ("Open (NOK)", "CASE WHEN i.amount_open_ore < 0 THEN 0 ELSE i.amount_open_ore END", Money),
                    ("Refunded (NOK)", REFUNDED, Money),
                    ("Payment reference", "i.payment_reference", Text),
                    ("Payer", PAYER, Text),
                    ("Email", "p.email", Text),
                    ("Phone", "p.phone", Text),
                    ("Account", "a.name", Text),
                    ("Campaign", "pint.campaign_id", Text),
                    ("Origin", "pint.origin", Text),
                    ("Recurring payment", "i.recurring_payment_id", Text),
                ],
            },
            Family::Payments | Family::Refunds => {
                let payments = self == Family::Payments;
                Shape {
                    from: if payments { "payments t" } else { "refunds t" },
                    through: "JOIN installments i ON i.id = t.installment_id",
                    joins: JOINS_OF_I,
                    created: "t.created_at",
                    numeric_id: false,
                    raw: None,
                    status: if payments { "t.kind" } else { "t.status" },
                    amount: Some("t.amount_ore"),
                    due: Some("i.due_date"),
                    collected: payments.then_some("t.collection_date >= ? AND t.collection_date <= ?"),
                    intent: Some("i.intent_id"),
                    installment: Some("i.id"),
                    reference: Some("i.payment_reference"),
                    mandate: Some("i.mandate_id"),
                    recurring: Some("i.recurring_payment_id"),
                    payer: Some("i.payer_id"),
                    account: Some("i.account_id"),
                    columns: if payments {
                        &[
                            ("Id", "t.id", Text),
                            ("Created (UTC)", "t.created_at", Text),
                            ("Collection date", "t.collection_date", Text),
                            ("Type", "t.kind", Text),
                            ("Amount (NOK)", "t.amount_ore", Money),
                            ("Vipps reference", "t.psp_reference", Text),
                            ("Installment", "i.id", Text),
                            ("Payment reference", "i.payment_reference", Text),
                            ("Payer", PAYER, Text),
                            ("Email", "p.email", Text),
                            ("Account", "a.name", Text),
                            ("Campaign", "pint.campaign_id", Text),
                        ]
                    } else {
                        &[
                            ("Id", "t.id", Text),
                            ("Created (UTC)", "t.created_at", Text),
                            ("Status", "t.status", Text),
                            ("Amount (NOK)", "t.amount_ore", Money),
                            ("Reason", "t.reason", Text),
                            ("Vipps reference", "t.psp_reference", Text),
                            ("Error", "t.error", Text),
                            ("Installment", "i.id", Text),
                            ("Payment reference", "i.payment_reference", Text),
                            ("Payer", PAYER, Text),
                            ("Account", "a.name", Text),
                        ]
                    },
                }
            }
            Family::Recurring => Shape {
                from: "recurring_payments t",
                through: "",
                joins: JOINS_OF_T,
                created: "t.created_at",
                numeric_id: false,
                raw: None,
                status: "t.status",
                amount: Some("t.amount_ore"),
                due: Some("t.next_collection_date"),
                collected: None,
                intent: Some("t.intent_id"),
                installment: None,
                reference: None,
                mandate: Some("t.mandate_id"),
                recurring: Some("t.id"),
                payer: Some("t.payer_id"),
                account: Some("t.account_id"),
                columns: &[
                    ("Id", "t.id", Text),
                    ("Created (UTC)", "t.created_at", Text),
                    ("Status", "t.status", Text),
                    ("Amount (NOK)", "t.amount_ore", Money),
                    ("Frequency", "t.frequency", Text),
                    ("Start date", "t.start_date", Text),
                    ("Next collection", "CASE WHEN t.status IN ('Active', 'Paused') THEN t.next_collection_date END", Text),
                    ("Mandate", "t.mandate_id", Text),
                    ("Payer", PAYER, Text),
                    ("Email", "p.email", Text),
                    ("Account", "a.name", Text),
                    ("Campaign", "pint.campaign_id", Text),
                ],
            },
            Family::Mandates => Shape {
                from: "mandates t",
                through: "",
                joins: JOINS_OF_T,
                created: "t.created_at",
                numeric_id: false,
                raw: None,
                status: "t.status",
                amount: Some("t.price_ore"),
                due: None,
                collected: None,
                intent: Some("t.intent_id"),
                installment: None,
                reference: None,
                mandate: Some("t.id"),
                recurring: None,
                payer: Some("t.payer_id"),
                account: Some("t.account_id"),
                columns: &[
                    ("Id", "t.id", Text),
                    ("Created (UTC)", "t.created_at", Text),
                    ("Status", "t.status", Text),
                    ("Agreement", "t.agreement_id", Text),
                    ("Price (NOK)", "t.price_ore", Money),
                    ("Interval", "t.interval_unit || ' ' || CAST(t.interval_count AS TEXT)", Interval),
                    ("Product name", "t.product_name", Text),
                    ("Payer", PAYER, Text),
                    ("Phone", "t.customer_phone", Text),
                    ("Account", "a.name", Text),
                ],
            },
            Family::Reports => Shape {
                from: "inbound_reports t",
                through: "",
                joins: "",
                created: "t.created_at",
                numeric_id: false,
                raw: Some(("t.reference", false)),
                status: "t.status",
                amount: Some("t.amount_ore"),
                due: None,
                collected: None,
                intent: Some("t.intent_id"),
                installment: Some("t.installment_id"),
                reference: Some("t.reference"),
                mandate: None,
                recurring: None,
                payer: Some("(SELECT i2.payer_id FROM installments i2 WHERE i2.id = t.installment_id)"),
                account: None,
                columns: &[
                    ("Id", "t.id", Text),
                    ("Created (UTC)", "t.created_at", Text),
                    ("Type", "t.report_type", Text),
                    ("Event", "t.sub_type", Text),
                    ("Status", "t.status", Text),
                    ("Amount (NOK)", "t.amount_ore", Money),
                    ("Reference", "t.reference", Text),
                    ("Installment", "t.installment_id", Text),
                    ("Intent", "t.intent_id", Text),
                    ("Detail", "t.detail", Text),
                    ("Message", "t.message_id", Text),
                ],
            },
            Family::Messages => Shape {
                from: "messages t",
                through: "",
                joins: "",
                created: "t.received_at",
                numeric_id: false,
                raw: Some(("t.subject", false)),
                status: "t.status",
                amount: None,
                due: None,
                collected: None,
                intent: None,
                installment: None,
                reference: None,
                mandate: None,
                recurring: None,
                payer: None,
                account: None,
                columns: &[
                    ("Id", "t.id", Text),
                    ("Received (UTC)", "t.received_at", Text),
                    ("Direction", "t.direction", Text),
                    ("Channel", "t.channel", Text),
                    ("Subject", "t.subject", Text),
                    ("Status", "t.status", Text),
                    ("Error", "t.error", Text),
                    ("Processed (UTC)", "t.processed_at", Text),
                ],
            },
            Family::Deliveries => Shape {
                from: "webhook_deliveries t",
                through: "",
                joins: "",
                created: "t.created_at",
                numeric_id: false,
                raw: Some(("t.body", true)),
                status: "t.status",
                amount: None,
                due: None,
                collected: None,
                intent: None,
                installment: None,
                reference: None,
                mandate: None,
                recurring: None,
                payer: None,
                account: None,
                columns: &[
                    ("Id", "t.id", Text),
                    ("Created (UTC)", "t.created_at", Text),
                    ("Event", "t.event_type", Text),
                    ("Status", "t.status", Text),
                    ("Attempts", "CAST(t.attempts AS TEXT)", Text),
                    ("Last HTTP status", "CAST(t.last_status_code AS TEXT)", Text),
                    ("Last error", "t.last_error", Text),
                    ("URL", "t.url", Text),
                    ("Delivered (UTC)", "t.delivered_at", Text),
                ],
            },
            Family::Jobs => Shape {
                from: "jobs t",
                through: "",
                joins: "",
                created: "t.created_at",
                numeric_id: true,
                raw: Some(("t.payload", true)),
                status: "t.status",
                amount: None,
                due: None,
                collected: None,
                intent: None,
                installment: None,
                reference: None,
                mandate: None,
                recurring: None,
                payer: None,
                account: None,
                columns: &[
                    ("Id", "CAST(t.id AS TEXT)", Text),
                    ("Created (UTC)", "t.created_at", Text),
                    ("Kind", "t.kind", Text),
                    ("Status", "t.status", Text),
                    ("Attempts", "CAST(t.attempts AS TEXT)", Text),
                    ("Run at (UTC)", "t.run_at", Text),
                    ("Last error", "t.last_error", Text),
                    ("Ordering key", "t.ordering_key", Text),
                ],
            },
        }
    }

    /// The column headers, in the order of each line's cells.
    pub fn columns(self) -> Vec<(&'static str, Kind)> {
        self.shape().columns.iter().map(|(name, _, kind)| (*name, *kind)).collect()
    }

    /// The statuses (for payments: the types) a list can be narrowed to.
    pub fn statuses(self) -> &'static [&'static str] {
        match self {
            Family::Installments => &[
                "Outstanding",
                "Pending",
                "Collected",
                "Partially refunded",
                "Refunded",
                "Failed",
                "Cancelled",
                "Paid",
            ],
            Family::Payments => &["capture", "refund"],
            Family::Refunds => &["Pending", "Succeeded", "Failed"],
            Family::Recurring => &["Active", "Paused", "Cancelled", "Ended"],
            Family::Mandates => &["Pending", "Active", "Stopped", "Expired", "Cancelled"],
            Family::Reports => &["New", "Matched", "Ignored", "Failed"],
            Family::Messages => &["New", "Processed", "Failed"],
            Family::Deliveries => &["pending", "delivered", "failed"],
            Family::Jobs => &["queued", "running", "done", "failed"],
        }
    }

    /// Whether the list can be narrowed by a due or collection date.
    pub fn dates(self) -> (bool, bool) {
        let shape = self.shape();
        (shape.due.is_some(), shape.collected.is_some())
    }
}
