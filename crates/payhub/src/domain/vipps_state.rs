//! What payhub records of a Vipps object's state: Vipps' own state names (kept exactly as Vipps spells them,
//! which is also how they are stored) plus payhub's own before Vipps has said anything (`CREATING`: recorded,
//! not yet confirmed by Vipps; `REFUSED`: Vipps turned the create down). Flows match on these types, never on
//! the text; the store converts at its boundary, so the database values stay Vipps' names.
//!
//! A state Vipps adds later is kept as sent (`Other`), so it is stored and shown unchanged.

/// Defines a state enum with its stored name per variant, and `Other` for a name payhub does not know.
macro_rules! stored_states {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A name payhub does not know, kept as Vipps sent it.
            Other(String),
        }

        impl $name {
            /// The stored (and Vipps') name.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Other(other) => other,
                }
            }

            /// The state a stored name stands for; an unknown name is kept as [`Self::Other`].
            pub fn parse(text: &str) -> Self {
                match text {
                    $($text => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(concat!(
                        "Vipps' state name as Vipps spells it (payhub's own `CREATING` before Vipps confirmed, \
                         `REFUSED` when Vipps turned the create down); known: ",
                        $($text, " ",)*
                        "; a name Vipps adds later is shown as sent."
                    )))
                    .examples([serde_json::json!([$($text),*][0])])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

stored_states! {
    /// The state of the Vipps ePayment behind a one-time installment (`vipps_payments.state`).
    pub enum PaymentState {
        /// Recorded; the create is not yet confirmed by Vipps.
        Creating => "CREATING",
        /// Vipps refused the create.
        Refused => "REFUSED",
        /// Created at Vipps, waiting for the payer.
        Created => "CREATED",
        /// The payer approved; the amount is reserved.
        Authorized => "AUTHORIZED",
        /// The payer cancelled.
        Aborted => "ABORTED",
        /// The payer did not approve in time.
        Expired => "EXPIRED",
        /// Cancelled before the payer approved.
        Terminated => "TERMINATED",
    }
}

impl PaymentState {
    /// Whether a payment recorded as `self` may be recorded as `next`: forward only (`CREATING` → anything;
    /// `CREATED` → authorized or ended; `AUTHORIZED` → ended; `REFUSED` and the ended states are final), so a
    /// late or stale answer never moves a payment back. Staying put is allowed (its totals may change). A state
    /// payhub does not know is taken from any state that is not final, and may become any state but `CREATING`.
    pub fn may_become(&self, next: &PaymentState) -> bool {
        use PaymentState::*;
        if self == next {
            return true;
        }
        match (self, next) {
            (_, Creating) => false,
            (Creating, _) => true,
            (Refused | Aborted | Expired | Terminated, _) => false,
            (Created, Authorized | Aborted | Expired | Terminated | Other(_)) => true,
            (Created, Refused | Created) => false,
            (Authorized, Aborted | Expired | Terminated | Other(_)) => true,
            (Authorized, Refused | Created | Authorized) => false,
            (Other(_), Refused) => false,
            (Other(_), _) => true,
        }
    }

    /// Every state payhub knows.
    pub const KNOWN: [PaymentState; 7] = [
        PaymentState::Creating,
        PaymentState::Refused,
        PaymentState::Created,
        PaymentState::Authorized,
        PaymentState::Aborted,
        PaymentState::Expired,
        PaymentState::Terminated,
    ];
}

stored_states! {
    /// The Vipps status of a mandate's agreement (`mandates.vipps_status`).
    pub enum AgreementState {
        /// Recorded; the draft is not yet confirmed by Vipps.
        Creating => "CREATING",
        /// Vipps refused the draft.
        Refused => "REFUSED",
        /// Drafted; waiting for the payer to confirm.
        Pending => "PENDING",
        /// Confirmed by the payer.
        Active => "ACTIVE",
        /// Stopped by the payer or the merchant.
        Stopped => "STOPPED",
        /// Not confirmed in time.
        Expired => "EXPIRED",
    }
}

impl AgreementState {
    /// Whether an agreement recorded as `self` may be recorded as `next`: forward only (`CREATING` → anything
    /// else; `PENDING` → ended or `ACTIVE`; `ACTIVE` → ended; `REFUSED`, `STOPPED` and `EXPIRED` are final), so
    /// a stale read (`PENDING` read before the payer approved, answered after) never moves an agreement back.
    /// Staying put is allowed.
    pub fn may_become(&self, next: &AgreementState) -> bool {
        use AgreementState::*;
        if self == next {
            return true;
        }
        match (self, next) {
            (_, Creating) => false,
            (Creating, _) => true,
            (Refused | Stopped | Expired, _) => false,
            (Pending, Active | Stopped | Expired) => true,
            (Active, Stopped | Expired) => true,
            (Other(_), Refused) => false,
            (Other(_), _) | (_, Other(_)) => true,
            (Pending | Active, _) => false,
        }
    }

    /// Every state payhub knows.
    pub const KNOWN: [AgreementState; 6] = [
        AgreementState::Creating,
        AgreementState::Refused,
        AgreementState::Pending,
        AgreementState::Active,
        AgreementState::Stopped,
        AgreementState::Expired,
    ];
}

stored_states! {
    /// The state of a Vipps charge (`vipps_charges.state`).
    pub enum ChargeState {
        /// Recorded; not yet confirmed by Vipps.
        Creating => "CREATING",
        /// Vipps refused the create.
        Refused => "REFUSED",
        /// Created; waiting for its due date.
        Pending => "PENDING",
        /// Due within the next days.
        Due => "DUE",
        /// Vipps is collecting it.
        Processing => "PROCESSING",
        /// Reserved (reserve capture).
        Reserved => "RESERVED",
        /// Collected.
        Charged => "CHARGED",
        /// Partly captured.
        PartiallyCaptured => "PARTIALLY_CAPTURED",
        /// Partly refunded.
        PartiallyRefunded => "PARTIALLY_REFUNDED",
        /// Refunded.
        Refunded => "REFUNDED",
        /// Failed after its retry days.
        Failed => "FAILED",
        /// Cancelled.
        Cancelled => "CANCELLED",
    }
}

stored_states! {
    /// What a charge collects (`vipps_charges.kind`).
    pub enum ChargeKind {
        /// The initial payment, charged when the payer confirms the agreement.
        Initial => "INITIAL",
        /// One period of a recurring payment.
        Recurring => "RECURRING",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agreement_state_only_moves_forward() {
        use AgreementState::*;
        assert!(Creating.may_become(&Pending) && Pending.may_become(&Active) && Active.may_become(&Stopped));
        for late in [Creating, Refused, Pending] {
            assert!(!Active.may_become(&late), "{late}");
        }
        for last in [Refused, Stopped, Expired] {
            assert!(AgreementState::KNOWN.iter().filter(|s| **s != last).all(|s| !last.may_become(s)), "{last}");
        }
    }

    #[test]
    fn a_payment_state_only_moves_forward() {
        use PaymentState::*;
        assert!(Creating.may_become(&Created) && Creating.may_become(&Refused) && Creating.may_become(&Authorized));
        assert!(Created.may_become(&Authorized) && Authorized.may_become(&Authorized));
        for late in [Creating, Created, Refused] {
            assert!(!Authorized.may_become(&late), "{late}");
        }
        for last in [Refused, Aborted, Expired, Terminated] {
            assert!(PaymentState::KNOWN.iter().filter(|s| **s != last).all(|s| !last.may_become(s)), "{last}");
        }
        assert!(!Created.may_become(&Creating) && Other("NEW".into()).may_become(&Authorized));
    }

    #[test]
    fn names_read_back_as_the_same_state_and_unknown_ones_are_kept() {
        for state in [PaymentState::Creating, PaymentState::Authorized, PaymentState::Other("NEW".into())] {
            assert_eq!(PaymentState::parse(state.as_str()), state);
        }
        assert_eq!(ChargeState::parse("PARTIALLY_CAPTURED"), ChargeState::PartiallyCaptured);
        assert_eq!(AgreementState::parse("STOPPED").to_string(), "STOPPED");
        assert_eq!(ChargeKind::parse("UNSCHEDULED"), ChargeKind::Other("UNSCHEDULED".into()));
        assert_eq!(serde_json::to_value(ChargeState::Due).ok(), Some(serde_json::json!("DUE")));
    }
}
