//! payhub's API and page tests: the real application over real HTTP, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod helpers;

mod accounts;
mod cli;
mod hostile_input;
mod jobs;
mod login;
mod one_time;
mod operations;
mod outbound_webhooks;
mod recurring;
mod recurring_robustness;
mod roles;
mod secrets_at_rest;
mod setup_pages;
mod vipps_webhooks;
