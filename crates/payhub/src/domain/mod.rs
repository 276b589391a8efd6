//! Pure types and rules: no I/O. Everything here parses, validates and computes; storage and HTTP live elsewhere.

/// Serializes a status enum as its API name (`as_str`) and describes it in `/openapi.json` as a string of exactly
/// those names, so the document lists every value the code can write and no other.
macro_rules! named_values {
    ($type:ty, $description:literal, [$($variant:expr),+ $(,)?]) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
        impl utoipa::PartialSchema for $type {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($description))
                    .enum_values(Some([$($variant.as_str()),+]))
                    .into()
            }
        }
        impl utoipa::ToSchema for $type {}
    };
}

pub mod account;
pub mod giving_page;
pub mod guided;
pub mod ids;
pub mod intent;
pub mod ledger;
pub mod money;
pub mod phone;
pub mod record_actions;
pub mod recurring;
pub mod role;
pub mod schedule;
pub mod search;
pub mod status;
pub mod trail;
pub mod vipps_state;
pub mod webhook_target;

/// One problem with one input field, in the words shown to the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The field's name as the caller sent it (e.g. `merchant_serial_number`).
    pub field: &'static str,
    /// What is wrong, safe to show.
    pub message: String,
    /// Whether the value was missing (as opposed to present but invalid).
    pub missing: bool,
}

impl FieldError {
    /// A required value that was not given.
    pub fn missing(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into(), missing: true }
    }

    /// A value that was given but breaks a rule.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into(), missing: false }
    }
}
