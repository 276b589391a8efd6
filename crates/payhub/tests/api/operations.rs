//! Health, readiness, metrics and request ids.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::on_both_backends;

on_both_backends! {
    async fn health_and_readiness_answer_without_credentials(app) {
        let health = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
        assert_eq!(ready.text().await.unwrap(), "ready");
        app.state.store.close().await;
        let not_ready = app.http.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(not_ready.status(), StatusCode::SERVICE_UNAVAILABLE, "a closed database is reported");
    }

    async fn every_response_and_error_carries_a_request_id(app) {
        let ok = app.http.get(app.url("/healthz")).send().await.unwrap();
        let id = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 36);
        let echoed = app.http.get(app.url("/healthz")).header("x-request-id", "trace-abc_123").send().await.unwrap();
        assert_eq!(echoed.headers()["x-request-id"], "trace-abc_123");
        let hostile = app.http.get(app.url("/healthz")).header("x-request-id", "<script>").send().await.unwrap();
        assert_ne!(hostile.headers()["x-request-id"], "<script>");
        let error = app.http.get(app.url("/admin/api/accounts")).header("x-request-id", "err-42").send().await.unwrap();
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error.headers()["x-request-id"], "err-42");
        let body: Value = error.json().await.unwrap();
        assert_eq!(body["RequestId"], "err-42");
    }

    async fn metrics_count_requests_by_route_and_status(app) {
        app.http.get(app.url("/healthz")).send().await.unwrap();
        app.admin(Method::GET, "/admin/api/accounts/acc_x").send().await.unwrap();
        let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(text.contains("payhub_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("payhub_http_requests_total{method=\"GET\",route=\"/admin/api/accounts/{id}\",status=\"404\"} 1"), "{text}");
        assert!(text.contains("payhub_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"+Inf\"} 1"), "{text}");
    }
}

on_both_backends! {
    async fn framework_errors_on_the_api_use_the_envelope_too(app) {
        let wrong_method = app.admin(Method::PUT, "/admin/api/accounts").send().await.unwrap();
        assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
        let body: Value = wrong_method.json().await.unwrap();
        assert_eq!(body["Errors"][0]["error_code"], "405");
        let bad_query = app.admin(Method::GET, "/admin/api/audit?limit=many").send().await.unwrap();
        assert_eq!(bad_query.status(), StatusCode::BAD_REQUEST);
        let body: Value = bad_query.json().await.unwrap();
        assert_eq!(body["Errors"][0]["error_code"], "200");
        assert!(body["Errors"][0]["error_message"].as_str().unwrap().contains("limit"), "{body}");
    }
}
