//! JSON APIs: the admin API under `/admin/api` and the Payment API v2 under `/v2`.

pub mod admin;
pub mod error;
pub mod giving_pages;
pub mod guided;
pub mod json;
pub mod openapi;
pub mod ops;
pub mod reconciliation;
pub mod v2;
pub mod vipps_webhooks;
pub mod webhooks_admin;
