//! payhub: a self-hosted payment hub for Vipps MobilePay.
//!
//! The library holds everything; the `payhub` binary only parses its command line. Start with
//! [`app::Application::build`]. Module map (dependencies point downwards):
//!
//! - [`app`]: shared state, the one list of routes, start-up and shutdown;
//! - [`api`], [`web`]: the JSON APIs and the server-rendered pages (thin handlers);
//! - [`auth`]: users, roles, API keys, sessions, CSRF, audit;
//! - [`processing`]: the payment pipeline (intents, Vipps payments, captures, refunds, recurring payments:
//!   agreements, installments, charges);
//! - [`vipps`]: the Vipps extension (merchant account registry, a client per account);
//! - [`store`]: persistence on SQLite or PostgreSQL;
//! - [`domain`]: pure types and rules;
//! - [`config`], [`secrets`], [`ops`], [`error`]: configuration, sealing, operations, the service error;
//! - [`cli`], [`cli_recurring`]: the command line.

pub mod api;
pub mod app;
pub mod auth;
mod batcher;
pub mod cli;
pub mod cli_recurring;
pub mod config;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod ops;
pub mod processing;
pub mod secrets;
pub mod state;
pub mod store;
pub mod vipps;
pub mod web;
