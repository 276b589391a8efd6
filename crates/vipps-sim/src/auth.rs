//! Access tokens (`POST /accesstoken/get`, reference §2) and the gateway checks every API call passes.

use axum::extract::State;
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use serde_json::json;

use crate::reply::{self, Reply};
use crate::state::{Db, SharedSim};

/// An issued access token.
#[derive(Clone, Debug)]
pub(crate) struct TokenInfo {
    pub(crate) msn: String,
    pub(crate) expires: DateTime<Utc>,
}

/// The API family a request belongs to; decides error body shapes and header rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Api {
    EPayment,
    Recurring,
    Webhooks,
    /// Used by the Report API module.
    Report,
}

/// Whether `s` is an MSN the simulator accepts: 4 to 10 ASCII digits (reference §1.2).
pub(crate) fn valid_msn(s: &str) -> bool {
    (4..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /accesstoken/get`: checks `client_id`, `client_secret` and the subscription key against
/// one merchant and issues an opaque token valid for `token_lifetime` on the virtual clock.
pub(crate) async fn access_token(State(sim): State<SharedSim>, headers: HeaderMap) -> Reply {
    let now = sim.clock.now();
    let (Some(client_id), Some(secret)) = (header(&headers, "client_id"), header(&headers, "client_secret")) else {
        return reply::token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'client_id' and 'client_secret'.",
        );
    };
    let Some(sub_key) = header(&headers, "Ocp-Apim-Subscription-Key") else {
        return reply::azure_error(
            StatusCode::UNAUTHORIZED,
            "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.",
        );
    };
    let lifetime = sim.config.token_lifetime;
    let mut db = sim.lock();
    let Some(msn) = db.by_sub_key.get(sub_key).cloned() else {
        return reply::azure_error(
            StatusCode::UNAUTHORIZED,
            "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.",
        );
    };
    let ok = db.merchants.get(&msn).is_some_and(|m| m.client_id == client_id && m.client_secret == secret);
    if !ok {
        return reply::token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret or client id provided.",
        );
    }
    if let Some(asked) = header(&headers, "Merchant-Serial-Number") {
        if asked != msn {
            return reply::token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The Merchant-Serial-Number does not belong to these credentials.",
            );
        }
    }
    let token = format!("sim.{}.{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let expires = now + lifetime;
    db.tokens.insert(token.clone(), TokenInfo { msn, expires });
    let secs = lifetime.num_seconds();
    Reply::json(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "expires_in": secs.to_string(),
            "ext_expires_in": "0",
            "expires_on": expires.timestamp().to_string(),
            "not_before": now.timestamp().to_string(),
            "resource": "00000002-0000-0000-c000-000000000000",
            "access_token": token,
        }),
    )
}

fn unauthorized(api: Api, message: &str) -> Reply {
    match api {
        Api::Recurring => reply::azure_error_recurring(StatusCode::UNAUTHORIZED, message),
        Api::Report => reply::report_unauthorized(),
        Api::EPayment | Api::Webhooks => reply::azure_error(StatusCode::UNAUTHORIZED, message),
    }
}

/// The gateway checks: subscription key, bearer token (known, unexpired, same merchant as the key)
/// and `Merchant-Serial-Number` (required for ePayment; must be the token's merchant).
/// Returns the authorised MSN.
pub(crate) fn authorize(
    db: &Db,
    now: DateTime<Utc>,
    headers: &HeaderMap,
    api: Api,
    instance: &str,
) -> Result<String, Reply> {
    let Some(sub_key) = header(headers, "Ocp-Apim-Subscription-Key") else {
        return Err(unauthorized(
            api,
            "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.",
        ));
    };
    let Some(key_msn) = db.by_sub_key.get(sub_key) else {
        return Err(unauthorized(
            api,
            "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.",
        ));
    };
    let Some(auth) = header(headers, "Authorization") else {
        return Err(unauthorized(api, "Authorization header missing"));
    };
    let Some(token) = auth.strip_prefix("Bearer ") else {
        return Err(unauthorized(api, "Authorization header must use the Bearer scheme"));
    };
    let Some(info) = db.tokens.get(token.trim()) else {
        return Err(unauthorized(api, "Invalid JWT: the access token is not valid"));
    };
    if info.expires <= now {
        return Err(unauthorized(api, "Invalid JWT: the access token has expired"));
    }
    if &info.msn != key_msn {
        return Err(unauthorized(api, "The access token does not belong to this subscription key"));
    }
    match header(headers, "Merchant-Serial-Number") {
        None if api == Api::EPayment => Err(reply::ep_validation(
            instance,
            "Merchant-Serial-Number",
            "The Merchant-Serial-Number header is required",
        )),
        None => Ok(info.msn.clone()),
        Some(msn) if !valid_msn(msn) => Err(bad_msn(api, instance)),
        Some(msn) if msn != info.msn => Err(forbidden(api, instance)),
        Some(_) => Ok(info.msn.clone()),
    }
}

fn bad_msn(api: Api, instance: &str) -> Reply {
    let reason = "Merchant-Serial-Number must be 4 to 10 digits";
    match api {
        Api::EPayment => reply::ep_validation(instance, "Merchant-Serial-Number", reason),
        Api::Recurring => reply::rec_problem(
            StatusCode::BAD_REQUEST,
            "validation-error",
            "Input validation failed",
            instance,
            &[("Merchant-Serial-Number", reason)],
        ),
        Api::Webhooks | Api::Report => {
            reply::wh_problem(StatusCode::BAD_REQUEST, reason, instance, &[("Merchant-Serial-Number", reason)])
        }
    }
}

fn forbidden(api: Api, instance: &str) -> Reply {
    let detail = "The access token is not valid for this Merchant-Serial-Number";
    match api {
        Api::EPayment => reply::ep_plain(StatusCode::FORBIDDEN, detail, instance),
        Api::Recurring => reply::rec_problem(StatusCode::FORBIDDEN, "not-authorized", detail, instance, &[]),
        Api::Webhooks | Api::Report => reply::wh_problem(StatusCode::FORBIDDEN, detail, instance, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msns_are_four_to_ten_digits() {
        assert!(valid_msn("1234"));
        assert!(valid_msn("1234567890"));
        assert!(!valid_msn("123"));
        assert!(!valid_msn("12345678901"));
        assert!(!valid_msn("12a4"));
        assert!(!valid_msn("１２３４"));
    }
}
