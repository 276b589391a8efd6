//! Roles and what each may do.

use std::fmt;
use std::str::FromStr;

/// A user's or API key's role. Checked server-side on every route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including setup, users and keys.
    Admin,
    /// Records, refunds and reconciliation; no setup.
    Finance,
    /// The Payment API only.
    Integrator,
}

/// What a route needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not (health, login).
    Public,
    /// Setup: merchant accounts, users, keys, audit log.
    Admin,
    /// Records, refunds, reconciliation.
    Finance,
    /// The Payment API's writes that take payments (new intents): integrators and admins.
    PaymentApi,
    /// The Payment API's reads of records (intents, installments, recurring payments, mandates, methods): every
    /// role, so a finance key reads what a finance user sees on the pages and may refund.
    ApiRead,
    /// Money operations on existing records (refunds, changes to recurring payments, Cancel Vipps Agreement):
    /// finance staff and the Payment API alike.
    Refunds,
    /// Any signed-in user or valid key (dashboard, own session).
    SignedIn,
}

impl Role {
    /// Every role, for listings and tests.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Finance, Role::Integrator];

    /// Whether this role may use a route that needs `access`.
    pub fn allows(self, access: Access) -> bool {
        match access {
            Access::Public | Access::SignedIn => true,
            Access::Admin => self == Role::Admin,
            Access::Finance => matches!(self, Role::Admin | Role::Finance),
            Access::PaymentApi => matches!(self, Role::Admin | Role::Integrator),
            Access::Refunds | Access::ApiRead => true,
        }
    }

    /// The lowercase name stored in the database and shown in the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Finance => "finance",
            Role::Integrator => "integrator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "finance" => Ok(Role::Finance),
            "integrator" => Ok(Role::Integrator),
            other => Err(format!("`{other}` is not a role (admin, finance, integrator)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finance_cannot_set_up_and_integrators_only_use_the_payment_api() {
        assert!(Role::Admin.allows(Access::Admin) && Role::Admin.allows(Access::PaymentApi));
        assert!(!Role::Finance.allows(Access::Admin) && Role::Finance.allows(Access::Finance));
        assert!(!Role::Finance.allows(Access::PaymentApi));
        assert!(Role::ALL.iter().all(|role| role.allows(Access::ApiRead)), "a finance key reads what it may refund");
        assert!(Role::Integrator.allows(Access::PaymentApi) && !Role::Integrator.allows(Access::Finance));
        assert_eq!("finance".parse::<Role>(), Ok(Role::Finance));
        assert!("root".parse::<Role>().is_err());
    }
}
