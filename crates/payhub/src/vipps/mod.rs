//! The Vipps extension: the registry of merchant accounts, a Vipps client per account, and the webhook
//! registration and intake.

pub mod accounts;
pub mod client;
pub mod intake;
pub mod states;
pub mod webhooks;
