//! The OpenAPI 3.1 description of the JSON APIs, derived from the handlers' `#[utoipa::path]` annotations and
//! the request and response types' `ToSchema`, so the document cannot drift from the code unnoticed: the tests
//! validate every JSON answer the suite receives against it.
//!
//! Each API module keeps its own `Doc` (its paths and the schemas only it uses); [`document`] merges them with
//! what they share: the error envelope and the bearer-key security schemes. The route list (`app::routes`) adds
//! each operation's security from its access rule, so who may call what is stated once. The outbound events
//! (OpenAPI's `webhooks`) come from [`webhooks`].

use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorEnvelope;
use crate::domain::role::Role;
use crate::error::ErrorItem;
use crate::processing::outbox::events::{InstallmentEvent, IntentEvent, MandateEvent};
use crate::processing::outbox::EVENT_TYPES;

/// The parts every module shares.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "payhub",
        description = "A self-hosted payment hub for Vipps MobilePay. `/v2` is the Payment API (FinDock's Payment API v2: \
            PascalCase fields, amounts in NOK as numbers with up to two decimals, FinDock's error envelope); \
            `/admin/api` administers merchant accounts, keys, users, webhooks, reconciliation and Giving Pages \
            (snake_case fields). Every call takes `Authorization: Bearer <API key>`; a key's role decides what it may call.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0")
    ),
    components(schemas(ErrorEnvelope, ErrorItem, InstallmentEvent, IntentEvent, MandateEvent)),
    modifiers(&KeySchemes),
    tags(
        (name = "Payment API", description = "FinDock-compatible Payment API v2: intents, installments, refunds, recurring payments and mandates."),
        (name = "Accounts and access", description = "Merchant accounts, API keys, users and the audit log (admin keys)."),
        (name = "Webhooks and jobs", description = "Outbound webhook endpoints and deliveries, the job queue and the beats (admin keys)."),
        (name = "Reconciliation", description = "The settlement ledger import, payouts, settlement files and the Guided Matching queue (finance and admin keys)."),
        (name = "Giving Pages", description = "Hosted donation pages (admin keys).")
    )
)]
struct Shared;

/// The bearer-key scheme of each role: the same header, told apart so each operation can say which roles'
/// keys it takes.
struct KeySchemes;

impl Modify for KeySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else { return };
        for role in Role::ALL {
            let scheme = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(format!(
                    "An API key of role `{role}` (made under Setup → API keys, `payhub keys create` or \
                     `POST /admin/api/keys`), sent as `Authorization: Bearer <key>`."
                )))
                .build();
            components.add_security_scheme(security_scheme_name(role), SecurityScheme::Http(scheme));
        }
    }
}

/// The name of `role`'s security scheme in the document (`admin_key`, …).
pub fn security_scheme_name(role: Role) -> String {
    format!("{role}_key")
}

/// The document of the JSON APIs, without per-operation security (the route list adds it).
pub fn document() -> utoipa::openapi::OpenApi {
    Shared::openapi().merge_from(super::admin::document()).merge_from(super::v2::Doc::openapi())
}

/// OpenAPI's `webhooks`: one entry per event type payhub sends (FinDock's types), each a signed `POST` to the
/// endpoint (Standard Webhooks headers) whose body carries the record's data in the shape of its schema.
pub fn webhooks() -> Value {
    let header = |name: &str, description: &str| json!({"name": name, "in": "header", "required": true, "description": description, "schema": {"type": "string"}});
    let parameters = json!([
        header(
            "webhook-id",
            "The delivery's id (`evt_…`): the same on every retry of it, so a receiver can drop repeats."
        ),
        header("webhook-timestamp", "When this attempt was sent, in Unix seconds; refuse ones far from now."),
        header(
            "webhook-signature",
            "`v1,` and the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, keyed with \
            the endpoint's secret (base64 after `whsec_`); several space-separated while a secret is being rotated."
        ),
    ]);
    let mut events = serde_json::Map::new();
    for event_type in EVENT_TYPES {
        let data = match event_type.split('.').next() {
            Some("paymentIntent") => "IntentEvent",
            Some("mandate") => "MandateEvent",
            _ => "InstallmentEvent",
        };
        let body = json!({
            "type": "object",
            "required": ["type", "timestamp", "data"],
            "properties": {
                "type": {"type": "string", "enum": [event_type], "description": "The event type."},
                "timestamp": {"type": "string", "description": "When the change was committed (RFC 3339)."},
                "data": {"$ref": format!("#/components/schemas/{data}")},
            },
        });
        events.insert(
            (*event_type).to_owned(),
            json!({"post": {
                "summary": format!("`{event_type}` sent to subscribed endpoints and to the intent's WebhookURL"),
                "description": "Retried with backoff until the endpoint answers 2xx; every attempt is in the delivery log \
                    (`GET /admin/api/webhook-deliveries`).",
                "parameters": parameters,
                "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
                "responses": {"200": {"description": "Taken (any 2xx); anything else is retried."}},
            }}),
        );
    }
    Value::Object(events)
}
