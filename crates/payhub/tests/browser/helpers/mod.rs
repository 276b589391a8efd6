//! The browser harness: real headless Chromium driven over the W3C WebDriver protocol (chromedriver, started
//! here for each test), axe-core for accessibility, and the API tests' [`TestApp`] and simulator.
//!
//! - [`webdriver`]: chromedriver and one browser session (open, type, click, read, run a script, screenshot);
//! - [`axe`]: axe-core from the npm registry (fetched once into the build's temp folder, never committed),
//!   run in the page; only serious and critical violations fail a test;
//! - the API tests' helpers ([`TestApp`], [`Vipps`], [`storage`]) are this binary's too.
//!
//! Without Chromium and chromedriver (`apt-get install chromium chromium-driver`) the tests print that they
//! were skipped; `.ci/run` installs both.

#[allow(dead_code, unused_imports)]
#[path = "../../api/helpers/mod.rs"]
mod app;

pub mod axe;
pub mod webdriver;

#[allow(unused_imports)]
pub use app::*;
