//! `/openapi.json` and `/docs`: the JSON APIs' document, completed from the one route list. Each operation's
//! `security` is read off its route's access rule (so the document cannot promise a key a route refuses), every
//! operation answers its errors in the envelope, and the outbound events are OpenAPI's `webhooks`.

use std::sync::OnceLock;

use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use utoipa::OpenApi;

use super::{is_api_path, routes};
use crate::api::openapi::{security_scheme_name, webhooks};
use crate::domain::role::{Access, Role};
use crate::web;

/// The document, built once per process from the code.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// Whether the route at `path` belongs in the document: the JSON APIs and the payer's return under `/v2`.
pub fn documented(path: &str) -> bool {
    is_api_path(path) || path.starts_with("/v2/")
}

fn build() -> Value {
    let document = crate::api::openapi::document().merge_from(web::payer_return::Doc::openapi());
    let mut doc = serde_json::to_value(document).unwrap_or_else(|_| json!({}));
    for route in routes().into_iter().filter(|r| documented(r.path)) {
        let pointer =
            format!("/paths/{}/{}", route.path.replace('~', "~0").replace('/', "~1"), method_key(&route.method));
        let Some(operation) = doc.pointer_mut(&pointer).and_then(Value::as_object_mut) else { continue };
        operation.insert("security".into(), security(route.access));
        if route.access != Access::Public {
            if let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) {
                responses.entry("default").or_insert_with(|| {
                    json!({
                        "description": "An error, in the envelope: 400 invalid input (nothing changed), 401 no valid key, \
                            403 the key's role may not, 404 no such record, 409 conflict with the record's state, \
                            413 body too large, 415 not JSON, 502 Vipps failed, 503 not answered in time \
                            (repeat with the same IdempotencyKey), 500 internal (quote the RequestId).",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
                    })
                });
            }
        }
    }
    doc["webhooks"] = webhooks();
    doc
}

fn method_key(method: &Method) -> String {
    method.as_str().to_ascii_lowercase()
}

/// The security requirement of a route: any one of the keys whose role the access rule allows.
fn security(access: Access) -> Value {
    if access == Access::Public {
        return json!([]);
    }
    Value::Array(
        Role::ALL
            .into_iter()
            .filter(|role| role.allows(access))
            .map(|role| json!({ security_scheme_name(role): [] }))
            .collect(),
    )
}

/// `GET /openapi.json`
pub async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document().to_string()).into_response()
}

/// `GET /docs`: the reference, rendered from the same document, with nothing loaded from another host.
pub async fn docs() -> Response {
    web::api_docs::page(document())
}
