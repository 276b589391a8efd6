//! The outcome every service operation shares, whichever way in (API, page, CLI) called it.

use crate::domain::FieldError;
use crate::store::StoreError;

/// Why a service operation did not happen. Nothing was changed in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input breaks the rules; one entry per field.
    #[error("invalid input: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    /// The input clashes with an existing record (a taken name, say).
    #[error("conflict: {}", describe(.0))]
    Conflict(Vec<FieldError>),
    /// The record named does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A failure that is not the caller's fault (database down, a sealed secret that will not open).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn describe(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ServiceError::NotFound("record"),
            other => ServiceError::Internal(other.into()),
        }
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(error: sqlx::Error) -> Self {
        ServiceError::Internal(error.into())
    }
}

/// One entry of the error envelope the APIs answer with; the flows use it for problems they find in an
/// intent while resolving it (an unknown Target, say), which the API then answers as they are.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ErrorItem {
    /// FinDock-style code, see the module docs.
    #[schema(example = "200")]
    pub error_code: &'static str,
    /// What went wrong, safe to show.
    pub error_message: String,
    /// The offending field's path, when one field is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Result of a service operation.
pub type ServiceResult<T> = Result<T, ServiceError>;
