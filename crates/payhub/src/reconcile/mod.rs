//! Reconciliation: what Vipps settled, read from the Report API or from the portal's settlement files,
//! recorded through the trail and booked against payhub's records, with a queue for what a person decides.

pub mod file_import;
pub mod queue;
pub mod settlement_file;
