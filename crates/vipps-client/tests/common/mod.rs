//! Shared test helpers: a simulator per test, a client for it, a pass-through proxy that counts
//! requests, and a capture server for webhook deliveries.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use vipps_client::{Client, ClientConfig, Credentials, Environment, Msn, RetryPolicy, Secret, SystemInfo};
use vipps_sim::{Merchant, SimConfig, Simulator};

pub struct TestEnv {
    pub sim: Simulator,
    pub http: reqwest::Client,
}

impl TestEnv {
    /// A simulator whose clock starts at noon in Oslo, so date-dependent tests never straddle midnight.
    pub async fn start() -> Self {
        Self::start_with(SimConfig::default()).await
    }

    pub async fn start_with(mut config: SimConfig) -> Self {
        if config.clock_start.is_none() {
            config.clock_start = Some("2026-11-20T11:00:00Z".parse().unwrap());
        }
        let sim = Simulator::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        Self { sim, http: reqwest::Client::new() }
    }

    pub fn base(&self) -> String {
        self.sim.base_url()
    }

    pub fn merchant(&self) -> &Merchant {
        &self.sim.merchants()[0]
    }

    /// A client for the first merchant with fast retries.
    pub fn client(&self) -> Client {
        client_for(&self.base(), self.merchant(), |_| {})
    }

    pub async fn control(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        let response = self.http.request(method, format!("{}{path}", self.base())).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The payer approves a payment in the (simulated) app.
    pub async fn approve(&self, reference: &str) {
        let (status, body) =
            self.control(Method::POST, &format!("/_sim/payments/{reference}/approve"), json!({})).await;
        assert_eq!(status, 200, "approve failed: {body}");
    }

    /// Makes the next `times` requests under `prefix` fail as `kind` describes.
    pub async fn fault(&self, prefix: &str, mut rule: Value, times: u32) {
        rule["pathPrefix"] = json!(prefix);
        rule["times"] = json!(times);
        let (status, body) = self.control(Method::POST, "/_sim/faults", rule).await;
        assert_eq!(status, 201, "fault rule refused: {body}");
    }
}

pub fn system() -> SystemInfo {
    SystemInfo {
        name: "payhub".into(),
        version: "0.1.0".into(),
        plugin_name: "vipps-client-tests".into(),
        plugin_version: "0.1.0".into(),
    }
}

pub fn config_for(base: &str, merchant: &Merchant) -> ClientConfig {
    let credentials = Credentials {
        client_id: merchant.client_id.clone(),
        client_secret: Secret::new(merchant.client_secret.clone()),
        subscription_key: Secret::new(merchant.subscription_key.clone()),
        msn: Msn::parse(&merchant.msn).unwrap(),
    };
    let mut config = ClientConfig::new(Environment::Custom(base.parse().unwrap()), credentials, system());
    config.retry = RetryPolicy::new(3, Duration::from_millis(20), Duration::from_millis(200));
    config.timeout = Duration::from_secs(5);
    config
}

pub fn client_for(base: &str, merchant: &Merchant, adjust: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut config = config_for(base, merchant);
    adjust(&mut config);
    Client::new(config).unwrap()
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

// ---------------------------------------------------------------------------------------------

/// One request that passed through the proxy.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub idempotency_key: Option<String>,
    pub headers: HeaderMap,
}

struct ProxyState {
    target: String,
    http: reqwest::Client,
    seen: Mutex<Vec<Seen>>,
}

/// A pass-through HTTP proxy in front of the simulator that records every request.
pub struct Proxy {
    pub base_url: String,
    state: Arc<ProxyState>,
}

impl Proxy {
    pub async fn start(target: String) -> Self {
        let state = Arc::new(ProxyState { target, http: reqwest::Client::new(), seen: Mutex::new(Vec::new()) });
        let app = axum::Router::new().fallback(forward).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base_url: format!("http://{addr}"), state }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        self.seen().iter().filter(|s| s.method == method && s.path == path).count()
    }

    pub fn token_fetches(&self) -> usize {
        self.count("POST", "/accesstoken/get")
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut outgoing = state.http.request(parts.method.clone(), format!("{}{path_and_query}", state.target));
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "host" | "content-length" | "transfer-encoding" | "connection") {
            outgoing = outgoing.header(name, value);
        }
    }
    // Recorded on arrival (status 0 until answered), so an attempt the client abandoned still counts.
    let index = {
        let mut seen = state.seen.lock().unwrap();
        seen.push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            status: 0,
            idempotency_key: parts.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned),
            headers: parts.headers.clone(),
        });
        seen.len() - 1
    };
    let result = outgoing.body(body).send().await;
    let (status, headers, bytes) = match result {
        Ok(r) => {
            let status = r.status();
            let headers = r.headers().clone();
            (status, headers, r.bytes().await.unwrap_or_default())
        }
        Err(_) => (StatusCode::BAD_GATEWAY, HeaderMap::new(), Bytes::new()),
    };
    state.seen.lock().unwrap()[index].status = status.as_u16();
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if !matches!(name.as_str(), "content-length" | "transfer-encoding" | "connection") {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(bytes)).unwrap()
}

// ---------------------------------------------------------------------------------------------

/// A webhook delivery as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Receives webhook deliveries on 127.0.0.1:port and pushes them into a channel.
pub struct CaptureServer {
    pub addr: SocketAddr,
    pub deliveries: mpsc::UnboundedReceiver<Delivery>,
}

impl CaptureServer {
    pub async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(move |request: Request| {
            let tx = tx.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
                let _ = tx.send(Delivery {
                    path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
                    headers: parts.headers,
                    body,
                });
                StatusCode::OK
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, deliveries: rx }
    }

    pub async fn next(&mut self) -> Delivery {
        tokio::time::timeout(Duration::from_secs(10), self.deliveries.recv())
            .await
            .expect("no webhook delivery within 10 s")
            .expect("capture server closed")
    }
}
