//! Operations: request ids, Prometheus metrics, health and readiness, and log set-up.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::config::LogFormat;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The header carrying the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the request being handled, when called inside one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Gives every request an id (the caller's `x-request-id` when it is sane, else a new one), makes it
/// available to error bodies and logs, echoes it on the response, and records metrics.
pub async fn request_context(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route =
        request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = request.method().clone();
    let api = crate::auth::http::is_api_path(request.uri().path());
    let span = tracing::info_span!("request", request_id = %id, %method, route = %route);
    let started = Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), async move {
            let response = tracing::Instrument::instrument(next.run(request), span).await;
            if api {
                crate::api::error::envelope_framework_errors(response).await
            } else {
                response
            }
        })
        .await;
    state.metrics.observe(method.as_str(), &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct RouteSeries {
    counts_by_status: HashMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Request counters by route and status, and a latency histogram by route, in Prometheus text format.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<HashMap<(String, String), RouteSeries>>,
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let Ok(mut series) = self.series.lock() else { return };
        let entry = series.entry((method.to_owned(), route.to_owned())).or_default();
        *entry.counts_by_status.entry(status).or_default() += 1;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                entry.buckets[i] += 1;
            }
        }
        entry.sum += seconds;
        entry.count += 1;
    }

    /// The current values in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(series) = self.series.lock() else { return out };
        let mut keys: Vec<_> = series.keys().cloned().collect();
        keys.sort();
        out.push_str("# HELP payhub_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE payhub_http_requests_total counter\n");
        for key in &keys {
            let mut statuses: Vec<_> = series[key].counts_by_status.iter().collect();
            statuses.sort();
            for (status, count) in statuses {
                let _ = writeln!(
                    out,
                    "payhub_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                    key.0,
                    escape(&key.1)
                );
            }
        }
        out.push_str("# HELP payhub_http_request_duration_seconds HTTP request latency by method and route.\n");
        out.push_str("# TYPE payhub_http_request_duration_seconds histogram\n");
        for key in &keys {
            let s = &series[key];
            let labels = format!("method=\"{}\",route=\"{}\"", key.0, escape(&key.1));
            for (bound, count) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(out, "payhub_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "payhub_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
            let _ = writeln!(out, "payhub_http_request_duration_seconds_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(out, "payhub_http_request_duration_seconds_count{{{labels}}} {}", s.count);
        }
        out
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

/// `GET /metrics`: Prometheus scrape endpoint.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics.render();
    text.push_str(&format!(
        "# HELP payhub_group_commit_fallbacks_total Group-commit batches written one intent at a time after \
         failing together.\n# TYPE payhub_group_commit_fallbacks_total counter\npayhub_group_commit_fallbacks_total {}\n",
        state.payments.group_commit_fallbacks()
    ));
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Sets up `tracing` output: human-readable lines or JSON, filtered by `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_counters_and_histogram_buckets() {
        let metrics = Metrics::default();
        metrics.observe("GET", "/healthz", 200, 0.002);
        metrics.observe("GET", "/healthz", 200, 0.2);
        metrics.observe("GET", "/healthz", 503, 0.02);
        let text = metrics.render();
        assert!(text.contains("payhub_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"));
        assert!(text.contains("payhub_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"503\"} 1"));
        assert!(text.contains("le=\"0.0025\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 3"));
    }
}
