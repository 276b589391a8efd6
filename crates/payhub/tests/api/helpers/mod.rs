//! The test harness: the real application on port 0 with a fresh database (an SQLite file, or a new
//! PostgreSQL database when `PAYHUB_TEST_DATABASE_URL` is set), and helpers that go through the public HTTP API.
//!
//! - this module: [`TestApp`] (one per test, on each backend), a signed-in [`Browser`], the simulator ([`Vipps`]);
//! - [`recurring`]: recurring intents, the days passing, and reading recurring payments and installments back;
//! - [`vipps`]: what Vipps itself holds (a client with the merchant's own credentials), faults, signed webhooks;
//! - [`cli`]: the `payhub` binary, run as an operator runs it;
//! - [`conformance`]: every JSON answer checked against payhub's own `/openapi.json`;
//! - [`storage`]: the few reads of payhub's tables, for tests whose claim is about storage itself.
//!
//! `AppState` is named here only (the one import of `payhub::state::AppState`).

pub mod cli;
pub mod conformance;
pub mod recurring;
pub mod storage;
pub mod vipps;

use std::collections::HashMap;

use payhub::app::Application;
use payhub::auth::{self, Actor};
use payhub::config::Config;
use payhub::domain::role::Role;
use payhub::state::AppState;
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each test body once per backend: `mod name { fn sqlite(); fn postgres() }`. The PostgreSQL variant
/// prints that it was skipped when `PAYHUB_TEST_DATABASE_URL` is not set (CI always sets it).
/// `on_both_backends! { with &[("PAYHUB_…", "…")]; async fn … }` starts the apps with those settings too.
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        $crate::on_both_backends! { with &[]; $(async fn $name($app) $body)* }
    };
    (with $settings:expr; $(async fn $name:ident($app:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($app: $crate::helpers::TestApp) $body
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() { run($crate::helpers::TestApp::spawn_with($crate::helpers::Backend::Sqlite, $settings).await.expect("sqlite app")).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    match $crate::helpers::TestApp::spawn_with($crate::helpers::Backend::Postgres, $settings).await {
                        Some(app) => run(app).await,
                        None => eprintln!("skipped: PAYHUB_TEST_DATABASE_URL is not set"),
                    }
                }
            }
        )*
    };
}

/// A running payhub for one test.
pub struct TestApp {
    pub base: String,
    pub state: AppState,
    pub http: Client,
    pub admin_key: String,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
    /// `PAYHUB_MASTER_KEY` of this app (64 hex digits), for CLI runs that must open its sealed secrets.
    pub master_key: String,
    pub backend: Backend,
    pg_cleanup: Option<(String, String)>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// The check of every JSON answer against `/openapi.json`; its mismatches fail the test at drop.
    pub conformance: conformance::Conformance,
    /// payhub's clock follows this one once set ([`TestApp::with_vipps`] sets the simulator's).
    clock: std::sync::Arc<std::sync::RwLock<Option<payhub::jobs::Clock>>>,
}

impl TestApp {
    /// Starts the application on `backend`; `None` when that backend is not available.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts the application on `backend` with these `PAYHUB_*` settings over the tests' own.
    pub async fn spawn_with(backend: Backend, settings: &[(&str, &str)]) -> Option<TestApp> {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()))
            .try_init();
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut pg_cleanup = None;
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}?mode=rwc", data_dir.path().join("payhub.db").display()),
            Backend::Postgres => {
                let server = std::env::var("PAYHUB_TEST_DATABASE_URL").ok()?;
                let name = format!("payhub_test_{}", uuid::Uuid::new_v4().simple());
                let admin = sqlx::PgPool::connect(&server).await.expect("connect to PAYHUB_TEST_DATABASE_URL");
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.expect("create test database");
                admin.close().await;
                pg_cleanup = Some((server.clone(), name.clone()));
                replace_database(&server, &name)
            }
        };
        let mut env = HashMap::new();
        env.insert("PAYHUB_LISTEN".to_owned(), "127.0.0.1:0".to_owned());
        env.insert("PAYHUB_DATA_DIR".to_owned(), data_dir.path().display().to_string());
        env.insert("PAYHUB_DATABASE_URL".to_owned(), database_url.clone());
        let master_key = hex_key();
        env.insert("PAYHUB_MASTER_KEY".to_owned(), master_key.clone());
        env.insert("PAYHUB_VIPPS_TIMEOUT_MS".to_owned(), "1000".to_owned());
        // The tests' receivers listen on 127.0.0.1; `webhook_targets.rs` turns this off.
        env.insert("PAYHUB_ALLOW_PRIVATE_WEBHOOK_TARGETS".to_owned(), "true".to_owned());
        for (name, value) in settings {
            env.insert((*name).to_owned(), (*value).to_owned());
        }
        let config = Config::from_sources(None, &env).expect("test config");
        let clock: std::sync::Arc<std::sync::RwLock<Option<payhub::jobs::Clock>>> = Default::default();
        let follow = clock.clone();
        let app = Application::build_with_clock(
            config,
            std::sync::Arc::new(move || {
                let source = follow.read().unwrap_or_else(|p| p.into_inner()).clone();
                source.map_or_else(chrono::Utc::now, |c| c())
            }),
        )
        .await
        .expect("application builds");
        let address = app.address();
        let state = app.state().clone();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let conformance = conformance::Conformance::default();
        let check = conformance.clone();
        tokio::spawn(app.run_wrapped(move |router| check.wrap(router), async move {
            let _ = stop.await;
        }));
        let (_, admin_key) =
            auth::create_api_key(&state.store, "test admin", Role::Admin, &Actor::cli()).await.expect("admin key");
        Some(TestApp {
            base: format!("http://{address}"),
            state,
            http: Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
            admin_key,
            data_dir,
            database_url,
            master_key,
            backend,
            pg_cleanup,
            shutdown: Some(shutdown),
            conformance,
            clock,
        })
    }

    /// An absolute URL on this app.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the admin key.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(&self.admin_key)
    }

    /// A fresh API key of `role`.
    pub async fn key(&self, role: Role) -> String {
        auth::create_api_key(&self.state.store, &format!("{role} key"), role, &Actor::cli()).await.expect("key").1
    }

    /// Creates an account through the admin API and returns its JSON.
    pub async fn create_account(&self, body: Value) -> Value {
        let response = self.admin(Method::POST, "/admin/api/accounts").json(&body).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::CREATED, "creating {body}");
        response.json().await.expect("json")
    }

    /// A browser signed in as a new user of `role`: its client (with cookies) and a CSRF token read from a page.
    pub async fn browser(&self, role: Role) -> Browser {
        let email = format!("{}-{}@example.org", role, uuid::Uuid::new_v4().simple());
        let password = "a long password 123";
        auth::create_user(&self.state.store, &email, password, role, &Actor::cli()).await.expect("user");
        let browser = Browser::new(self);
        let status = browser.sign_in(&email, password).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "sign-in redirects");
        browser
    }

    /// A second payhub instance on this app's database: its own pool, queue and Vipps clients, the same clock
    /// (the simulator's). Close its store (`other.store.close()`) at the end of the test.
    pub async fn second_instance(&self, vipps: &Vipps) -> AppState {
        let config = (*self.state.config).clone();
        Application::build_state(config, std::sync::Arc::new(vipps.sim.clock_fn())).await.expect("second instance")
    }

    /// The number of accounts in the database.
    pub async fn account_count(&self) -> usize {
        let body: Value =
            self.admin(Method::GET, "/admin/api/accounts").send().await.expect("list").json().await.expect("json");
        body["accounts"].as_array().map(Vec::len).unwrap_or_default()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some((server, name)) = self.pg_cleanup.take() {
            // Drop the test database from a thread of its own: the test's runtime is going away.
            let _ = std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                runtime.block_on(async {
                    if let Ok(admin) = sqlx::PgPool::connect(&server).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await;
                        admin.close().await;
                    }
                });
            })
            .join();
        }
        let violations = self.conformance.violations();
        if !violations.is_empty() && !std::thread::panicking() {
            panic!("answers that do not match /openapi.json:\n{}", violations.join("\n"));
        }
    }
}

/// A browser: cookies kept, redirects not followed, so each step can be checked.
pub struct Browser {
    pub client: Client,
    pub base: String,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser {
            client: Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: app.base.clone(),
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self.client.get(format!("{}{}", self.base, path)).send().await.expect("get");
        (response.status(), response.text().await.expect("text"))
    }

    /// Posts a form; `csrf` is added as `csrf_token` when given.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String, Option<String>) {
        let response = self.client.post(format!("{}{}", self.base, path)).form(fields).send().await.expect("post");
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        (response.status(), response.text().await.expect("text"), location)
    }

    /// Signs in through the login page (which sets the form cookie first).
    pub async fn sign_in(&self, email: &str, password: &str) -> StatusCode {
        let (_, page) = self.get("/login").await;
        let token = hidden_value(&page, "form_token").expect("form token");
        self.post("/login", &[("email", email), ("password", password), ("form_token", &token), ("next", "/")]).await.0
    }

    /// The CSRF token of a signed-in page.
    pub async fn csrf(&self) -> String {
        let (_, page) = self.get("/").await;
        hidden_value(&page, "csrf_token").expect("csrf token on the dashboard")
    }
}

/// The value of a hidden input in an HTML page.
pub fn hidden_value(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].to_owned())
}

pub(crate) fn replace_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server_url, None),
    };
    let without_path = match base.rfind('/') {
        Some(i) if i > base.find("//").map(|j| j + 1).unwrap_or(0) => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{without_path}/{name}?{q}"),
        None => format!("{without_path}/{name}"),
    }
}

/// A random master key as 64 hex digits (the form `PAYHUB_MASTER_KEY` takes).
fn hex_key() -> String {
    (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// A complete, valid account body for the admin API.
pub fn account_body(name: &str) -> Value {
    json!({
        "name": name,
        "merchant_serial_number": "123456",
        "client_key": "fb492b5e-7907-4d83-ba20-c7fb60ca35de",
        "client_secret": format!("client-secret-{name}-Y8Kteew6GE2Zme"),
        "subscription_key": format!("subkey-{name}-0f14ebcab0ec4b29ae0cb9"),
        "is_test": true,
        "product_name": "Monthly donation",
        "merchant_agreement_url": "https://example.org/agreements",
        "retry_days": 3
    })
}

/// `base` with the fields of `changes` put over it.
pub fn with(mut base: Value, changes: Value) -> Value {
    if let (Some(target), Some(source)) = (base.as_object_mut(), changes.as_object()) {
        for (k, v) in source {
            target.insert(k.clone(), v.clone());
        }
    }
    base
}

/// A Vipps simulator with one merchant, and the payhub account that points at it.
pub struct Vipps {
    pub sim: vipps_sim::Simulator,
    pub integrator_key: String,
    pub http: Client,
}

impl Vipps {
    /// Calls a simulator control (`/_sim/...`) and returns the status.
    pub async fn control(&self, path: &str, body: Value) -> StatusCode {
        self.http
            .post(format!("{}{}", self.sim.base_url(), path))
            .json(&body)
            .send()
            .await
            .expect("sim control")
            .status()
    }
}

impl TestApp {
    /// Starts a simulator and adds a default merchant account for it.
    pub async fn with_vipps(&self) -> Vipps {
        let sim = vipps_sim::Simulator::start(vipps_sim::SimConfig::default(), "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("simulator");
        let merchant = sim.merchants()[0].clone();
        *self.clock.write().unwrap_or_else(|p| p.into_inner()) = Some(std::sync::Arc::new(sim.clock_fn()));
        self.create_account(json!({
            "name": "Sandbox",
            "merchant_serial_number": merchant.msn,
            "client_key": merchant.client_id,
            "client_secret": merchant.client_secret,
            "subscription_key": merchant.subscription_key,
            "is_test": true,
            "api_base_url": sim.base_url(),
            "merchant_agreement_url": "https://example.org/agreements",
            "product_name": "Monthly gift",
        }))
        .await;
        Vipps { integrator_key: self.key(Role::Integrator).await, http: Client::new(), sim }
    }

    /// `POST /v2/PaymentIntent` with an integrator key.
    pub async fn intent(&self, vipps: &Vipps, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/v2/PaymentIntent"))
            .bearer_auth(&vipps.integrator_key)
            .json(body)
            .send()
            .await
            .expect("intent");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET` a Payment API path with an integrator key.
    pub async fn v2_get(&self, vipps: &Vipps, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .bearer_auth(&vipps.integrator_key)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json")
    }
}

/// A one-time payment of 36 kr, approved and captured; its installment id and payment reference.
pub async fn collected(app: &TestApp, vipps: &Vipps) -> (String, String) {
    let (status, created) = app.intent(vipps, &seed_intent()).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let reference = created["OneTime"]["PaymentReference"].as_str().unwrap().to_owned();
    let installment_id = created["OneTime"]["Id"].as_str().unwrap().to_owned();
    assert_eq!(vipps.control(&format!("/_sim/payments/{reference}/approve"), json!({})).await, StatusCode::OK);
    let back = app.http.get(app.url(&format!("/v2/return/{}", created["Id"].as_str().unwrap()))).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let installment = app.v2_get(vipps, &format!("/v2/Installment/{installment_id}")).await;
    assert_eq!(installment["Status"], "Collected", "{installment}");
    (installment_id, reference)
}

/// FinDock's seed message with the URLs and the phone number filled in.
pub fn seed_intent() -> Value {
    json!({"SuccessURL": "https://example.org/thanks", "FailureURL": "https://example.org/sorry",
           "Payer": {"Contact": {"SalesforceFields": {"FirstName": "Eric", "LastName": "Johnson", "Email": ""}}},
           "OneTime": {"Amount": "36"},
           "PaymentMethod": {"Name": "Vipps", "Processor": "FinDock-Vipps", "Parameters": {"mobileNumber": "+47 912 34 567"}}})
}
