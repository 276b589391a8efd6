//! Operations' leaf: the current request's id, the request metrics, and log set-up. The middleware that sets
//! them is in `app`, the endpoints that show them in `api::ops`; everything below may read them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

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

/// Runs `work` as the request with this id: [`current_request_id`] answers it inside.
pub async fn with_request_id<F: std::future::Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
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

/// The business figures operators watch, next to the request metrics: intents by outcome, Vipps calls by API,
/// status and latency, Vipps webhook intake and outbound delivery outcomes, beat runs and durations. They are
/// process-wide (see [`business`]), so a flow counts without a handle passed down to it. Every label value
/// comes from a fixed set in code (an outcome, an API, an HTTP status, a beat's name), never from input, so
/// the number of series stays bounded.
#[derive(Default)]
pub struct Business {
    counters: Mutex<std::collections::BTreeMap<(&'static str, String), u64>>,
    histograms: Mutex<std::collections::BTreeMap<(&'static str, String), RouteSeries>>,
}

/// What each business series means, for its `# HELP` line.
const BUSINESS_HELP: [(&str, &str); 7] = [
    (
        "payhub_intents_total",
        "Payment intents taken by the Payment API, by outcome (created, refused, vipps_failed, error).",
    ),
    ("payhub_vipps_calls_total", "Attempts of calls to Vipps by API and HTTP status (none: no answer)."),
    ("payhub_vipps_call_duration_seconds", "Latency of attempts of calls to Vipps by API."),
    (
        "payhub_vipps_webhooks_total",
        "Vipps webhook deliveries received, by outcome (accepted, unknown, unsigned, error).",
    ),
    (
        "payhub_webhook_deliveries_total",
        "Attempts of outbound webhook deliveries, by outcome (delivered, retrying, failed).",
    ),
    ("payhub_beat_runs_total", "Heartbeat beat runs by beat and status (succeeded, failed)."),
    ("payhub_beat_duration_seconds", "Duration of heartbeat beat runs by beat."),
];

/// The process's business figures.
pub fn business() -> &'static Business {
    static BUSINESS: std::sync::OnceLock<Business> = std::sync::OnceLock::new();
    BUSINESS.get_or_init(Business::default)
}

fn label_text(labels: &[(&'static str, &str)]) -> String {
    labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect::<Vec<_>>().join(",")
}

impl Business {
    /// Adds one to the counter `name` with these labels.
    pub fn count(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        if let Ok(mut counters) = self.counters.lock() {
            *counters.entry((name, label_text(labels))).or_default() += 1;
        }
    }

    /// Records one observation, in seconds, in the histogram `name` with these labels.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        let Ok(mut histograms) = self.histograms.lock() else { return };
        let series = histograms.entry((name, label_text(labels))).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                series.buckets[i] += 1;
            }
        }
        series.sum += seconds;
        series.count += 1;
    }

    /// The figures in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut described = std::collections::BTreeSet::new();
        let mut describe = |out: &mut String, name: &'static str, kind: &str| {
            if described.insert(name) {
                let help = BUSINESS_HELP.iter().find(|(n, _)| *n == name).map_or("", |(_, h)| *h);
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            }
        };
        if let Ok(counters) = self.counters.lock() {
            for ((name, labels), value) in counters.iter() {
                describe(&mut out, name, "counter");
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
        if let Ok(histograms) = self.histograms.lock() {
            for ((name, labels), s) in histograms.iter() {
                describe(&mut out, name, "histogram");
                for (bound, count) in BUCKETS.iter().zip(s.buckets) {
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
                }
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
                let _ = writeln!(out, "{name}_sum{{{labels}}} {}", s.sum);
                let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.count);
            }
        }
        out
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
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

    #[test]
    fn business_figures_render_with_help_and_labels() {
        let business = Business::default();
        business.count("payhub_intents_total", &[("outcome", "created")]);
        business.count("payhub_intents_total", &[("outcome", "created")]);
        business.observe("payhub_vipps_call_duration_seconds", &[("api", "epayment")], 0.02);
        let text = business.render();
        assert!(text.contains("# TYPE payhub_intents_total counter"), "{text}");
        assert!(text.contains("payhub_intents_total{outcome=\"created\"} 2"), "{text}");
        assert!(text.contains("payhub_vipps_call_duration_seconds_bucket{api=\"epayment\",le=\"0.025\"} 1"), "{text}");
        assert!(text.contains("payhub_vipps_call_duration_seconds_count{api=\"epayment\"} 1"), "{text}");
    }
}
