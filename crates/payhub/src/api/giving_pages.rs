//! The admin API for Giving Pages (`/admin/api/giving-pages`): create, read, change (the fields given replace
//! the stored ones), delete. Admin role only; every change is audited. Amounts are in NOK, frequencies as the
//! Payment API spells them plus `OneTime`.
//!
//! The body is checked by hand (`domain::giving_page::parse_settings`, so every problem is reported with its
//! field at once); [`GivingPageInput`] and [`GivingPageChanges`] describe what that check takes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use super::error::{ApiError, ErrorEnvelope};
use super::json::ApiJson;
use crate::auth::Principal;
use crate::domain::giving_page::{Giving, PageParameters, SettingsView};
use crate::state::AppState;
use crate::store::giving_pages::GivingPageRecord;

/// The admin API's Giving Pages operations, for `/openapi.json`.
#[derive(OpenApi)]
#[openapi(paths(list, create, get, update, delete))]
pub struct Doc;

/// A Giving Page as the API shows it: its id, address and settings.
#[derive(Serialize, ToSchema)]
pub struct GivingPageView {
    /// `gp_…`
    pub id: String,
    /// The page's public address (`{public URL}/give/{slug}`).
    pub url: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The settings.
    #[serde(flatten)]
    pub settings: SettingsView,
}

/// Answer of `GET /admin/api/giving-pages`.
#[derive(Serialize, ToSchema)]
pub struct GivingPageList {
    /// Every page.
    pub giving_pages: Vec<GivingPageView>,
}

/// A text in both languages: one string (bokmål, English falling back to it), or each language on its own.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TextInput {
    /// Bokmål; the English page shows it too.
    One(String),
    /// Each language (at most 2000 characters each); English alone is used for both.
    Both {
        /// Norwegian bokmål.
        #[serde(default)]
        #[schema(max_length = 2000)]
        nb: Option<String>,
        /// English.
        #[serde(default)]
        #[schema(max_length = 2000)]
        en: Option<String>,
    },
}

/// An amount in NOK, as a JSON number or a decimal text (at most two decimals).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AmountInput {
    /// `250`, `99.5`.
    Number(f64),
    /// `"250"`, `"99.50"`.
    Text(String),
}

/// A preset amount: the amount alone, or with what the gift does.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PresetInput {
    /// The amount alone.
    Amount(AmountInput),
    /// The amount and its narrative.
    WithNarrative {
        /// The amount in NOK, within `min_amount` and `max_amount`.
        amount: AmountInput,
        /// What the gift does ("250 kr gives a family clean water for a month").
        #[serde(default)]
        narrative: Option<TextInput>,
    },
}

/// Body of `POST /admin/api/giving-pages`: `slug`, `title`, `amounts` and `frequencies` are required; the rest
/// take their defaults. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GivingPageInput {
    /// The page's address, `/give/{slug}`: 1 to 60 of a-z, 0-9 and dashes, not starting with a dash; unique.
    #[schema(pattern = r"^\s*[a-z0-9][a-z0-9-]{0,59}\s*$")]
    pub slug: String,
    /// The heading.
    pub title: TextInput,
    /// The text under the heading.
    #[serde(default)]
    pub intro: Option<TextInput>,
    /// 1 to 8 preset amounts, in the order shown, each within the limits.
    #[schema(min_items = 1, max_items = 8)]
    pub amounts: Vec<PresetInput>,
    /// The smallest gift accepted, in NOK (default 10).
    #[serde(default)]
    pub min_amount: Option<AmountInput>,
    /// The largest gift accepted, in NOK (default 100 000).
    #[serde(default)]
    pub max_amount: Option<AmountInput>,
    /// The frequencies offered, in the order shown (at least one; repeats are dropped).
    #[schema(min_items = 1)]
    pub frequencies: Vec<Giving>,
    /// The frequency chosen when the payer has not chosen one: one of `frequencies` (default: the first).
    #[serde(default)]
    pub default_frequency: Option<Giving>,
    /// The merchant account's name (`Target`, at most 100 characters); the default account when absent.
    #[serde(default)]
    pub account: Option<String>,
    /// Campaign every gift is linked to (at most 100 characters).
    #[serde(default)]
    pub campaign: Option<String>,
    /// Origin label of every gift (at most 100 characters); `give/{slug}` when absent.
    #[serde(default)]
    pub origin: Option<String>,
    /// Vipps parameters set on every intent (`TransactionText` 3 to 100 characters).
    #[serde(default)]
    pub parameter_defaults: Option<PageParameters>,
    /// Brand colour, `#rrggbb` (default `#c2410c`).
    #[serde(default)]
    #[schema(pattern = r"^\s*#[0-9A-Fa-f]{6}\s*$")]
    pub brand_colour: Option<String>,
    /// Logo image URL (http or https).
    #[serde(default)]
    pub logo_url: Option<String>,
    /// The hosted thank-you page's text.
    #[serde(default)]
    pub thank_you: Option<TextInput>,
    /// Where payers go after a gift instead of the hosted thank-you page (http or https; with `failure_url`).
    #[serde(default)]
    pub success_url: Option<String>,
    /// Where payers go after a failed gift (http or https; with `success_url`).
    #[serde(default)]
    pub failure_url: Option<String>,
    /// Whether the page takes gifts (default `true`).
    #[serde(default)]
    pub active: Option<bool>,
}

/// Body of `PATCH /admin/api/giving-pages/{id}`: any fields of [`GivingPageInput`]; those given replace the
/// stored ones (`null` resets one to its default) and the result is checked whole.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GivingPageChanges {
    /// See `GivingPageInput.slug`.
    #[serde(default)]
    #[schema(pattern = r"^\s*[a-z0-9][a-z0-9-]{0,59}\s*$")]
    pub slug: Option<String>,
    /// See `GivingPageInput.title`.
    #[serde(default)]
    pub title: Option<TextInput>,
    /// See `GivingPageInput.intro`.
    #[serde(default)]
    pub intro: Option<TextInput>,
    /// See `GivingPageInput.amounts`.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 8)]
    pub amounts: Option<Vec<PresetInput>>,
    /// See `GivingPageInput.min_amount`.
    #[serde(default)]
    pub min_amount: Option<AmountInput>,
    /// See `GivingPageInput.max_amount`.
    #[serde(default)]
    pub max_amount: Option<AmountInput>,
    /// See `GivingPageInput.frequencies`.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub frequencies: Option<Vec<Giving>>,
    /// See `GivingPageInput.default_frequency`.
    #[serde(default)]
    pub default_frequency: Option<Giving>,
    /// See `GivingPageInput.account`.
    #[serde(default)]
    pub account: Option<String>,
    /// See `GivingPageInput.campaign`.
    #[serde(default)]
    pub campaign: Option<String>,
    /// See `GivingPageInput.origin`.
    #[serde(default)]
    pub origin: Option<String>,
    /// See `GivingPageInput.parameter_defaults`.
    #[serde(default)]
    pub parameter_defaults: Option<PageParameters>,
    /// See `GivingPageInput.brand_colour`.
    #[serde(default)]
    #[schema(pattern = r"^\s*#[0-9A-Fa-f]{6}\s*$")]
    pub brand_colour: Option<String>,
    /// See `GivingPageInput.logo_url`.
    #[serde(default)]
    pub logo_url: Option<String>,
    /// See `GivingPageInput.thank_you`.
    #[serde(default)]
    pub thank_you: Option<TextInput>,
    /// See `GivingPageInput.success_url`.
    #[serde(default)]
    pub success_url: Option<String>,
    /// See `GivingPageInput.failure_url`.
    #[serde(default)]
    pub failure_url: Option<String>,
    /// See `GivingPageInput.active`.
    #[serde(default)]
    pub active: Option<bool>,
}

/// A page as the API shows it: its id, address and settings.
fn view(state: &AppState, record: &GivingPageRecord) -> GivingPageView {
    let public = state.config.public_url.as_str().trim_end_matches('/');
    GivingPageView {
        id: record.id.clone(),
        url: format!("{public}/give/{}", record.settings.slug),
        created_at: record.created_at,
        updated_at: record.updated_at,
        settings: record.settings.view(),
    }
}

/// `GET /admin/api/giving-pages`
#[utoipa::path(get, path = "/admin/api/giving-pages", tag = "Giving Pages",
    summary = "List Giving Pages",
    responses((status = 200, description = "Every page", body = GivingPageList)))]
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let giving_pages = state.pages.list().await?.iter().map(|p| view(&state, p)).collect();
    Ok(Json(GivingPageList { giving_pages }).into_response())
}

/// `POST /admin/api/giving-pages`
#[utoipa::path(post, path = "/admin/api/giving-pages", tag = "Giving Pages",
    summary = "Create a Giving Page",
    description = "The page is on the air at `/give/{slug}` at once when `active`. Every problem of the body is \
        reported at once, each naming its field. Audited.",
    request_body = GivingPageInput,
    responses(
        (status = 201, description = "The page", body = GivingPageView),
        (status = 400, description = "Invalid or missing fields, or an unknown account; nothing was stored", body = ErrorEnvelope),
        (status = 409, description = "Another page has that slug", body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let record = state.pages.create(&body, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &record))).into_response())
}

/// `GET /admin/api/giving-pages/{id}`
#[utoipa::path(get, path = "/admin/api/giving-pages/{id}", tag = "Giving Pages",
    summary = "Read a Giving Page",
    params(("id" = String, Path, description = "The page's id (`gp_…`)")),
    responses(
        (status = 200, description = "The page", body = GivingPageView),
        (status = 404, description = "No such page", body = ErrorEnvelope)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(view(&state, &state.pages.get(&id).await?)).into_response())
}

/// `PATCH /admin/api/giving-pages/{id}`
#[utoipa::path(patch, path = "/admin/api/giving-pages/{id}", tag = "Giving Pages",
    summary = "Change a Giving Page",
    description = "The fields given replace the stored ones and the result is checked whole; nothing changes when \
        it fails. Audited.",
    params(("id" = String, Path, description = "The page's id (`gp_…`)")),
    request_body = GivingPageChanges,
    responses(
        (status = 200, description = "The page after the change", body = GivingPageView),
        (status = 400, description = "Invalid fields; nothing changed", body = ErrorEnvelope),
        (status = 404, description = "No such page", body = ErrorEnvelope),
        (status = 409, description = "Another page has that slug", body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    Ok(Json(view(&state, &state.pages.update(&id, &body, &caller.actor()).await?)).into_response())
}

/// `DELETE /admin/api/giving-pages/{id}`: only a page that never took a gift (409 otherwise).
#[utoipa::path(delete, path = "/admin/api/giving-pages/{id}", tag = "Giving Pages",
    summary = "Delete a Giving Page",
    description = "Only a page that never took a gift; set `active` to false to close one that did. Audited.",
    params(("id" = String, Path, description = "The page's id (`gp_…`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such page", body = ErrorEnvelope),
        (status = 409, description = "The page has taken gifts", body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.pages.delete(&id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{GivingPageChanges, GivingPageInput};
    use crate::domain::giving_page::parse_settings;

    #[test]
    fn the_described_bodies_read_what_the_check_takes_and_what_the_api_shows() {
        let body = json!({
            "slug": "water", "title": "Vann", "intro": {"nb": "Gi vann", "en": "Give water"},
            "amounts": [100, "250.50", {"amount": 500, "narrative": "A well"}], "min_amount": "50", "max_amount": 5000,
            "frequencies": ["OneTime", "Monthly", "Half-yearly"], "default_frequency": "Monthly", "account": null,
            "campaign": "Summer", "origin": null, "parameter_defaults": {"TransactionText": "Gift to us"},
            "brand_colour": "#0055AA", "logo_url": "https://example.org/logo.png", "thank_you": "Takk!",
            "success_url": "https://example.org/ok", "failure_url": "https://example.org/no", "active": false
        });
        let settings = parse_settings(&body).expect("the check takes it");
        assert!(serde_json::from_value::<GivingPageInput>(body).is_ok());
        // What the API shows can be sent back as a change (PATCH merges it over the stored page).
        assert!(serde_json::from_value::<GivingPageChanges>(settings.to_json()).is_ok());
        assert!(serde_json::from_value::<GivingPageInput>(json!({"slug": "x", "title": "T", "amounts": [1]})).is_err());
    }
}
