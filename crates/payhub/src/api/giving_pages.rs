//! The admin API for Giving Pages (`/admin/api/giving-pages`): create, read, change (the fields given replace
//! the stored ones), delete. Admin role only; every change is audited. Amounts are in NOK, frequencies as the
//! Payment API spells them plus `OneTime`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::error::ApiError;
use super::json::ApiJson;
use crate::auth::Principal;
use crate::state::AppState;
use crate::store::giving_pages::GivingPageRecord;

/// A page as the API shows it: its id, address and settings.
fn view(state: &AppState, record: &GivingPageRecord) -> Value {
    let mut body = record.settings.to_json();
    if let Some(map) = body.as_object_mut() {
        map.insert("id".into(), json!(record.id));
        let public = state.config.public_url.as_str().trim_end_matches('/');
        map.insert("url".into(), json!(format!("{public}/give/{}", record.settings.slug)));
        map.insert("created_at".into(), json!(record.created_at));
        map.insert("updated_at".into(), json!(record.updated_at));
    }
    body
}

/// `GET /admin/api/giving-pages`
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let pages: Vec<Value> = state.pages.list().await?.iter().map(|p| view(&state, p)).collect();
    Ok(Json(json!({ "giving_pages": pages })).into_response())
}

/// `POST /admin/api/giving-pages`
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let record = state.pages.create(&body, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &record))).into_response())
}

/// `GET /admin/api/giving-pages/{id}`
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(view(&state, &state.pages.get(&id).await?)).into_response())
}

/// `PATCH /admin/api/giving-pages/{id}`
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    Ok(Json(view(&state, &state.pages.update(&id, &body, &caller.actor()).await?)).into_response())
}

/// `DELETE /admin/api/giving-pages/{id}`: only a page that never took a gift (409 otherwise).
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.pages.delete(&id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
