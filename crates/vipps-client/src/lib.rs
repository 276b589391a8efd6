//! vipps-client
