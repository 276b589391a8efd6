//! The Vipps extension: the registry of merchant accounts (more — clients per account, status mapping, webhook
//! intake — arrives with the payment paths).

pub mod accounts;
