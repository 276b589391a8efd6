//! The Setup pages: the extension tiles, the Vipps extension's merchant accounts (list, add, edit, delete with
//! confirmation), and the dashboard. Forms go through the same account registry as the admin API and the CLI.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::{check_field, csrf_field, page, text_field};
use crate::auth::Principal;
use crate::domain::account::{AccountInput, AccountSettings, RemainderHandling, DEFAULT_RETRY_DAYS};
use crate::domain::role::Role;
use crate::domain::FieldError;
use crate::error::ServiceError;
use crate::secrets::Secret;
use crate::state::AppState;
use crate::vipps::client::CredentialCheck;

/// `GET /`: the dashboard.
pub async fn dashboard(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Response {
    let accounts = match state.accounts.list().await {
        Ok(accounts) => accounts,
        Err(error) => return super::internal_error(&error.into()),
    };
    let problems = match state.payments.account_problems().await {
        Ok(problems) => problems,
        Err(error) => return super::internal_error(&error.into()),
    };
    let name_of = |id: &str| accounts.iter().find(|a| a.id == id).map_or(id.to_owned(), |a| a.name.clone());
    // Each account's connection, asked of Vipps' token endpoint (at most once a minute per account), all at once.
    let connections = futures::future::join_all(
        accounts.iter().map(|account| state.payments.clients.connection(&state.accounts, account)),
    )
    .await;
    // Admins see each beat's last run (the API and `payhub heartbeat run` run them now).
    let mut beats = Vec::new();
    if who.role == Role::Admin {
        for (name, period) in state.jobs.heartbeat.beats() {
            let last = state.jobs.heartbeat.runs(Some(&name), 1).await.ok().and_then(|runs| runs.into_iter().next());
            beats.push((name, period.as_secs(), last));
        }
    }
    let charts = if matches!(who.role, Role::Admin | Role::Finance) {
        let today = crate::domain::schedule::oslo_date((state.jobs.queue.clock())());
        match super::dashboard::charts(&state, today, &name_of).await {
            Ok(charts) => Some(charts),
            Err(error) => return super::internal_error(&error.into()),
        }
    } else {
        None
    };
    page(
        "Dashboard",
        Some(&who),
        html! {
            h1 { "Dashboard" }
            @for (account, waiting, latest) in &problems {
                div.alert role="alert" {
                    strong { "Vipps refuses the credentials or setup of the account " (name_of(account)) ". " }
                    (waiting) " charges wait and are sent again once it is fixed; no payer's installment failed. "
                    "Check the client secret, subscription key and MSN in Setup. Vipps said: "
                    (latest.trim_start_matches(crate::store::charges::CONFIGURATION_PREFIX))
                }
            }
            div.card {
                p { "Merchant accounts: " strong { (accounts.len()) } }
                @if accounts.is_empty() && who.role == Role::Admin {
                    p { "No Vipps account yet. " a href="/setup/vipps/new" { "Add one in Setup" } "." }
                }
                @for (account, (connection, age)) in accounts.iter().zip(&connections) {
                    p data-account=(account.name) { (account.name) " · MSN " (account.merchant_serial_number)
                        @if account.is_default { " " span.badge.default { "Default" } }
                        @if account.is_test { " " span.badge { "Test" } }
                        " · Vipps connection: "
                        @match connection {
                            CredentialCheck::Ok => { strong.ok { (connection.label()) } }
                            _ => { strong.bad { (connection.label()) } ": " (connection.detail().unwrap_or_default()) }
                        }
                        span.muted { " (asked " @if *age == 0 { "just now" } @else { (age) " s ago" } ")" }
                        @if problems.iter().any(|(id, _, _)| *id == account.id) { " · " strong.bad { "charges refused" } } }
                }
            }
            @if let Some(charts) = charts { (charts) }
            @if !beats.is_empty() {
                div.card {
                    h2 { "Heartbeat" }
                    table {
                        thead { tr { th { "Beat" } th { "Every" } th { "Last run" } th { "Duration" } th { "Outcome" } } }
                        tbody {
                            @for (name, seconds, last) in &beats {
                                tr {
                                    td { (name) }
                                    td { (seconds) " s" }
                                    @match last {
                                        Some(run) => {
                                            td { (run.started_at.map(|t| t.with_timezone(&chrono_tz::Europe::Oslo).format("%-d.%-m.%Y %H:%M:%S (Oslo)").to_string()).unwrap_or_else(|| "waiting".into())) }
                                            td { (run.duration_ms.map(|ms| format!("{ms} ms")).unwrap_or_default()) }
                                            td { (run.status) @if let Some(error) = &run.error { ": " (error) } }
                                        }
                                        None => { td { "never" } td {} td {} }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// `GET /setup`: the extension tiles.
pub async fn extensions(Extension(who): Extension<Principal>) -> Response {
    page(
        "Setup",
        Some(&who),
        html! {
            h1 { "Setup" }
            div.tiles {
                a.tile href="/setup/vipps" {
                    strong { "Vipps" }
                    span { "Vipps MobilePay merchant accounts: one-time and recurring payments, refunds, reconciliation." }
                }
                a.tile href="/setup/keys" { strong { "API keys" } span { "Keys for integrators and scripts." } }
                a.tile href="/setup/users" { strong { "Users" } span { "Who may sign in, and their roles." } }
            }
        },
    )
}

#[derive(Debug, Deserialize)]
/// A flash message shown after a redirect.
pub struct Flash {
    done: Option<String>,
    check: Option<String>,
}

fn check_text(check: Option<&str>) -> Option<&'static str> {
    match check {
        Some("ok") => Some("Vipps accepted its credentials."),
        Some("unreachable") => Some(
            "Vipps could not be reached to test its credentials; they are tested again when payhub calls Vipps \
             (or now with `payhub check`).",
        ),
        _ => None,
    }
}

fn flash_text(done: Option<&str>) -> Option<&'static str> {
    match done {
        Some("created") => Some("Account saved."),
        Some("updated") => Some("Account updated."),
        Some("deleted") => Some("Account deleted."),
        _ => None,
    }
}

/// `GET /setup/vipps`: the accounts list.
pub async fn accounts(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(flash): Query<Flash>,
) -> Response {
    let accounts = match state.accounts.list().await {
        Ok(accounts) => accounts,
        Err(error) => return super::internal_error(&error.into()),
    };
    page(
        "Vipps accounts",
        Some(&who),
        html! {
            h1 { "Vipps accounts" }
            @if let Some(text) = flash_text(flash.done.as_deref()) {
                div.flash role="status" { (text) @if let Some(check) = check_text(flash.check.as_deref()) { " " (check) } }
            }
            @if accounts.is_empty() {
                div.card { p { "No accounts yet." } }
            } @else {
                table {
                    thead { tr { th { "Name" } th { "MSN" } th { "Client Key" } th { "Secrets" } th { "RetryDays" } th { "Reconciliation" } th {} } }
                    tbody {
                        @for a in &accounts {
                            tr {
                                td { a href={ "/setup/vipps/" (a.id) } { (a.name) }
                                    @if a.is_default { " " span.badge.default { "Default" } }
                                    @if a.is_test { " " span.badge { "Test" } } }
                                td { (a.merchant_serial_number) }
                                td { (a.client_key) }
                                td { @if a.client_secret_set && a.subscription_key_set { "set" } @else { "missing" } }
                                td { (a.retry_days) }
                                td { @if a.reconciliation_enabled { "from " (a.initial_ledger_date.map(|d| d.to_string()).unwrap_or_default()) } @else { "off" } }
                                td { a href={ "/setup/vipps/" (a.id) } { "Edit" } " · " a href={ "/setup/vipps/" (a.id) "/delete" } { "Delete" } }
                            }
                        }
                    }
                }
            }
            div.actions { a.button href="/setup/vipps/new" { "Add Account" } }
        },
    )
}

/// The fields of the account form as posted (all text; checkboxes are present only when ticked).
#[derive(Debug, Default, Deserialize)]
pub struct AccountForm {
    name: Option<String>,
    merchant_serial_number: Option<String>,
    client_key: Option<String>,
    client_secret: Option<String>,
    subscription_key: Option<String>,
    is_test: Option<String>,
    product_name: Option<String>,
    merchant_agreement_url: Option<String>,
    retry_days: Option<String>,
    is_default: Option<String>,
    reconciliation_enabled: Option<String>,
    cancel_agreement_on_cancel: Option<String>,
    remainder_handling: Option<String>,
    initial_ledger_date: Option<String>,
    api_base_url: Option<String>,
    parameter_defaults: Option<String>,
}

impl AccountForm {
    fn from_settings(s: &AccountSettings) -> Self {
        let on = |b: bool| b.then(|| "on".to_owned());
        AccountForm {
            name: Some(s.name.clone()),
            merchant_serial_number: Some(s.merchant_serial_number.clone()),
            client_key: Some(s.client_key.clone()),
            client_secret: None,
            subscription_key: None,
            is_test: on(s.is_test),
            product_name: s.product_name.clone(),
            merchant_agreement_url: s.merchant_agreement_url.clone(),
            retry_days: Some(s.retry_days.to_string()),
            is_default: on(s.is_default),
            reconciliation_enabled: on(s.reconciliation_enabled),
            cancel_agreement_on_cancel: on(s.cancel_agreement_on_cancel),
            remainder_handling: Some(s.remainder_handling.as_str().to_owned()),
            initial_ledger_date: s.initial_ledger_date.map(|d| d.to_string()),
            api_base_url: s.api_base_url.clone(),
            parameter_defaults: (!s.parameter_defaults.is_empty())
                .then(|| serde_json::to_string_pretty(&s.parameter_defaults).unwrap_or_default()),
        }
    }

    /// The registry's input; a blank secret means "keep the stored one". A non-numeric RetryDays is reported
    /// beside its field.
    fn to_input(&self) -> Result<AccountInput, FieldError> {
        let secret = |v: &Option<String>| v.as_ref().filter(|s| !s.trim().is_empty()).map(|s| Secret::new(s.clone()));
        let retry_days = match self.retry_days.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                text.parse::<i64>()
                    .map_err(|_| FieldError::invalid("retry_days", "RetryDays must be a whole number from 0 to 14."))?,
            ),
        };
        Ok(AccountInput {
            name: Some(self.name.clone().unwrap_or_default()),
            merchant_serial_number: Some(self.merchant_serial_number.clone().unwrap_or_default()),
            client_key: Some(self.client_key.clone().unwrap_or_default()),
            client_secret: secret(&self.client_secret),
            subscription_key: secret(&self.subscription_key),
            is_test: Some(self.is_test.is_some()),
            product_name: Some(self.product_name.clone().unwrap_or_default()),
            merchant_agreement_url: Some(self.merchant_agreement_url.clone().unwrap_or_default()),
            retry_days,
            is_default: Some(self.is_default.is_some()),
            reconciliation_enabled: Some(self.reconciliation_enabled.is_some()),
            cancel_agreement_on_cancel: Some(self.cancel_agreement_on_cancel.is_some()),
            remainder_handling: match self.remainder_handling.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(word) => Some(RemainderHandling::parse(word).ok_or_else(|| {
                    FieldError::invalid("remainder_handling", "Choose one of the listed ways to book a remainder.")
                })?),
            },
            initial_ledger_date: Some(self.initial_ledger_date.clone().unwrap_or_default()),
            api_base_url: Some(self.api_base_url.clone().unwrap_or_default()),
            parameter_defaults: match self.parameter_defaults.as_deref().map(str::trim) {
                None | Some("") => Some(Default::default()),
                Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                    FieldError::invalid(
                        "parameter_defaults",
                        format!("Parameter defaults must be JSON like the example: {e}"),
                    )
                })?),
            },
        })
    }
}

fn account_form(who: &Principal, action: &str, form: &AccountForm, errors: &[FieldError], editing: bool) -> Markup {
    let error_for = |f: &str| errors.iter().find(|e| e.field == f).map(|e| e.message.as_str());
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let secret_hint = if editing { Some("Stored and never shown. Leave blank to keep it.") } else { None };
    html! {
        @if !errors.is_empty() { div.alert role="alert" { "Please correct the fields marked below." } }
        form.card method="post" action=(action) novalidate {
            (csrf_field(who))
            (text_field("name", "Name", "text", &v(&form.name), Some("Unique; integrators use it as Target."), error_for("name")))
            (text_field("merchant_serial_number", "Merchant Serial Number", "text", &v(&form.merchant_serial_number), Some("4 to 10 digits."), error_for("merchant_serial_number")))
            (text_field("client_key", "Client Key", "text", &v(&form.client_key), Some("The client_id from the Vipps MobilePay portal."), error_for("client_key")))
            (text_field("client_secret", "Client Secret", "password", "", secret_hint, error_for("client_secret")))
            (text_field("subscription_key", "Subscription Key", "password", "", secret_hint, error_for("subscription_key")))
            (check_field("is_test", "IsTest (a Vipps test sales unit)", form.is_test.is_some(), error_for("is_test")))
            (text_field("product_name", "Product Name", "text", &v(&form.product_name), Some("Default agreement name for recurring payments (at most 45 characters)."), error_for("product_name")))
            (text_field("merchant_agreement_url", "Merchant Agreement Url", "url", &v(&form.merchant_agreement_url), Some("Where payers manage their agreement; https."), error_for("merchant_agreement_url")))
            (text_field("retry_days", "RetryDays", "number", &form.retry_days.clone().unwrap_or_else(|| DEFAULT_RETRY_DAYS.to_string()), Some("0 to 14 days of retries for a failed recurring charge."), error_for("retry_days")))
            (check_field("is_default", "Default account", form.is_default.is_some(), error_for("is_default")))
            (check_field("cancel_agreement_on_cancel", "Cancel the Vipps agreement when a recurring payment is cancelled in payhub", form.cancel_agreement_on_cancel.is_some(), error_for("cancel_agreement_on_cancel")))
            (check_field("reconciliation_enabled", "Enable Reconciliation Incoming Payments", form.reconciliation_enabled.is_some(), error_for("reconciliation_enabled")))
            div.field.has-error[error_for("remainder_handling").is_some()] {
                label for="remainder_handling" { "When a matched payment is more or less than expected" }
                select id="remainder_handling" name="remainder_handling" {
                    @for choice in RemainderHandling::ALL {
                        option value=(choice.as_str()) selected[form.remainder_handling.as_deref().unwrap_or(RemainderHandling::default().as_str()) == choice.as_str()] { (choice.label()) }
                    }
                }
                div.hint { "How Guided Matching books a settlement line matched by hand." }
                @if let Some(error) = error_for("remainder_handling") { div.error role="alert" { (error) } }
            }
            (text_field("initial_ledger_date", "Initial Ledger Date", "date", &v(&form.initial_ledger_date), Some("Required when reconciliation is enabled."), error_for("initial_ledger_date")))
            (text_field("api_base_url", "Vipps API base URL (advanced)", "url", &v(&form.api_base_url), Some("Leave blank for Vipps' own test or production host."), error_for("api_base_url")))
            div.field.has-error[error_for("parameter_defaults").is_some()] {
                label for="parameter_defaults" { "Parameter defaults" }
                textarea id="parameter_defaults" name="parameter_defaults" rows="4" style="width:100%;max-width:460px;font-family:monospace" {
                    (v(&form.parameter_defaults))
                }
                div.hint { "Used when an intent leaves a Vipps parameter out. JSON, e.g. "
                    code { r#"{"mobileNumber": {"payer_field": "MobilePhone"}, "TransactionText": {"value": "Gave"}}"# } }
                @if let Some(error) = error_for("parameter_defaults") { div.error role="alert" { (error) } }
            }
            div.actions {
                button type="submit" { "Save" }
                a.button.secondary href="/setup/vipps" { "Cancel" }
            }
        }
    }
}

/// `GET /setup/vipps/new`: the Add Account form.
pub async fn new_account(Extension(who): Extension<Principal>) -> Response {
    let form = AccountForm::default();
    page(
        "Add Account",
        Some(&who),
        html! { h1 { "Add Account" } (account_form(&who, "/setup/vipps", &form, &[], false)) },
    )
}

// A page handler answers with a page either way; boxing it would only add noise.
#[allow(clippy::result_large_err)]
fn read_form(bytes: &Bytes) -> Result<AccountForm, Response> {
    serde_urlencoded::from_bytes::<AccountForm>(bytes).map_err(|_| super::bad_request("The form could not be read."))
}

fn form_errors(
    title: &str,
    who: &Principal,
    action: &str,
    form: &AccountForm,
    errors: Vec<FieldError>,
    editing: bool,
) -> Response {
    let mut response =
        page(title, Some(who), html! { h1 { (title) } (account_form(who, action, form, &errors, editing)) });
    *response.status_mut() = if errors.iter().any(|e| e.field == "name" && e.message.contains("already exists")) {
        axum::http::StatusCode::CONFLICT
    } else {
        axum::http::StatusCode::BAD_REQUEST
    };
    response
}

/// `POST /setup/vipps`: Save a new account.
pub async fn create_account(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    bytes: Bytes,
) -> Response {
    let form = match read_form(&bytes) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let input = match form.to_input() {
        Ok(input) => input,
        Err(error) => return form_errors("Add Account", &who, "/setup/vipps", &form, vec![error], false),
    };
    match state.accounts.create(&input, &who.actor()).await {
        Ok(view) => tested(&state, &who, &view, "created").await,
        Err(ServiceError::Invalid(errors) | ServiceError::Conflict(errors)) => {
            form_errors("Add Account", &who, "/setup/vipps", &form, errors, false)
        }
        Err(error) => super::internal_error(&error.into()),
    }
}

/// After a Save: asks Vipps' token endpoint whether the saved credentials work. The account is saved either
/// way: secrets are not shown again, so refusing to save would make the admin type them anew, and a test
/// sales unit is often saved before Vipps has activated it. Accepted, or Vipps unreachable (nothing the admin
/// typed is shown wrong), goes back to the list saying so; refused stays on the account's form with Vipps'
/// answer beside it, since the form is where it gets fixed.
async fn tested(state: &AppState, who: &Principal, view: &crate::vipps::accounts::AccountView, done: &str) -> Response {
    use crate::vipps::client::CredentialCheck;
    let outcome = state.payments.clients.check_credentials(&state.accounts, view).await;
    let reason = match &outcome {
        CredentialCheck::Ok => return Redirect::to(&format!("/setup/vipps?done={done}&check=ok")).into_response(),
        CredentialCheck::Unreachable(why) => {
            tracing::warn!(account_id = %view.id, error = %why, "credential test on save: Vipps unreachable");
            return Redirect::to(&format!("/setup/vipps?done={done}&check=unreachable")).into_response();
        }
        CredentialCheck::Refused(why) => why,
    };
    tracing::warn!(account_id = %view.id, error = %reason, "credential test on save: Vipps refused");
    let settings = match state.accounts.settings(&view.id).await {
        Ok(settings) => settings,
        Err(error) => return super::internal_error(&error.into()),
    };
    let form = AccountForm::from_settings(&settings);
    let action = format!("/setup/vipps/{}", view.id);
    page(
        "Edit Account",
        Some(who),
        html! {
            h1 { "Edit " (settings.name) }
            div.alert role="alert" {
                strong { "Saved, but Vipps refused these credentials. " }
                "Correct the Client Key, Client Secret or Subscription Key (and the MSN) below and Save again; until "
                "then Vipps refuses this account's payments. Vipps said: " (reason)
            }
            (account_form(who, &action, &form, &[], true))
        },
    )
}

/// `GET /setup/vipps/{id}`: the edit form.
pub async fn edit_account(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    match state.accounts.settings(&id).await {
        Ok(settings) => {
            let form = AccountForm::from_settings(&settings);
            let action = format!("/setup/vipps/{id}");
            page(
                "Edit Account",
                Some(&who),
                html! { h1 { "Edit " (settings.name) } (account_form(&who, &action, &form, &[], true)) },
            )
        }
        Err(ServiceError::NotFound(_)) => super::not_found(),
        Err(error) => super::internal_error(&error.into()),
    }
}

/// `POST /setup/vipps/{id}`: Save changes.
pub async fn update_account(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    let form = match read_form(&bytes) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let action = format!("/setup/vipps/{id}");
    let input = match form.to_input() {
        Ok(input) => input,
        Err(error) => return form_errors("Edit Account", &who, &action, &form, vec![error], true),
    };
    match state.accounts.update(&id, &input, &who.actor()).await {
        Ok(view) => tested(&state, &who, &view, "updated").await,
        Err(ServiceError::Invalid(errors) | ServiceError::Conflict(errors)) => {
            form_errors("Edit Account", &who, &action, &form, errors, true)
        }
        Err(ServiceError::NotFound(_)) => super::not_found(),
        Err(error) => super::internal_error(&error.into()),
    }
}

/// `GET /setup/vipps/{id}/delete`: asks for confirmation.
pub async fn confirm_delete(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    match state.accounts.get(&id).await {
        Ok(account) => page(
            "Delete Account",
            Some(&who),
            html! {
                h1 { "Delete " (account.name) "?" }
                div.card {
                    p { "The account " strong { (account.name) } " (MSN " (account.merchant_serial_number) ") and its stored secrets will be removed. This cannot be undone." }
                    @if account.is_default { p { "It is the default account; the oldest remaining account becomes the default." } }
                    form method="post" action={ "/setup/vipps/" (account.id) "/delete" } {
                        (csrf_field(&who))
                        div.actions {
                            button.danger type="submit" { "Delete" }
                            a.button.secondary href="/setup/vipps" { "Cancel" }
                        }
                    }
                }
            },
        ),
        Err(ServiceError::NotFound(_)) => super::not_found(),
        Err(error) => super::internal_error(&error.into()),
    }
}

/// `POST /setup/vipps/{id}/delete`: deletes after confirmation.
pub async fn delete_account(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    match state.accounts.delete(&id, &who.actor()).await {
        Ok(()) => Redirect::to("/setup/vipps?done=deleted").into_response(),
        Err(ServiceError::NotFound(_)) => super::not_found(),
        Err(ServiceError::Conflict(errors)) => super::message_page(
            axum::http::StatusCode::CONFLICT,
            "Account kept",
            errors.first().map_or("This account cannot be deleted.", |e| e.message.as_str()),
        ),
        Err(error) => super::internal_error(&error.into()),
    }
}
