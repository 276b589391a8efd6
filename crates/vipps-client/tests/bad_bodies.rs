//! Whatever comes back (empty bodies, gateway HTML, unknown values, missing fields, huge bodies)
//! becomes a typed error or a tolerated value, never a panic. The simulator only sends well-formed
//! bodies, so a small canned server plays the broken gateway here.
#![allow(clippy::unwrap_used)]

mod common;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use vipps_client::epayment::{Reference, State};
use vipps_client::{Client, Error, ErrorKind, RetryPolicy};
use vipps_sim::Merchant;

const PAYMENT: &str = r#"{"aggregate":{"authorizedAmount":{"currency":"NOK","value":0},"cancelledAmount":{"currency":"NOK","value":0},
  "capturedAmount":{"currency":"NOK","value":0},"refundedAmount":{"currency":"NOK","value":0}},
  "amount":{"currency":"NOK","value":1000},"state":"SOMETHING_NEW","paymentMethod":{"type":"WALLET"},
  "profile":null,"pspReference":"p","reference":"unknown-state","newTopLevel":[1,2,3]}"#;

async fn payment(Path(reference): Path<String>) -> axum::response::Response {
    let json = [(header::CONTENT_TYPE, "application/json")];
    let html = [(header::CONTENT_TYPE, "text/html")];
    match reference.as_str() {
        "empty-body" => (StatusCode::OK, json, "").into_response(),
        "gateway-html" => (StatusCode::BAD_GATEWAY, html, "<html><h1>502 Bad Gateway</h1></html>").into_response(),
        "forbidden-html" => (StatusCode::FORBIDDEN, html, "<html>nope</html>").into_response(),
        "unknown-state" => (StatusCode::OK, json, PAYMENT).into_response(),
        "missing-fields" => (StatusCode::OK, json, r#"{"reference":"missing-fields"}"#).into_response(),
        "not-json" => (StatusCode::OK, json, "garbage ]").into_response(),
        "wrong-types" => (StatusCode::OK, json, r#"{"aggregate": 5, "state": 7}"#).into_response(),
        "huge-body" => (StatusCode::OK, json, "x".repeat(2_000_000)).into_response(),
        "binary-body" => (StatusCode::INTERNAL_SERVER_ERROR, vec![0xff_u8, 0xfe, 0x00, 0xc3]).into_response(),
        _ => (StatusCode::NOT_FOUND, "").into_response(),
    }
}

async fn start(token_body: &'static str) -> String {
    let app = axum::Router::new()
        .route(
            "/accesstoken/get",
            post(move || async move { ([(header::CONTENT_TYPE, "application/json")], token_body) }),
        )
        .route("/epayment/v1/payments/{reference}", get(payment));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn client(base: &str) -> Client {
    common::client_for(base, &Merchant::random("123456"), |c| c.retry = RetryPolicy::none())
}

async fn get_payment(client: &Client, reference: &str) -> Result<vipps_client::epayment::Payment, Error> {
    client.epayment().get(&Reference::parse(reference).unwrap()).await
}

#[tokio::test]
async fn broken_bodies_become_typed_errors_and_unknown_values_are_tolerated() {
    let base = start(r#"{"token_type":"Bearer","expires_in":3600,"access_token":"t"}"#).await;
    let client = client(&base);

    let payment = get_payment(&client, "unknown-state").await.unwrap();
    assert_eq!(payment.state, State::Unknown("SOMETHING_NEW".into()));

    for reference in ["empty-body", "missing-fields", "not-json", "wrong-types", "huge-body"] {
        let err = get_payment(&client, reference).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedBody, "{reference}: {err}");
        match &err {
            Error::UnexpectedBody { status: 200, body, .. } => assert!(body.len() <= 8 * 1024 + 20, "{reference}"),
            other => panic!("{reference}: {other:?}"),
        }
    }

    let err = get_payment(&client, "gateway-html").await.unwrap_err();
    assert!(matches!(&err, Error::UnexpectedBody { status: 502, body, .. } if body.contains("Bad Gateway")), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::ServerError);
    assert!(err.is_retryable());

    let err = get_payment(&client, "forbidden-html").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    let err = get_payment(&client, "binary-body").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServerError);
    let err = get_payment(&client, "no-such-payment").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_broken_token_response_is_an_error_not_a_panic() {
    for body in [
        "<html>login</html>",
        "",
        r#"{"token_type":"Bearer"}"#,
        r#"{"access_token":""}"#,
        r#"{"access_token":"a b\n"}"#,
    ] {
        let base = start(body).await;
        let err = client(&base).authenticate().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedBody, "{body:?}: {err}");
    }
    // Numeric fields as strings are fine.
    let base =
        start(r#"{"token_type":"Bearer","expires_in":"3600","expires_on":"1495271273","access_token":"t"}"#).await;
    client(&base).authenticate().await.unwrap();
}
