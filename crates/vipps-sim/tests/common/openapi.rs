//! Loading the official OpenAPI files and validating JSON against their schemas.
//!
//! OpenAPI 3.0 schemas are turned into JSON Schema 2020-12: `nullable: true` admits `null`,
//! boolean `exclusiveMinimum/Maximum` are dropped, external `$ref`s (the ePayment receipt)
//! accept anything. Known bugs of the 2023 files are patched where noted.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::{json, Map, Value};

/// The folder with the OpenAPI files, from `VIPPS_OPENAPI_DIR` or by walking up from the crate.
pub fn spec_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("VIPPS_OPENAPI_DIR") {
        let p = PathBuf::from(d);
        if p.is_dir() {
            return Some(p);
        }
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("shared/reference/vipps-openapi");
        if candidate.is_dir() {
            return Some(candidate);
        }
        if !dir.pop() {
            return None;
        }
    }
}

pub struct Spec {
    doc: Value,
}

/// Loads `file` (relative to the spec folder); `None` (after printing the skip note) if absent.
pub fn load(file: &str) -> Option<Spec> {
    let Some(dir) = spec_dir() else {
        println!("skipped: OpenAPI folder not found");
        return None;
    };
    let text = std::fs::read_to_string(dir.join(file)).expect("spec file readable");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("spec is YAML");
    let mut doc: Value = serde_json::to_value(yaml).expect("spec converts to JSON");
    normalize(&mut doc);
    Some(Spec { doc })
}

fn normalize(v: &mut Value) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(normalize),
        Value::Object(o) => {
            for (_, child) in o.iter_mut() {
                normalize(child);
            }
            if let Some(Value::String(r)) = o.get("$ref") {
                if !r.starts_with('#') {
                    o.clear();
                    return;
                }
            }
            for k in ["exclusiveMinimum", "exclusiveMaximum"] {
                if o.get(k).is_some_and(Value::is_boolean) {
                    o.remove(k);
                }
            }
            // Recurring 2023: `^\d{10+}$` is not a valid quantifier, and the field is empty
            // until the charge is processed.
            if o.get("pattern") == Some(&json!("^\\d{10+}$")) {
                o.insert("pattern".into(), json!("^(\\d{10,})?$"));
            }
            // A `oneOf` with an OpenAPI `discriminator` is decided by the discriminator, which
            // JSON Schema does not know; the Recurring campaign branches overlap without it.
            if o.contains_key("discriminator") {
                if let Some(one_of) = o.remove("oneOf") {
                    o.insert("anyOf".into(), one_of);
                }
            }
            // ePayment 2023: `PaymentEvent` requires `paymentAction` but defines (and Vipps sends) `name`.
            if o.get("title") == Some(&json!("PaymentEvent")) {
                if let Some(Value::Array(req)) = o.get_mut("required") {
                    for r in req.iter_mut() {
                        if r == "paymentAction" {
                            *r = json!("name");
                        }
                    }
                }
            }
            // ePayment 2023: `Customer` is a oneOf of objects without `required`, so every
            // customer matches all three branches; read it as anyOf.
            if o.get("title") == Some(&json!("Customer")) {
                if let Some(one_of) = o.remove("oneOf") {
                    o.insert("anyOf".into(), one_of);
                }
            }
            if o.get("nullable") == Some(&Value::Bool(true)) {
                o.remove("nullable");
                if let Some(Value::Array(e)) = o.get_mut("enum") {
                    e.push(Value::Null);
                }
                match o.get("type").cloned() {
                    Some(Value::String(t)) => {
                        o.insert("type".into(), json!([t, "null"]));
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(o));
                        o.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                    }
                }
            }
        }
        _ => {}
    }
}

impl Spec {
    fn at(&self, pointer: &str) -> &Value {
        self.doc.pointer(pointer).unwrap_or_else(|| panic!("no {pointer} in spec"))
    }

    fn escape(path: &str) -> String {
        path.replace('~', "~0").replace('/', "~1")
    }

    fn deref<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) if r.starts_with("#/components/responses/") || r.starts_with("#/components/requestBodies/") => {
                self.at(&r[1..])
            }
            _ => v,
        }
    }

    /// The schema of the response `status` (or `default`) of `method path`.
    pub fn response_schema(&self, path: &str, method: &str, status: &str) -> Value {
        let responses = self.at(&format!("/paths/{}/{method}/responses", Self::escape(path)));
        let r = responses
            .get(status)
            .or_else(|| responses.get("default"))
            .unwrap_or_else(|| panic!("{method} {path}: no response {status}"));
        let r = self.deref(r);
        let content = r
            .get("content")
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("{method} {path} {status}: no content"));
        content.values().next().and_then(|c| c.get("schema")).cloned().unwrap_or(json!({}))
    }

    /// The request body schema of `method path`.
    pub fn request_schema(&self, path: &str, method: &str) -> Value {
        let rb = self.at(&format!("/paths/{}/{method}/requestBody", Self::escape(path)));
        let rb = self.deref(rb);
        rb["content"].as_object().and_then(|c| c.values().next()).map(|c| c["schema"].clone()).unwrap_or(json!({}))
    }

    /// A component schema by name.
    pub fn component(&self, name: &str) -> Value {
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    /// Validation errors of `instance` against `schema` (refs resolve inside this spec).
    pub fn errors(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let mut root = self.doc.clone();
        let obj = root.as_object_mut().unwrap();
        let mut defs = Map::new();
        defs.insert("target".into(), schema.clone());
        obj.insert("$defs".into(), Value::Object(defs));
        obj.insert("$ref".into(), json!("#/$defs/target"));
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema does not compile: {e}"));
        validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path)).collect()
    }

    /// Panics with the errors unless `instance` is valid.
    pub fn assert_valid(&self, what: &str, schema: &Value, instance: &Value) {
        let errs = self.errors(schema, instance);
        assert!(errs.is_empty(), "{what} does not match the OpenAPI schema: {errs:#?}\n{instance:#}");
    }
}
