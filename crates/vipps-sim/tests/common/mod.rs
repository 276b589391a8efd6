//! Test helpers: a running simulator plus a small authenticated client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod openapi;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use vipps_sim::{Merchant, SimConfig, Simulator};

pub struct TestSim {
    pub sim: Simulator,
    pub http: reqwest::Client,
    pub base: String,
    pub merchant: Merchant,
    pub token: String,
    current: std::sync::Mutex<String>,
}

/// A response reduced to what tests look at.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    /// The ePayment error code in `extraDetails`.
    pub fn error_code(&self) -> String {
        let v = self.json();
        v["extraDetails"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["name"] == "ErrorCode"))
            .and_then(|d| d["reason"].as_str())
            .unwrap_or("")
            .to_owned()
    }
    /// The Recurring problem identifier after `#` in `type`.
    pub fn problem_id(&self) -> String {
        let v = self.json();
        v["type"].as_str().and_then(|t| t.split('#').nth(1)).unwrap_or("").to_owned()
    }
}

pub fn config_with(f: impl FnOnce(&mut SimConfig)) -> SimConfig {
    let mut c = SimConfig {
        merchants: vec![Merchant::random("123456"), Merchant::random("654321")],
        webhook_retry_base: std::time::Duration::from_millis(20),
        ..SimConfig::default()
    };
    f(&mut c);
    c
}

impl TestSim {
    pub async fn start() -> TestSim {
        TestSim::start_with(config_with(|_| {})).await
    }

    pub async fn start_with(config: SimConfig) -> TestSim {
        let sim = Simulator::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let http = reqwest::Client::new();
        let base = sim.base_url();
        let merchant = sim.merchants()[0].clone();
        let mut t =
            TestSim { sim, http, base, merchant: merchant.clone(), token: String::new(), current: Default::default() };
        t.token = t.token_for(&merchant).await;
        *t.current.lock().unwrap() = t.token.clone();
        t
    }

    pub async fn token_for(&self, m: &Merchant) -> String {
        let r = self
            .http
            .post(format!("{}/accesstoken/get", self.base))
            .header("client_id", &m.client_id)
            .header("client_secret", &m.client_secret)
            .header("Ocp-Apim-Subscription-Key", &m.subscription_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// An authenticated request with MSN and (for writes) a given idempotency key.
    pub async fn call(&self, method: Method, path: &str, key: Option<&str>, body: Option<&Value>) -> Resp {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.current.lock().unwrap().clone())
            .header("Ocp-Apim-Subscription-Key", &self.merchant.subscription_key)
            .header("Merchant-Serial-Number", &self.merchant.msn);
        if let Some(k) = key {
            rb = rb.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        send(rb).await
    }

    /// Advances the virtual clock and fetches a fresh token (the old one may have expired).
    pub async fn advance(&self, seconds: i64) {
        self.sim.advance(seconds).await;
        let fresh = self.token_for(&self.merchant).await;
        *self.current.lock().unwrap() = fresh;
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        let key = uuid::Uuid::new_v4().to_string();
        self.call(Method::POST, path, Some(&key), Some(body)).await
    }

    /// A `/_sim/` control call (no token).
    pub async fn control(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        send(rb).await
    }
}

pub async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Resp { status, headers, text }
}

/// A typical web payment body.
pub fn payment_body(reference: &str, value: i64) -> Value {
    serde_json::json!({
        "amount": {"currency": "NOK", "value": value},
        "paymentMethod": {"type": "WALLET"},
        "customer": {"phoneNumber": "4791234567"},
        "reference": reference,
        "returnUrl": format!("https://example.com/return?ref={reference}"),
        "userFlow": "WEB_REDIRECT",
        "paymentDescription": "One pair of socks"
    })
}

pub fn unique_ref(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
