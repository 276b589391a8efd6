//! Admin pages for Giving Pages: the list (with each page's address and gift count), and one form to create or
//! edit a page. The form is turned into the admin API's JSON, so both ways in are checked by the same rules; the
//! parameter defaults the form does not show (set through the API) are kept when it is saved.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::html;
use serde_json::{json, Map, Value};

use super::{check_field, csrf_field, page, text_field};
use crate::auth::Principal;
use crate::domain::giving_page::{format_kroner, Giving, GivingPageSettings, PageParameters, DEFAULT_COLOUR};
use crate::domain::money::Money;
use crate::domain::schedule::Frequency;
use crate::domain::FieldError;
use crate::error::ServiceError;
use crate::state::AppState;

const ALL: [Giving; 6] = [
    Giving::OneTime,
    Giving::Recurring(Frequency::Weekly),
    Giving::Recurring(Frequency::Monthly),
    Giving::Recurring(Frequency::Quarterly),
    Giving::Recurring(Frequency::HalfYearly),
    Giving::Recurring(Frequency::Yearly),
];

/// `GET /setup/giving-pages`
pub async fn list(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Response {
    let pages = match state.pages.list().await {
        Ok(pages) => pages,
        Err(error) => return super::internal_error(&error.into()),
    };
    let gifts = state.pages.recent_gifts(20).await.unwrap_or_default();
    let mut counts = Vec::with_capacity(pages.len());
    for p in &pages {
        counts.push(state.pages.gift_count(&p.id).await.unwrap_or(0));
    }
    page(
        "Giving Pages",
        Some(&who),
        html! {
            h1 { "Giving Pages" }
            p { "Hosted donation pages payers open on their phone. Every gift goes through the same intake as the Payment API." }
            @if pages.is_empty() {
                div.card { p { "No pages yet." } }
            } @else {
                table {
                    thead { tr { th { "Page" } th { "Address" } th { "Status" } th { "Gifts" } th {} } }
                    tbody {
                        @for (p, count) in pages.iter().zip(&counts) {
                            tr {
                                td { (p.settings.title.nb) }
                                td { a href=(format!("/give/{}", p.settings.slug)) { "/give/" (p.settings.slug) } }
                                td { @if p.settings.active { "active" } @else { "inactive" } }
                                td { (count) }
                                td { a href=(format!("/setup/giving-pages/{}", p.id)) { "Edit" } }
                            }
                        }
                    }
                }
            }
            div.actions { a.button href="/setup/giving-pages/new" { "New page" } }
            @if !gifts.is_empty() {
                h2 { "Recent gifts" }
                table {
                    thead { tr { th { "When (UTC)" } th { "Page" } th { "Amount" } th { "How often" } th { "Status" } th { "Intent" } } }
                    tbody {
                        @for g in &gifts {
                            tr {
                                td { (g.created_at.format("%d.%m.%Y %H.%M")) }
                                td { (g.slug) }
                                td { (format_kroner(g.amount_ore)) }
                                td { (g.kind) }
                                td { (g.status) }
                                td { code { (g.intent_id) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn form(
    who: &Principal,
    action: &str,
    values: &Map<String, Value>,
    accounts: &[String],
    errors: &[FieldError],
) -> Response {
    let text = |key: &str| values.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let error = |key: &str| errors.iter().find(|e| e.field == key).map(|e| e.message.as_str());
    let frequencies: Vec<String> = values
        .get("frequencies")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let title = if action.ends_with("giving-pages") { "New Giving Page" } else { "Edit Giving Page" };
    page(
        title,
        Some(who),
        html! {
            h1 { (title) }
            @if !errors.is_empty() {
                div.alert role="alert" { ul { @for e in errors { li { (e.field) ": " (e.message) } } } }
            }
            form.card method="post" action=(action) {
                (csrf_field(who))
                (text_field("slug", "Slug", "text", &text("slug"), Some("The page's address: /give/<slug>. a-z, 0-9 and dashes."), error("slug")))
                (text_field("title_nb", "Title (bokmål)", "text", &text("title_nb"), None, error("title")))
                (text_field("title_en", "Title (English)", "text", &text("title_en"), Some("Empty: the bokmål title."), None))
                (text_field("intro_nb", "Intro (bokmål)", "text", &text("intro_nb"), None, error("intro")))
                (text_field("intro_en", "Intro (English)", "text", &text("intro_en"), None, None))
                (text_field("amounts", "Preset amounts (NOK)", "text", &text("amounts"), Some("Comma-separated, e.g. 100, 250, 500."), error("amounts")))
                (text_field("min_amount", "Smallest amount (NOK)", "text", &text("min_amount"), Some("Default 10."), error("min_amount")))
                (text_field("max_amount", "Largest amount (NOK)", "text", &text("max_amount"), Some("Default 100 000; recurring gifts at most 20 000."), error("max_amount")))
                fieldset.field {
                    legend { strong { "Frequencies offered" } }
                    @for g in ALL {
                        div.check {
                            input type="checkbox" id=(format!("f-{g}")) name="frequencies" value=(g.as_str()) checked[frequencies.iter().any(|f| f == g.as_str())];
                            " " label for=(format!("f-{g}")) { (g.label(crate::domain::giving_page::Lang::En)) }
                        }
                    }
                    @if let Some(e) = error("frequencies") { div.error role="alert" { (e) } }
                }
                div.field {
                    label for="default_frequency" { "Default frequency" }
                    select id="default_frequency" name="default_frequency" {
                        @for g in ALL { option value=(g.as_str()) selected[text("default_frequency") == g.as_str()] { (g.label(crate::domain::giving_page::Lang::En)) } }
                    }
                    @if let Some(e) = error("default_frequency") { div.error role="alert" { (e) } }
                }
                div.field {
                    label for="account" { "Merchant account" }
                    select id="account" name="account" {
                        option value="" { "The default account" }
                        @for a in accounts { option value=(a) selected[&text("account") == a] { (a) } }
                    }
                    @if let Some(e) = error("account") { div.error role="alert" { (e) } }
                }
                (text_field("campaign", "Campaign", "text", &text("campaign"), None, error("campaign")))
                (text_field("origin", "Origin", "text", &text("origin"), Some("Default: give/<slug>."), error("origin")))
                (text_field("transaction_text", "Text in Vipps (TransactionText)", "text", &text("transaction_text"), Some("3 to 100 characters."), error("parameter_defaults")))
                (text_field("product_name", "Agreement name (ProductName, recurring)", "text", &text("product_name"), None, None))
                (text_field("phone_field", "Phone from payer field", "text", &text("phone_field"), Some("A payer field the link carries as pf_<Field> (e.g. HomePhone for ?pf_HomePhone=…) pre-fills the phone when the link has no mobileNumber."), None))
                (text_field("brand_colour", "Brand colour", "text", &text("brand_colour"), Some("#rrggbb; text on it is white or black, whichever reads better."), error("brand_colour")))
                (text_field("logo_url", "Logo URL", "url", &text("logo_url"), None, error("logo_url")))
                (text_field("thank_you_nb", "Thank-you text (bokmål)", "text", &text("thank_you_nb"), None, None))
                (text_field("thank_you_en", "Thank-you text (English)", "text", &text("thank_you_en"), None, None))
                (text_field("success_url", "Success URL", "url", &text("success_url"), Some("Empty: payhub's own thank-you page."), error("success_url")))
                (text_field("failure_url", "Failure URL", "url", &text("failure_url"), None, error("failure_url")))
                (check_field("active", "Active (takes gifts)", values.get("active").and_then(Value::as_bool).unwrap_or(true), error("active")))
                div.actions { button type="submit" { "Save" } a.button.secondary href="/setup/giving-pages" { "Cancel" } }
            }
        },
    )
}

/// The form's fields from stored settings.
fn form_values(settings: &GivingPageSettings) -> Map<String, Value> {
    let kroner = |ore: i64| Money::from_ore(ore).kroner_string().trim_end_matches(".00").to_owned();
    let mut v = Map::new();
    let mut put = |k: &str, s: String| {
        v.insert(k.to_owned(), Value::String(s));
    };
    put("slug", settings.slug.clone());
    put("title_nb", settings.title.nb.clone());
    put("title_en", settings.title.en.clone());
    put("intro_nb", settings.intro.nb.clone());
    put("intro_en", settings.intro.en.clone());
    put("amounts", settings.amounts.iter().map(|p| kroner(p.ore)).collect::<Vec<_>>().join(", "));
    put("min_amount", kroner(settings.min_ore));
    put("max_amount", kroner(settings.max_ore));
    put("default_frequency", settings.default_frequency.as_str().to_owned());
    put("account", settings.account.clone().unwrap_or_default());
    put("campaign", settings.campaign.clone().unwrap_or_default());
    put("origin", settings.origin.clone().unwrap_or_default());
    put("transaction_text", settings.parameters.transaction_text.clone().unwrap_or_default());
    put("product_name", settings.parameters.product_name.clone().unwrap_or_default());
    put(
        "phone_field",
        settings.parameters.mobile_number.as_ref().and_then(|d| d.payer_field.clone()).unwrap_or_default(),
    );
    put("brand_colour", settings.colour.clone());
    put("logo_url", settings.logo_url.clone().unwrap_or_default());
    put("thank_you_nb", settings.thank_you.nb.clone());
    put("thank_you_en", settings.thank_you.en.clone());
    put("success_url", settings.success_url.clone().unwrap_or_default());
    put("failure_url", settings.failure_url.clone().unwrap_or_default());
    v.insert("frequencies".into(), json!(settings.frequencies));
    v.insert("active".into(), json!(settings.active));
    v
}

/// The form as posted (for showing it again) and as the admin API's JSON.
fn read(bytes: &Bytes) -> (Map<String, Value>, Value) {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).unwrap_or_default();
    let mut values = Map::new();
    let mut frequencies = Vec::new();
    for (k, v) in &pairs {
        match k.as_str() {
            "frequencies" => frequencies.push(Value::String(v.clone())),
            "csrf_token" => {}
            _ => {
                values.insert(k.clone(), Value::String(v.trim().to_owned()));
            }
        }
    }
    values.insert("frequencies".into(), Value::Array(frequencies.clone()));
    let active = values.get("active").is_some();
    values.insert("active".into(), json!(active));
    let text = |k: &str| values.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| json!(s));
    let amounts: Vec<Value> = text("amounts")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| json!(s.replace(' ', "")))
        .collect();
    let mut body = json!({
        "slug": text("slug"),
        "title": {"nb": text("title_nb"), "en": text("title_en")},
        "intro": {"nb": text("intro_nb"), "en": text("intro_en")},
        "thank_you": {"nb": text("thank_you_nb"), "en": text("thank_you_en")},
        "amounts": amounts,
        "frequencies": frequencies,
        "default_frequency": text("default_frequency"),
        "min_amount": text("min_amount"),
        "max_amount": text("max_amount"),
        "account": text("account"),
        "campaign": text("campaign"),
        "origin": text("origin"),
        "brand_colour": text("brand_colour").unwrap_or_else(|| json!(DEFAULT_COLOUR)),
        "logo_url": text("logo_url"),
        "success_url": text("success_url"),
        "failure_url": text("failure_url"),
        "active": active,
        "parameter_defaults": {"TransactionText": text("transaction_text"), "ProductName": text("product_name"),
                               "mobileNumber": text("phone_field").map(|f| json!({"payer_field": f}))},
    });
    // Absent optional values are left out rather than sent as null texts.
    if let Some(params) = body.get_mut("parameter_defaults").and_then(Value::as_object_mut) {
        params.retain(|_, v| !v.is_null());
    }
    (values, body)
}

/// Puts back into the form's `parameter_defaults` the stored ones the form does not show (`description`,
/// `MerchantAgreementUrl`, a fixed `mobileNumber`, all set through the admin API): the form's object replaces
/// the stored one whole, so without this saving the form unchanged would drop them. What the form shows, it
/// decides (an emptied TransactionText is removed; a payer field typed in replaces a fixed number).
fn keep_unshown(body: &mut Value, stored: &PageParameters) {
    let Some(params) = body.get_mut("parameter_defaults").and_then(Value::as_object_mut) else { return };
    if let Some(description) = &stored.description {
        params.insert("description".into(), json!(description));
    }
    if let Some(url) = &stored.merchant_agreement_url {
        params.insert("MerchantAgreementUrl".into(), json!(url));
    }
    if let Some(fixed) = stored.mobile_number.as_ref().filter(|d| d.value.is_some()) {
        params.entry("mobileNumber").or_insert_with(|| json!(fixed));
    }
}

async fn account_names(state: &AppState) -> Vec<String> {
    state.accounts.list().await.map(|a| a.into_iter().map(|a| a.name).collect()).unwrap_or_default()
}

/// `GET /setup/giving-pages/new`
pub async fn new_page(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Response {
    let mut values = Map::new();
    values.insert("frequencies".into(), json!(["OneTime", "Monthly"]));
    values.insert("amounts".into(), json!("100, 250, 500"));
    values.insert("brand_colour".into(), json!(DEFAULT_COLOUR));
    values.insert("active".into(), json!(true));
    form(&who, "/setup/giving-pages", &values, &account_names(&state).await, &[])
}

/// `POST /setup/giving-pages`
pub async fn create(State(state): State<AppState>, Extension(who): Extension<Principal>, bytes: Bytes) -> Response {
    let (values, body) = read(&bytes);
    match state.pages.create(&body, &who.actor()).await {
        Ok(_) => Redirect::to("/setup/giving-pages").into_response(),
        Err(ServiceError::Invalid(errors) | ServiceError::Conflict(errors)) => {
            form(&who, "/setup/giving-pages", &values, &account_names(&state).await, &errors)
        }
        Err(error) => super::internal_error(&error.into()),
    }
}

/// `GET /setup/giving-pages/{id}`
pub async fn edit(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    match state.pages.get(&id).await {
        Ok(record) => form(
            &who,
            &format!("/setup/giving-pages/{id}"),
            &form_values(&record.settings),
            &account_names(&state).await,
            &[],
        ),
        Err(ServiceError::NotFound(_)) => super::not_found(),
        Err(error) => super::internal_error(&error.into()),
    }
}

/// `POST /setup/giving-pages/{id}`
pub async fn update(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    let (values, mut body) = read(&bytes);
    match state.pages.get(&id).await {
        Ok(record) => keep_unshown(&mut body, &record.settings.parameters),
        Err(ServiceError::NotFound(_)) => return super::not_found(),
        Err(error) => return super::internal_error(&error.into()),
    }
    match state.pages.update(&id, &body, &who.actor()).await {
        Ok(_) => Redirect::to("/setup/giving-pages").into_response(),
        Err(ServiceError::NotFound(_)) => super::not_found(),
        Err(ServiceError::Invalid(errors) | ServiceError::Conflict(errors)) => {
            form(&who, &format!("/setup/giving-pages/{id}"), &values, &account_names(&state).await, &errors)
        }
        Err(error) => super::internal_error(&error.into()),
    }
}
