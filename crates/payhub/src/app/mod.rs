//! The application: the one list of routes, the access guard, the request middleware, and start-up. The top
//! floor: the only module that names handlers.
//!
//! [`Application::build`] connects the database, applies migrations, loads the master key and binds the
//! listener (port 0 in tests); [`Application::run_until`] serves until the given signal, then drains.

mod follow_clock;
mod guard;
mod middleware;
pub mod openapi;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;

use crate::api::{self, error::ApiError};
use crate::config::Config;
use crate::domain::role::Access;
use crate::jobs::Clock;
use crate::state::AppState;
use crate::web;
pub use follow_clock::follow_clock;
use guard::{
    require_admin, require_api_read, require_finance, require_payment_api, require_refunds, require_signed_in,
};

/// Whether a path belongs to a JSON API (bearer keys, JSON errors) rather than the pages.
pub fn is_api_path(path: &str) -> bool {
    path.starts_with("/admin/api/") || path.starts_with("/v2/") || path == "/admin/api"
}

/// One route: method, path, who may call it, and its handler.
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path pattern, axum syntax (`/admin/api/accounts/{id}`).
    pub path: &'static str,
    /// Who may call it; enforced by a guard on the route itself.
    pub access: Access,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = match method.as_str() {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PATCH" => MethodFilter::PATCH,
        "PUT" => MethodFilter::PUT,
        _ => MethodFilter::DELETE,
    };
    Route { method, path, access, handler: on(filter, handler) }
}

/// Every route payhub serves, in one list a reader can scan. The router is built from this list and the
/// route × role test walks it, so no route can exist without an access rule.
pub fn routes() -> Vec<Route> {
    use Access::*;
    use Method as M;
    vec![
        // Operations
        route(M::GET, "/healthz", Public, api::ops::healthz),
        route(M::GET, "/readyz", Public, api::ops::readyz),
        route(M::GET, "/metrics", Public, api::ops::metrics),
        // The JSON APIs' description (OpenAPI 3.1) and its readable reference
        route(M::GET, "/openapi.json", Public, openapi::openapi_json),
        route(M::GET, "/docs", Public, openapi::docs),
        // Admin API (JSON, bearer keys)
        route(M::GET, "/admin/api/accounts", Admin, api::admin::list_accounts),
        route(M::POST, "/admin/api/accounts", Admin, api::admin::create_account),
        route(M::GET, "/admin/api/accounts/{id}", Admin, api::admin::get_account),
        route(M::PATCH, "/admin/api/accounts/{id}", Admin, api::admin::update_account),
        route(M::DELETE, "/admin/api/accounts/{id}", Admin, api::admin::delete_account),
        route(M::GET, "/admin/api/keys", Admin, api::admin::list_keys),
        route(M::POST, "/admin/api/keys", Admin, api::admin::create_key),
        route(M::DELETE, "/admin/api/keys/{id}", Admin, api::admin::revoke_key),
        route(M::GET, "/admin/api/users", Admin, api::admin::list_users),
        route(M::POST, "/admin/api/users", Admin, api::admin::create_user),
        route(M::DELETE, "/admin/api/users/{id}", Admin, api::admin::disable_user),
        route(M::GET, "/admin/api/audit", Admin, api::admin::audit_log),
        route(M::GET, "/admin/api/webhook-endpoints", Admin, api::webhooks_admin::list_endpoints),
        route(M::POST, "/admin/api/webhook-endpoints", Admin, api::webhooks_admin::create_endpoint),
        route(M::DELETE, "/admin/api/webhook-endpoints/{id}", Admin, api::webhooks_admin::delete_endpoint),
        route(M::POST, "/admin/api/intent-webhook-secret", Admin, api::webhooks_admin::rotate_intent_secret),
        route(M::GET, "/admin/api/webhook-deliveries", Admin, api::webhooks_admin::list_deliveries),
        route(M::POST, "/admin/api/webhook-deliveries/{id}/resend", Admin, api::webhooks_admin::resend_delivery),
        route(M::GET, "/admin/api/jobs", Admin, api::webhooks_admin::list_jobs),
        route(M::GET, "/admin/api/beats", Admin, api::webhooks_admin::list_beats),
        route(M::POST, "/admin/api/beats/{id}/run", Admin, api::webhooks_admin::run_beat),
        // Guided Matching and settlement files (JSON, bearer keys; finance and admin)
        route(M::POST, "/admin/api/reconciliation/files", Finance, api::guided::import_file),
        route(M::GET, "/admin/api/reconciliation/queue", Finance, api::guided::list_queue),
        route(M::POST, "/admin/api/reconciliation/queue/next", Finance, api::guided::next_item),
        route(M::POST, "/admin/api/reconciliation/queue/retry", Finance, api::guided::retry),
        route(M::GET, "/admin/api/reconciliation/queue/{id}", Finance, api::guided::get_item),
        route(M::POST, "/admin/api/reconciliation/queue/{id}/match", Finance, api::guided::match_item),
        route(M::POST, "/admin/api/reconciliation/queue/{id}/create", Finance, api::guided::create_and_match),
        route(M::POST, "/admin/api/reconciliation/queue/{id}/ignore", Finance, api::guided::ignore_item),
        route(M::POST, "/admin/api/reconciliation/queue/{id}/undo", Finance, api::guided::undo_item),
        // Reconciliation (finance)
        route(M::POST, "/admin/api/reconciliation/runs", Finance, api::reconciliation::start_run),
        route(M::GET, "/admin/api/reconciliation/runs", Finance, api::reconciliation::list_runs),
        route(M::GET, "/admin/api/payouts", Finance, api::reconciliation::list_payouts),
        route(M::GET, "/admin/api/giving-pages", Admin, api::giving_pages::list),
        route(M::POST, "/admin/api/giving-pages", Admin, api::giving_pages::create),
        route(M::GET, "/admin/api/giving-pages/{id}", Admin, api::giving_pages::get),
        route(M::PATCH, "/admin/api/giving-pages/{id}", Admin, api::giving_pages::update),
        route(M::DELETE, "/admin/api/giving-pages/{id}", Admin, api::giving_pages::delete),
        // Payment API v2 (JSON, bearer keys; FinDock-compatible)
        route(M::POST, "/v2/PaymentIntent", PaymentApi, api::v2::create_intent),
        route(M::GET, "/v2/PaymentIntent/{id}", ApiRead, api::v2::get_intent),
        route(M::GET, "/v2/PaymentMethods", ApiRead, api::v2::payment_methods),
        route(M::GET, "/v2/Installment/{id}", ApiRead, api::v2::get_installment),
        route(M::POST, "/v2/Refund", Refunds, api::v2::refund),
        route(M::GET, "/v2/Recurring/{id}", ApiRead, api::v2::recurring::get_recurring),
        route(M::PATCH, "/v2/Recurring/{id}", Refunds, api::v2::recurring::change_recurring),
        route(M::POST, "/v2/Recurring/{id}/Pause", Refunds, api::v2::recurring::pause_recurring),
        route(M::POST, "/v2/Recurring/{id}/Resume", Refunds, api::v2::recurring::resume_recurring),
        route(M::POST, "/v2/Recurring/{id}/Cancel", Refunds, api::v2::recurring::cancel_recurring),
        route(M::GET, "/v2/Mandate/{id}", ApiRead, api::v2::recurring::get_mandate),
        route(M::POST, "/v2/actions/CancelVippsAgreement", Refunds, api::v2::recurring::cancel_vipps_agreement),
        route(M::GET, "/v2/return/{id}", Public, web::payer_return::payer_return),
        // Giving Pages (public; CSRF by double-submit cookie, rate limit per address)
        route(M::GET, "/give/{slug}", Public, web::give::show),
        route(M::POST, "/give/{slug}", Public, web::give::submit),
        route(M::GET, "/give/{slug}/thanks/{token}", Public, web::give::thanks),
        route(M::GET, "/pay/{token}", Public, web::pay::show),
        route(M::POST, "/pay/{token}", Public, web::pay::submit),
        route(M::GET, "/renew/{token}", Public, web::renew::show),
        route(M::POST, "/renew/{token}", Public, web::renew::submit),
        // Vipps webhooks (public; every delivery's HMAC signature is verified)
        route(M::POST, "/webhooks/vipps/{id}", Public, api::vipps_webhooks::intake),
        // Pages: sign-in and first run
        route(M::GET, "/login", Public, web::login::form),
        route(M::POST, "/login", Public, web::login::submit),
        route(M::POST, "/logout", SignedIn, web::login::logout),
        route(M::GET, "/first-run", Public, web::login::first_run_form),
        route(M::POST, "/first-run", Public, web::login::first_run_submit),
        route(M::GET, "/", SignedIn, web::setup::dashboard),
        // Pages: Guided Matching and settlement files
        route(M::GET, "/reconciliation/queue", Finance, web::reconciliation::queue_page),
        route(M::POST, "/reconciliation/queue/next", Finance, web::reconciliation::next),
        route(M::POST, "/reconciliation/queue/retry", Finance, web::reconciliation::retry),
        route(M::GET, "/reconciliation/queue/{id}", Finance, web::reconciliation::item),
        route(M::POST, "/reconciliation/queue/{id}/match", Finance, web::reconciliation::match_item),
        route(M::POST, "/reconciliation/queue/{id}/create", Finance, web::reconciliation::create),
        route(M::POST, "/reconciliation/queue/{id}/ignore", Finance, web::reconciliation::ignore),
        route(M::POST, "/reconciliation/queue/{id}/undo", Finance, web::reconciliation::undo),
        route(M::GET, "/reconciliation/files", Finance, web::reconciliation::upload_page),
        route(M::POST, "/reconciliation/files", Finance, web::reconciliation::upload),
        // Pages: finance records (lists; reconciliation's runs, payouts and queue join here once they exist)
        route(M::GET, "/installments", Finance, web::records::installments),
        route(M::GET, "/installments.csv", Finance, web::records::installments_csv),
        route(M::GET, "/installments/{id}", Finance, web::record_detail::installment),
        route(M::POST, "/installments/{id}/refund", Finance, web::record_detail::refund_review),
        route(M::POST, "/installments/{id}/refund/confirm", Finance, web::record_detail::refund_confirm),
        route(M::POST, "/installments/{id}/resync", Finance, web::record_actions::resync_review),
        route(M::POST, "/installments/{id}/resync/confirm", Finance, web::record_actions::resync_confirm),
        route(M::GET, "/payments", Finance, web::records::payments),
        route(M::GET, "/payments.csv", Finance, web::records::payments_csv),
        route(M::GET, "/payments/{id}", Finance, web::record_pages::payment),
        route(M::GET, "/refunds", Finance, web::records::refunds),
        route(M::GET, "/refunds.csv", Finance, web::records::refunds_csv),
        route(M::GET, "/refunds/{id}", Finance, web::record_pages::refund),
        route(M::GET, "/recurring", Finance, web::records::recurring),
        route(M::GET, "/recurring.csv", Finance, web::records::recurring_csv),
        route(M::GET, "/recurring/{id}", Finance, web::record_pages::recurring),
        route(M::POST, "/recurring/{id}/pause", Finance, web::record_actions::pause_review),
        route(M::POST, "/recurring/{id}/pause/confirm", Finance, web::record_actions::pause_confirm),
        route(M::POST, "/recurring/{id}/resume", Finance, web::record_actions::resume_review),
        route(M::POST, "/recurring/{id}/resume/confirm", Finance, web::record_actions::resume_confirm),
        route(M::POST, "/recurring/{id}/amount", Finance, web::record_actions::amount_review),
        route(M::POST, "/recurring/{id}/amount/confirm", Finance, web::record_actions::amount_confirm),
        route(M::POST, "/recurring/{id}/collection-day", Finance, web::record_actions::day_review),
        route(M::POST, "/recurring/{id}/collection-day/confirm", Finance, web::record_actions::day_confirm),
        route(M::GET, "/mandates", Finance, web::records::mandates),
        route(M::GET, "/mandates.csv", Finance, web::records::mandates_csv),
        route(M::GET, "/mandates/{id}", Finance, web::record_pages::mandate),
        route(M::POST, "/mandates/{id}/cancel-agreement", Finance, web::record_actions::cancel_agreement_review),
        route(
            M::POST,
            "/mandates/{id}/cancel-agreement/confirm",
            Finance,
            web::record_actions::cancel_agreement_confirm,
        ),
        route(M::GET, "/reports", Finance, web::records::reports),
        route(M::GET, "/reports.csv", Finance, web::records::reports_csv),
        route(M::GET, "/messages", Finance, web::records::messages),
        route(M::GET, "/messages.csv", Finance, web::records::messages_csv),
        route(M::GET, "/deliveries", Finance, web::records::deliveries),
        route(M::GET, "/deliveries.csv", Finance, web::records::deliveries_csv),
        route(M::GET, "/deliveries/{id}", Finance, web::record_pages::delivery),
        route(M::POST, "/deliveries/{id}/resend", Finance, web::record_actions::resend_review),
        route(M::POST, "/deliveries/{id}/resend/confirm", Finance, web::record_actions::resend_confirm),
        route(M::GET, "/jobs", Finance, web::records::jobs),
        route(M::GET, "/jobs.csv", Finance, web::records::jobs_csv),
        // Pages: Setup
        route(M::GET, "/setup", Admin, web::setup::extensions),
        route(M::GET, "/setup/vipps", Admin, web::setup::accounts),
        route(M::GET, "/setup/vipps/new", Admin, web::setup::new_account),
        route(M::POST, "/setup/vipps", Admin, web::setup::create_account),
        route(M::GET, "/setup/vipps/{id}", Admin, web::setup::edit_account),
        route(M::POST, "/setup/vipps/{id}", Admin, web::setup::update_account),
        route(M::GET, "/setup/vipps/{id}/delete", Admin, web::setup::confirm_delete),
        route(M::POST, "/setup/vipps/{id}/delete", Admin, web::setup::delete_account),
        route(M::GET, "/setup/keys", Admin, web::users::keys),
        route(M::POST, "/setup/keys", Admin, web::users::create_key),
        route(M::POST, "/setup/keys/{id}/revoke", Admin, web::users::revoke_key),
        route(M::GET, "/setup/users", Admin, web::users::users),
        route(M::POST, "/setup/users", Admin, web::users::create_user),
        route(M::GET, "/setup/audit", Admin, web::audit::audit),
        route(M::GET, "/setup/giving-pages", Admin, web::giving_pages::list),
        route(M::GET, "/setup/giving-pages/new", Admin, web::giving_pages::new_page),
        route(M::POST, "/setup/giving-pages", Admin, web::giving_pages::create),
        route(M::GET, "/setup/giving-pages/{id}", Admin, web::giving_pages::edit),
        route(M::POST, "/setup/giving-pages/{id}", Admin, web::giving_pages::update),
    ]
}

/// The router over `state`, with every route guarded by its access rule.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for Route { path, access, handler, .. } in routes() {
        let guarded = match access {
            Access::Public => handler,
            Access::Admin => handler.route_layer(from_fn_with_state(state.clone(), require_admin)),
            Access::Finance => handler.route_layer(from_fn_with_state(state.clone(), require_finance)),
            Access::PaymentApi => handler.route_layer(from_fn_with_state(state.clone(), require_payment_api)),
            Access::Refunds => handler.route_layer(from_fn_with_state(state.clone(), require_refunds)),
            Access::ApiRead => handler.route_layer(from_fn_with_state(state.clone(), require_api_read)),
            Access::SignedIn => handler.route_layer(from_fn_with_state(state.clone(), require_signed_in)),
        };
        router = router.route(path, guarded);
    }
    router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(state.config.request_timeout_ms),
        ))
        .layer(from_fn_with_state(state.clone(), middleware::request_context))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    if is_api_path(uri.path()) {
        ApiError::new(StatusCode::NOT_FOUND, "404", "No such endpoint.", None).into_response()
    } else {
        web::not_found()
    }
}

/// A built application: the database is migrated and the listener bound.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects, migrates, loads or creates the master key and binds `config.listen`.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Self::build_with_clock(config, crate::jobs::system_clock()).await
    }

    /// [`Application::build`] on another clock: payhub's time (due dates, beats, job times) follows it. Sandbox
    /// mode and tests pass the simulator's virtual clock.
    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {} (PAYHUB_LISTEN): {e}", config.listen))?;
        let mut config = config;
        if config.public_url.port() == Some(0) {
            // Listening on port 0 (tests): the public URL takes the port actually bound.
            let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
            let _ = config.public_url.set_port(Some(port));
        }
        let state = Self::build_state(config, clock).await?;
        Ok(Application { listener, state })
    }

    /// The application's state without a listener (for CLI commands that run payhub's work, such as
    /// `payhub heartbeat run`): connects, migrates, loads the master key, registers job handlers and beats.
    pub async fn build_state(config: Config, clock: Clock) -> anyhow::Result<AppState> {
        AppState::build(config, clock).await
    }

    /// The address the server listens on (with the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.state.config.listen)
    }

    /// The shared state (for start-up messages and tests).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Starts the background work of `payhub serve`: job workers, the heartbeat, and a first registration of
    /// every account's Vipps webhook. Everything stops when `shutdown` turns true.
    pub fn spawn_background(
        &self,
        workers: usize,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let registrar = self.state.registrar();
        tokio::spawn(async move { registrar.register_all().await });
        self.state.jobs.spawn_workers(workers, shutdown)
    }

    /// Serves until `shutdown` completes, then stops accepting and lets requests in flight finish. The
    /// database stays open for background work to finish; the caller closes it.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        self.run_wrapped(|router| router, shutdown).await
    }

    /// [`Application::run_until`] with `wrap` around the router: the tests put a check of every JSON answer
    /// against `/openapi.json` there, so the whole suite proves the document true.
    pub async fn run_wrapped(
        self,
        wrap: impl FnOnce(Router) -> Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = wrap(router(self.state)).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
