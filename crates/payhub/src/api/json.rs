//! Our JSON reading: a malformed body gets our error envelope (with the path of the offending field), not
//! the framework's plain text. Bodies are read strictly: a key given twice in one object is refused (which of
//! two amounts was meant is not ours to guess), and so is a NUL character anywhere (PostgreSQL cannot store
//! one, and no name, email or text needs one), naming the field.

use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use serde_json::{Map, Value};

use super::error::ApiError;

/// A JSON request body parsed into `T`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "413", "The request body is too large.", None)
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "200", "The request body could not be read.", None)
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Refuses a body that does not say it is JSON (`Content-Type: application/json` or `…+json`): 415.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let is_json =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).is_some_and(
            |mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            },
        );
    if is_json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "415",
            "The body must be JSON (Content-Type: application/json).",
            None,
        ))
    }
}

/// Parses JSON bytes into `T`, naming the field at fault in the error.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = parse_value(bytes)?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let message = format!("Invalid value: {}", error.into_inner());
        let field = (path != ".").then_some(path);
        ApiError::new(StatusCode::BAD_REQUEST, "200", message, field)
    })
}

/// Parses JSON bytes into a value, strictly: no key twice in one object, no NUL character in any key or
/// string (the error names the field, dotted as FinDock names fields: `Payer.Contact.SalesforceFields.Email`).
pub fn parse_value(bytes: &[u8]) -> Result<Value, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut *deserializer).and_then(|value| deserializer.end().map(|()| value));
    let value = value.map_err(|inner| {
        let message = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("The body is not valid JSON: {inner}")
            }
            _ => format!("The body is not accepted: {inner}"),
        };
        ApiError::new(StatusCode::BAD_REQUEST, "200", message, None)
    })?;
    match nul_at(&value, "") {
        Some(path) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "200",
            "A NUL character (\\u0000) is not allowed here.",
            Some(path.trim_start_matches('.').to_owned()),
        )),
        None => Ok(value),
    }
}

/// The path of the first key or string holding a NUL character.
fn nul_at(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(text) => text.contains('\0').then(|| path.to_owned()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| nul_at(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let here = format!("{path}.{key}");
            if key.contains('\0') {
                Some(here)
            } else {
                nul_at(item, &here)
            }
        }),
        _ => None,
    }
}

/// A JSON value read by a visitor that refuses a key given twice in one object.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(StrictValue)?;
            if object.insert(key.clone(), value).is_some() {
                return Err(serde::de::Error::custom(format!("the key {key} is given twice in one object")));
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        retry_days: Option<i64>,
    }

    #[test]
    fn errors_name_the_field_and_unknown_fields_are_refused() {
        let e = parse::<Probe>(br#"{"retry_days": "x"}"#).unwrap_err();
        assert_eq!(e.error_items()[0].field.as_deref(), Some("retry_days"));
        let e = parse::<Probe>(br#"{"retrydays": 3}"#).unwrap_err();
        assert!(e.error_items()[0].error_message.contains("unknown field"), "{:?}", e.error_items());
        let e = parse::<Probe>(b"{").unwrap_err();
        assert!(e.error_items()[0].error_message.contains("not valid JSON"));
        let e = parse::<Probe>(br#"{"retry_days": 3, "retry_days": 30}"#).unwrap_err();
        assert!(e.error_items()[0].error_message.contains("retry_days is given twice"), "{:?}", e.error_items());
        let e = parse_value(br#"{"a": [{"b": "x\u0000y"}]}"#).unwrap_err();
        assert_eq!(e.error_items()[0].field.as_deref(), Some("a[0].b"));
        assert!(parse::<Probe>(br#"{"retry_days": 3}"#).is_ok());
    }
}
