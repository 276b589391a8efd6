//! The intake: every channel's payment intent (the Payment API today, Giving Pages and PayLinks next) enters
//! here, one-time or recurring. The caller has parsed and checked it into a [`domain::intent::Intent`]; the
//! intake resolves the account and its defaults, records the intent (Message, Inbound Report, payer, profile
//! and the kind's records, in one transaction), then creates it at Vipps with a key derived from those
//! records. A channel never calls the kind-specific steps itself.
//!
//! [`domain::intent::Intent`]: crate::domain::intent::Intent

use super::recurring::RecurringCreated;
use super::{IntentCreated, IntentError, Payments};
use crate::domain::intent::Intent;

/// What the intake made of an intent.
#[derive(Debug, Clone)]
pub enum Taken {
    /// A one-time payment, created at Vipps.
    OneTime(IntentCreated),
    /// A recurring payment whose agreement was drafted at Vipps.
    Recurring(RecurringCreated),
}

impl Taken {
    /// The intent's id (`pi_…`).
    pub fn intent_id(&self) -> &str {
        match self {
            Taken::OneTime(created) => &created.intent_id,
            Taken::Recurring(created) => &created.intent_id,
        }
    }

    /// Where the payer goes next: Vipps' landing page.
    pub fn redirect_url(&self) -> Option<&str> {
        match self {
            Taken::OneTime(created) => created.redirect_url.as_deref(),
            Taken::Recurring(created) => created.redirect_url.as_deref(),
        }
    }

    /// The merchant account's name.
    pub fn target(&self) -> &str {
        match self {
            Taken::OneTime(created) => &created.target,
            Taken::Recurring(created) => &created.target,
        }
    }
}

impl Payments {
    /// Takes in an intent from any channel: records it and creates it at Vipps. `raw_body` is what the
    /// channel received, kept as the intent's Message.
    pub async fn take_intent(&self, intent: &Intent, raw_body: &str) -> Result<Taken, IntentError> {
        match intent {
            Intent::OneTime(intent) => self.create_one_time(intent, raw_body).await.map(Taken::OneTime),
            Intent::Recurring(intent) => self.create_recurring(intent, raw_body).await.map(Taken::Recurring),
        }
    }
}
