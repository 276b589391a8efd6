//! payhub's clock following a vipps-sim in another process (`PAYHUB_CLOCK_URL`): a fault run kills and restarts
//! payhub while the simulator keeps its payments, and moves the simulator's clock to make charges fall due and
//! payments age; payhub must see the same time, as it does with the sandbox's in-process simulator.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use url::Url;

use crate::jobs::Clock;

/// How often the simulator's clock is read again: a step of its clock reaches payhub within this.
const REFRESH: Duration = Duration::from_millis(100);

/// The simulator's time less the wall clock's, in microseconds, read from `GET {base}/_sim/clock`.
async fn read_offset(http: &reqwest::Client, url: &Url) -> anyhow::Result<i64> {
    let body: serde_json::Value = http.get(url.clone()).send().await?.error_for_status()?.json().await?;
    let now = body["now"].as_str().context("the clock's answer has no `now`")?;
    let now = DateTime::parse_from_rfc3339(now)?.with_timezone(&Utc);
    Ok((now - Utc::now()).num_microseconds().unwrap_or(0))
}

/// A clock that reads the simulator at `base` once now (start-up fails when it does not answer) and then every
/// [`REFRESH`] in a task of its own; between reads it runs with the wall clock, as the simulator's does. A
/// failed read keeps the last offset: the simulator's clock never goes back.
pub async fn follow_clock(base: &Url) -> anyhow::Result<Clock> {
    let url = base.join("_sim/clock").context("PAYHUB_CLOCK_URL")?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let offset = Arc::new(AtomicI64::new(
        read_offset(&http, &url).await.with_context(|| format!("reading the simulator's clock at {url}"))?,
    ));
    let follower = Arc::downgrade(&offset);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(REFRESH).await;
            let read = read_offset(&http, &url).await;
            let Some(offset) = follower.upgrade() else { return };
            if let Ok(read) = read {
                offset.fetch_max(read, Ordering::Relaxed);
            }
        }
    });
    Ok(Arc::new(move || Utc::now() + chrono::Duration::microseconds(offset.load(Ordering::Relaxed))))
}
