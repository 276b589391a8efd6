//! payhub's API and page tests: the real application over real HTTP, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod helpers;

mod account_isolation;
mod accounts;
mod backup;
mod business_metrics;
mod cli;
mod credential_check;
mod data_dir;
mod deploy_files;
mod fault_suite;
mod fuzz_input;
mod giving_pages;
mod guided_matching;
mod hostile_input;
mod idempotency;
mod jobs;
mod json_logs;
mod login;
mod one_time;
mod one_time_races;
mod operations;
mod outbound_webhooks;
mod page_security;
mod paylinks;
mod polls;
mod reconciliation;
mod records_fixes;
mod records_lists;
mod recurring;
mod recurring_bad_input;
mod recurring_beats_by_hand;
mod recurring_changes;
mod recurring_charge_faults;
mod recurring_charge_reports;
mod recurring_dropped_charges;
mod recurring_pending_changes;
mod recurring_races;
mod recurring_vipps_webhooks;
mod retention;
mod roles;
mod secrets_at_rest;
mod setup_pages;
mod vipps_webhooks;
mod webhook_targets;
