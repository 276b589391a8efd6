//! Our JSON extractor: a malformed body gets our error envelope (with the path of the offending field), not
//! the framework's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body parsed into `T`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "415",
                "The body must be JSON (Content-Type: application/json).",
                None,
            ));
        }
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

/// Parses JSON bytes into `T`, naming the field at fault in the error.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("The body is not valid JSON: {inner}")
            }
            _ => format!("Invalid value: {inner}"),
        };
        let field = (path != ".").then_some(path);
        ApiError::new(StatusCode::BAD_REQUEST, "200", message, field)
    })
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
        assert!(parse::<Probe>(br#"{"retry_days": 3}"#).is_ok());
    }
}
