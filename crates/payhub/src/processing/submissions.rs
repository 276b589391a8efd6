//! A submission about a record payhub already has (a PayLink or the Payment API's `OneTime.Id` pays an
//! installment, a Setup URL renews a recurring payment's agreement) enters like every other channel's intent: a
//! **Message** with the form or body as received, its **Inbound Report** (`PaymentIntent` / `Default`), and a
//! payment intent whose `Origin` names the page or the API, all in the caller's transaction and before anything
//! is asked of Vipps. The flow then moves the intent to `Matched` (the payer was sent to Vipps) or `Failed`.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::trail::{self, Channel, Means, Outcome, ReportType, Said};
use crate::store::renewals::{self, PageIntent};
use crate::store::StoreResult;

/// `Origin` of a PayLink submission.
pub const PAYLINK: &str = "PayLink";
/// `Origin` of a Setup URL submission.
pub const SETUP_URL: &str = "SetupURL";
/// `Origin` of a Payment API request that pays an existing installment (`OneTime.Id`).
pub const PAYMENT_API: &str = "PaymentAPI";

/// One submission, about an existing record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Submission<'a> {
    /// The new intent's id (`pi_…`), also the Message's subject.
    pub intent_id: &'a str,
    /// [`PAYLINK`], [`SETUP_URL`] or [`PAYMENT_API`].
    pub origin: &'a str,
    /// The form as the page received it (the body, for the API).
    pub raw: &'a str,
    /// The merchant account.
    pub account_id: &'a str,
    /// The payer.
    pub payer_id: &'a str,
    /// The installment it pays, if any.
    pub installment_id: Option<&'a str>,
    /// The amount it concerns, in øre.
    pub amount_ore: i64,
    /// The installment's payment reference, if any.
    pub reference: Option<&'a str>,
    /// Where the payer goes back to (a page that tells the outcome).
    pub return_url: &'a str,
    /// What it asks for, in words (which record, which page).
    pub detail: &'a str,
}

/// Records the submission's Message, Inbound Report and payment intent (`Processing`) in the caller's
/// transaction.
pub(crate) async fn record(conn: &mut AnyConnection, s: Submission<'_>, now: DateTime<Utc>) -> StoreResult<()> {
    let mut means = Means::new(ReportType::PaymentIntent, "Default", Outcome::Matched)
        .amount(s.amount_ore)
        .installment(s.installment_id)
        .intent(Some(s.intent_id))
        .detail(Some(s.detail));
    if let Some(reference) = s.reference {
        means = means.reference(reference);
    }
    let recorded = trail::record(&mut *conn, Said::new(Channel::Api, Some(s.intent_id), s.raw), means, now).await?;
    let intent = PageIntent {
        id: s.intent_id,
        report_id: &recorded.report_id,
        account_id: s.account_id,
        payer_id: s.payer_id,
        installment_id: s.installment_id,
        return_url: s.return_url,
        origin: s.origin,
    };
    renewals::insert_page_intent(conn, &intent, now).await
}
