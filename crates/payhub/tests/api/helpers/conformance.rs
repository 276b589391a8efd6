//! payhub's own OpenAPI document, held to the answers the suite really gets: every test app serves through a
//! check that validates each JSON answer of a documented operation against its schema (by status, or the
//! operation's `default`), the way the Vipps conformance tests hold `vipps-sim` to Vipps' files. A mismatch is
//! kept and fails the test when its app is dropped, naming the operation, the status and what did not match.
//! The operations answered are kept too, so a tour can prove it reached every one.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::Router;
use serde_json::Value;

/// What the check saw of one app: the answers that broke the document, and the operations answered.
#[derive(Clone, Default)]
pub struct Conformance {
    violations: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<BTreeSet<String>>>,
}

impl Conformance {
    /// `router` with the check around it.
    pub fn wrap(&self, router: Router) -> Router {
        router.layer(from_fn_with_state(self.clone(), check))
    }

    /// The answers that did not match the document.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every operation answered, as `METHOD /path/{template} STATUS`.
    pub fn seen(&self) -> BTreeSet<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The document the app serves (the same value as `/openapi.json`).
pub fn document() -> &'static Value {
    payhub::app::openapi::document()
}

/// The documented path template `path` falls under with an operation for `method`: the one with the most
/// literal segments (`/queue/next` before `/queue/{id}`).
pub fn template_of(method: &str, path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    let paths = document()["paths"].as_object()?;
    paths
        .iter()
        .filter(|(_, item)| item.get(method).is_some())
        .filter_map(|(template, _)| {
            let parts: Vec<&str> = template.split('/').collect();
            let fits = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(p, s)| p.starts_with('{') && !s.is_empty() || p == s);
            fits.then(|| (parts.iter().filter(|p| !p.starts_with('{')).count(), template.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}

async fn check(State(conformance): State<Conformance>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_ascii_lowercase();
    let path = request.uri().path().to_owned();
    let Some(template) = template_of(&method, &path) else { return next.run(request).await };
    let (request_parts, request_body) = request.into_parts();
    let sent = axum::body::to_bytes(request_body, usize::MAX).await.unwrap_or_default();
    let response = next.run(Request::from_parts(request_parts, Body::from(sent.clone()))).await;
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let status = parts.status.as_u16().to_string();
    conformance
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(format!("{} {template} {status}", method.to_uppercase()));
    let is_json = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // A request the API took must have been one the document allows (what it refuses is the tests' business).
    if parts.status.is_success() && !sent.is_empty() {
        if let Err(problem) = verify_request(&method, template, &sent) {
            conformance.violations.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
                "{} {path} ({template}) took a request the document does not allow: {problem}\n  body: {}",
                method.to_uppercase(),
                String::from_utf8_lossy(&sent[..sent.len().min(600)])
            ));
        }
    }
    if let Err(problem) = verify(&method, template, &status, is_json, &bytes) {
        conformance.violations.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
            "{} {path} ({template}) answered {status}: {problem}\n  body: {}",
            method.to_uppercase(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(600)])
        ));
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Whether an answer matches what the document says `method template` answers with `status` (`method` in
/// lower case, as the document keys it).
pub fn verify(method: &str, template: &str, status: &str, is_json: bool, body: &[u8]) -> Result<(), String> {
    let escaped = template.replace('~', "~0").replace('/', "~1");
    let responses = format!("/paths/{escaped}/{method}/responses");
    let declared = if document().pointer(&format!("{responses}/{status}")).is_some() {
        format!("{responses}/{status}")
    } else if document().pointer(&format!("{responses}/default")).is_some() {
        format!("{responses}/default")
    } else {
        return Err(format!("status {status} is not documented"));
    };
    let content = document().pointer(&format!("{declared}/content/application~1json"));
    match (content, is_json) {
        (None, false) => Ok(()),
        (None, true) => Err("a JSON body the document does not describe".into()),
        (Some(_), false) => Err("no JSON body, but the document describes one".into()),
        (Some(_), true) => {
            let instance: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
            let errors = validator(&format!("#{declared}/content/application~1json/schema"))?
                .iter_errors(&instance)
                .map(|e| format!("{e} at {}", e.instance_path))
                .collect::<Vec<_>>();
            if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join("; "))
            }
        }
    }
}

/// Whether a JSON request body is one the document allows for `method template`.
pub fn verify_request(method: &str, template: &str, body: &[u8]) -> Result<(), String> {
    let escaped = template.replace('~', "~0").replace('/', "~1");
    let pointer = format!("/paths/{escaped}/{method}/requestBody/content/application~1json/schema");
    let Ok(instance) = serde_json::from_slice::<Value>(body) else { return Ok(()) };
    if document().pointer(&pointer).is_none() {
        return Err("the operation documents no JSON body".into());
    }
    let errors = validator(&format!("#{pointer}"))?
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect::<Vec<_>>();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The compiled schema at `pointer` in the document (compiled once per test binary).
fn validator(pointer: &str) -> Result<Arc<jsonschema::Validator>, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(pointer) {
        return Ok(found.clone());
    }
    let mut root = document().clone();
    if let Some(object) = root.as_object_mut() {
        // A `$ref` is a URI: the braces of a path template (`/accounts/{id}`) must be percent-encoded in it.
        object.insert("$ref".into(), Value::String(pointer.replace('{', "%7B").replace('}', "%7D")));
    }
    let compiled = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .map_err(|e| format!("the document's schema at {pointer} does not compile: {e}"))?;
    let compiled = Arc::new(compiled);
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(pointer.to_owned(), compiled.clone());
    Ok(compiled)
}
