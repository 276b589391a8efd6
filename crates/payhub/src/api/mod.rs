//! JSON APIs: the admin API under `/admin/api` (Payment API v2 handlers arrive with the payment paths).

pub mod admin;
pub mod error;
pub mod json;
pub mod webhooks_admin;
