//! `/docs`: the API reference a person reads, rendered on the server from the OpenAPI document itself, so it
//! says exactly what `/openapi.json` says and needs nothing from another host (payhub is often run where the
//! internet is far away, and a reference that loads a viewer from a CDN shows a blank page there).

use axum::response::Response;
use maud::{html, Markup};
use serde_json::{Map, Value};

/// The reference page of `doc`.
pub fn page(doc: &Value) -> Response {
    let info = &doc["info"];
    let operations = operations(doc);
    let tags: Vec<(&str, &str)> = doc["tags"]
        .as_array()
        .map(|tags| tags.iter().map(|t| (text(&t["name"]), text(&t["description"]))).collect())
        .unwrap_or_default();
    let body = html! {
        h1 { (text(&info["title"])) " API reference" }
        p { (text(&info["description"])) }
        p { "The same description as a file: " a href="/openapi.json" { code { "/openapi.json" } } " (OpenAPI "
            (text(&doc["openapi"])) "); generate a client from it, see the README." }
        section.card {
            h2 { "Keys" }
            table {
                tr { th { "Scheme" } th { "What it is" } }
                @for (name, scheme) in object(&doc["components"]["securitySchemes"]) {
                    tr { td { code { (name) } } td { (text(&scheme["description"])) } }
                }
            }
        }
        nav.card {
            h2 { "Operations" }
            @for (tag, _) in &tags {
                h3 { (tag) }
                ul {
                    @for op in operations.iter().filter(|op| op.tag == *tag) {
                        li { a href={ "#" (op.anchor()) } { code { (op.method.to_uppercase()) " " (op.path) } } " " (op.summary()) }
                    }
                }
            }
            @if !object(&doc["webhooks"]).is_empty() {
                h3 { a href="#events" { "Outbound events" } }
            }
            h3 { a href="#schemas" { "Schemas" } }
        }
        @for (tag, description) in &tags {
            section {
                h2 { (tag) }
                p.muted { (description) }
                @for op in operations.iter().filter(|op| op.tag == *tag) {
                    (operation(op))
                }
            }
        }
        @if !object(&doc["webhooks"]).is_empty() {
            section #events {
                h2 { "Outbound events" }
                @for (name, item) in object(&doc["webhooks"]) {
                    @for (method, op) in object(item) {
                        (operation(&Operation { method, path: name, tag: "", op }))
                    }
                }
            }
        }
        section #schemas {
            h2 { "Schemas" }
            @for (name, schema) in object(&doc["components"]["schemas"]) {
                div.card id={ "schema-" (name) } {
                    h3 { (name) }
                    @if let Some(description) = schema["description"].as_str() { p { (description) } }
                    (schema_body(schema))
                }
            }
        }
    };
    super::page("API reference", None, body)
}

struct Operation<'a> {
    method: &'a str,
    path: &'a str,
    tag: &'a str,
    op: &'a Value,
}

impl Operation<'_> {
    fn anchor(&self) -> String {
        format!("{}-{}", self.method, self.path.replace(['/', '{', '}'], "-"))
    }

    fn summary(&self) -> &str {
        self.op["summary"].as_str().unwrap_or_default()
    }
}

fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let mut found = Vec::new();
    for (path, item) in object(&doc["paths"]) {
        for (method, op) in object(item) {
            let tag = op["tags"].get(0).and_then(Value::as_str).unwrap_or_default();
            found.push(Operation { method, path, tag, op });
        }
    }
    found
}

fn operation(op: &Operation<'_>) -> Markup {
    let keys: Vec<String> = op.op["security"]
        .as_array()
        .map(|s| s.iter().filter_map(|r| r.as_object()?.keys().next().cloned()).collect())
        .unwrap_or_default();
    html! {
        article.card id=(op.anchor()) {
            h3 { code { (op.method.to_uppercase()) " " (op.path) } }
            @if !op.summary().is_empty() { p { strong { (op.summary()) } } }
            @if let Some(description) = op.op["description"].as_str() { p { (description) } }
            @if op.op.get("security").is_some() {
                p.muted { "Keys: " @if keys.is_empty() { "none (public)" } @else { (keys.join(", ")) } }
            }
            @if let Some(parameters) = op.op["parameters"].as_array() {
                h4 { "Parameters" }
                table {
                    tr { th { "Name" } th { "In" } th { "Type" } th { "Description" } }
                    @for p in parameters {
                        tr {
                            td { code { (text(&p["name"])) } @if p["required"] == Value::Bool(true) { " *" } }
                            td { (text(&p["in"])) }
                            td { (type_of(&p["schema"])) }
                            td { (text(&p["description"])) }
                        }
                    }
                }
            }
            @if let Some(body) = op.op.get("requestBody") {
                h4 { "Body" }
                @if let Some(description) = body["description"].as_str() { p { (description) } }
                @for (media, content) in object(&body["content"]) {
                    p { code { (media) } ": " (type_of(&content["schema"])) }
                }
            }
            h4 { "Responses" }
            table {
                tr { th { "Status" } th { "Description" } th { "Body" } }
                @for (status, response) in object(&op.op["responses"]) {
                    tr {
                        td { (status) }
                        td { (text(&response["description"])) }
                        td { @for (_, content) in object(&response["content"]) { (type_of(&content["schema"])) } }
                    }
                }
            }
        }
    }
}

/// An object schema's fields, an enum's values, or the schema's type.
fn schema_body(schema: &Value) -> Markup {
    let required: Vec<&str> =
        schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    html! {
        @if let Some(properties) = schema["properties"].as_object() {
            table {
                tr { th { "Field" } th { "Type" } th { "Description" } }
                @for (name, property) in properties {
                    tr {
                        td { code { (name) } @if required.contains(&name.as_str()) { " *" } }
                        td { (type_of(property)) }
                        td { (text(&property["description"])) }
                    }
                }
            }
            p.muted { "* always present" }
        } @else {
            p { (type_of(schema)) }
        }
    }
}

/// A schema in a few words, linking the named schemas it uses.
fn type_of(schema: &Value) -> Markup {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return html! { a href={ "#schema-" (name) } { (name) } };
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(choices) = schema[combinator].as_array() {
            let joiner = if combinator == "allOf" { " and " } else { " or " };
            return html! {
                @for (i, choice) in choices.iter().enumerate() {
                    @if i > 0 { (joiner) }
                    (type_of(choice))
                }
            };
        }
    }
    let kind = match &schema["type"] {
        Value::String(kind) => kind.clone(),
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" or "),
        _ => String::new(),
    };
    html! {
        @if kind.starts_with("array") || schema.get("items").is_some() {
            "array of " (type_of(&schema["items"]))
            @if kind.contains("null") { " or null" }
        } @else if let Some(values) = schema["enum"].as_array() {
            "one of " @for (i, v) in values.iter().enumerate() { @if i > 0 { ", " } code { (v) } }
        } @else if schema.get("properties").is_some() {
            (schema_body(schema))
        } @else {
            (if kind.is_empty() { "any JSON" } else { &kind })
            @if let Some(format) = schema["format"].as_str() { " (" (format) ")" }
        }
    }
}

fn object(value: &Value) -> Vec<(&str, &Value)> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    value.as_object().unwrap_or_else(|| EMPTY.get_or_init(Map::new)).iter().map(|(k, v)| (k.as_str(), v)).collect()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}
