//! payhub: a self-hosted payment hub for Vipps MobilePay.
//!
//! The library holds everything; the `payhub` binary only parses its command line. Start with
//! [`app::Application::build`]. Module map (dependencies point downwards):
//!
//! - [`cli`], [`cli_recurring`], [`cli_ops`], [`app`]: the command line; the one list of routes, the access guard, the
//!   request middleware, start-up and shutdown;
//! - [`state`]: the wiring every handler receives;
//! - [`api`], [`web`]: the JSON APIs and the server-rendered pages (thin handlers);
//! - [`processing`], [`vipps`], [`jobs`], [`auth`]: the flows (intake, trail, one-time, refunds, recurring,
//!   outbox), the Vipps extension (accounts, clients, webhooks), the durable queue and heartbeat, who may
//!   call, and [`pages`] (Giving Pages);
//! - [`store`]: persistence on SQLite or PostgreSQL, one file per table family, group commit;
//! - [`domain`]: pure types and rules;
//! - [`config`], [`secrets`], [`ops`], [`error`]: configuration, sealing, request id and metrics, the service
//!   error.
//!
//! `ARCHITECTURE.md` at the repository's root draws the floors.

pub mod api;
pub mod app;
pub mod auth;
mod batcher;
pub mod cli;
pub mod cli_ops;
pub mod cli_reconcile;
pub mod cli_recurring;
pub mod cli_settlement;
pub mod config;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod ops;
pub mod pages;
pub mod processing;
pub mod reconcile;
pub mod secrets;
pub mod state;
pub mod store;
pub mod vipps;
pub mod web;
