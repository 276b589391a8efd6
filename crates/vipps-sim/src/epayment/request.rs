//! Request bodies and their validation (reference §3.2, error codes §3.9).

use super::*;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Currency {
    #[serde(rename = "NOK")]
    Nok,
    #[serde(rename = "DKK")]
    Dkk,
    #[serde(rename = "EUR")]
    Eur,
}

#[derive(Deserialize)]
pub(super) struct AmountIn {
    pub(super) currency: Currency,
    pub(super) value: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PaymentMethodIn {
    #[serde(rename = "type")]
    pub(super) kind: PaymentMethodType,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
pub(super) enum PaymentMethodType {
    #[serde(rename = "WALLET")]
    Wallet,
    #[serde(rename = "CARD")]
    Card,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
pub(super) enum UserFlow {
    #[serde(rename = "WEB_REDIRECT")]
    WebRedirect,
    #[serde(rename = "NATIVE_REDIRECT")]
    NativeRedirect,
    #[serde(rename = "PUSH_MESSAGE")]
    PushMessage,
    #[serde(rename = "QR")]
    Qr,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct CustomerIn {
    pub(super) phone_number: Option<String>,
    pub(super) personal_qr: Option<String>,
    pub(super) customer_token: Option<String>,
}

#[derive(Deserialize)]
pub(super) enum CustomerInteraction {
    #[serde(rename = "CUSTOMER_NOT_PRESENT")]
    NotPresent,
    #[serde(rename = "CUSTOMER_PRESENT")]
    Present,
}

#[derive(Deserialize)]
pub(super) enum QrFormatKind {
    #[serde(rename = "TEXT/TARGETURL")]
    Text,
    #[serde(rename = "IMAGE/SVG+XML")]
    Svg,
    #[serde(rename = "IMAGE/PNG")]
    Png,
}

#[derive(Deserialize)]
pub(super) struct QrFormat {
    pub(super) format: QrFormatKind,
    pub(super) size: Option<i64>,
}

#[derive(Deserialize)]
pub(super) struct ProfileIn {
    pub(super) scope: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateRequest {
    pub(super) amount: AmountIn,
    pub(super) payment_method: PaymentMethodIn,
    pub(super) reference: String,
    pub(super) user_flow: UserFlow,
    pub(super) return_url: Option<String>,
    pub(super) customer: Option<CustomerIn>,
    pub(super) payment_description: Option<String>,
    pub(super) customer_interaction: Option<CustomerInteraction>,
    pub(super) expires_at: Option<String>,
    pub(super) qr_format: Option<QrFormat>,
    pub(super) profile: Option<ProfileIn>,
    pub(super) metadata: Option<Map<String, Value>>,
    pub(super) receipt: Option<Value>,
    pub(super) receipt_url: Option<String>,
    pub(super) minimum_user_age: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ModificationRequest {
    pub(super) modification_amount: AmountIn,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct CancelRequest {
    pub(super) cancel_transaction_only: Option<bool>,
}

#[derive(Deserialize, Default)]
pub(super) struct ForceApproveRequest {
    pub(super) customer: Option<CustomerIn>,
    pub(super) token: Option<String>,
}

/// Parses a JSON body into `T`; on failure the ePayment validation problem names the field.
pub(super) fn parse<T: serde::de::DeserializeOwned>(body: &[u8], instance: &str) -> Result<T, Reply> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ep_validation(instance, "body", "The request body is not valid JSON"));
            }
            let msg = inner.to_string();
            let field = if path == "." { msg.split('`').nth(1).unwrap_or("body").to_owned() } else { path };
            if field.starts_with("amount") || field.starts_with("modificationAmount") {
                if msg.contains("unknown variant") {
                    return Err(ep_error(
                        StatusCode::BAD_REQUEST,
                        "4040",
                        "Invalid amount",
                        &format!("{field}: {msg}"),
                        instance,
                    ));
                }
                return Err(ep_error(
                    StatusCode::BAD_REQUEST,
                    "4040",
                    "Invalid amount",
                    &format!("{field}: {msg}"),
                    instance,
                ));
            }
            if field.starts_with("paymentMethod") && msg.contains("unknown variant") {
                return Err(ep_error(StatusCode::BAD_REQUEST, "4160", "Invalid payment method type", &msg, instance));
            }
            Err(ep_validation(instance, &field, &msg))
        }
    }
}

/// `^[a-zA-Z0-9-]{8,64}$` (current limit; the 2023 spec said 50).
pub(crate) fn valid_reference(r: &str) -> bool {
    (8..=64).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub(super) fn valid_phone(p: &str) -> bool {
    (10..=15).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
}

/// `https://…` or a custom app scheme; plain `http://` only to 127.0.0.1 / localhost.
pub(crate) fn valid_return_url(u: &str) -> bool {
    match url::Url::parse(u) {
        Ok(url) => match url.scheme() {
            "https" => url.host_str().is_some(),
            "http" => matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
            "javascript" | "data" | "file" | "ftp" => false,
            _ => true,
        },
        Err(_) => false,
    }
}

pub(super) const SCOPES: &[&str] = &["name", "address", "email", "phoneNumber", "birthDate", "nin"];

pub(super) fn validate_create(req: &CreateRequest, now: DateTime<Utc>, instance: &str) -> Result<(), Reply> {
    let bad =
        |code: &str, title: &str, detail: &str| Err(ep_error(StatusCode::BAD_REQUEST, code, title, detail, instance));
    if !valid_reference(&req.reference) {
        return Err(ep_validation(instance, "reference", "must match ^[a-zA-Z0-9-]{8,64}$"));
    }
    if req.amount.value < 0 || req.amount.value > 65_000_000 {
        return bad("4040", "Invalid amount", "amount.value must be between 0 and 65000000 minor units");
    }
    if req.amount.currency != Currency::Nok {
        return bad("5040", "Invalid currency for merchant", "This sales unit accepts NOK only");
    }
    if req.amount.value < 100 {
        return bad("6010", "Amount too small", "The minimum amount is 100 øre (1 NOK)");
    }
    if req.payment_method.kind == PaymentMethodType::Card && req.user_flow != UserFlow::WebRedirect {
        return bad("4160", "Invalid payment method type", "CARD requires userFlow WEB_REDIRECT");
    }
    match (&req.return_url, req.user_flow) {
        (None, UserFlow::WebRedirect | UserFlow::NativeRedirect) => {
            return bad(
                "4140",
                "Missing required parameter",
                "returnUrl is required for WEB_REDIRECT and NATIVE_REDIRECT",
            );
        }
        (Some(u), _) if !valid_return_url(u) => {
            return bad("4090", "Invalid URL", "returnUrl must be https:// or an app scheme");
        }
        _ => {}
    }
    if let Some(u) = &req.receipt_url {
        if !valid_return_url(u) {
            return bad("4090", "Invalid URL", "receiptUrl must be https:// or an app scheme");
        }
    }
    match &req.customer {
        None if req.user_flow == UserFlow::PushMessage => {
            return bad("4140", "Missing required parameter", "customer is required for PUSH_MESSAGE");
        }
        None => {}
        Some(c) => {
            let n = [c.phone_number.is_some(), c.personal_qr.is_some(), c.customer_token.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if n != 1 {
                return Err(ep_validation(
                    instance,
                    "customer",
                    "exactly one of phoneNumber, personalQr, customerToken",
                ));
            }
            if let Some(p) = &c.phone_number {
                if !valid_phone(p) {
                    return bad(
                        "4070",
                        "Invalid phone number",
                        "phoneNumber must be 10 to 15 digits with country code",
                    );
                }
            }
            if let Some(q) = &c.personal_qr {
                if !(5..=255).contains(&q.chars().count()) {
                    return bad("4060", "Invalid personalQr", "personalQr must be 5 to 255 characters");
                }
            }
            if let Some(t) = &c.customer_token {
                if t.is_empty() || t.len() > 255 {
                    return bad("4050", "Invalid customerToken", "customerToken is not valid");
                }
            }
        }
    }
    if let Some(d) = &req.payment_description {
        if !(3..=100).contains(&d.chars().count()) {
            return Err(ep_validation(instance, "paymentDescription", "must be 3 to 100 characters"));
        }
    }
    if let Some(m) = &req.metadata {
        if m.len() > 5 {
            return bad("4100", "Metadata capacity exceeded", "metadata may hold at most 5 pairs");
        }
        for (k, v) in m {
            if k.chars().count() > 100 {
                return bad("4120", "Metadata key too long", "metadata keys are at most 100 characters");
            }
            let Some(s) = v.as_str() else {
                return Err(ep_validation(instance, &format!("metadata.{k}"), "values must be strings"));
            };
            if s.chars().count() > 500 {
                return bad("4130", "Metadata value too long", "metadata values are at most 500 characters");
            }
        }
    }
    if let Some(p) = &req.profile {
        if let Some(scope) = &p.scope {
            if scope.split(' ').any(|s| !SCOPES.contains(&s)) {
                return bad(
                    "4080",
                    "Invalid scope",
                    "profile.scope must be a space-separated subset of name address email phoneNumber birthDate nin",
                );
            }
        }
    }
    if req.qr_format.is_some() && req.user_flow != UserFlow::Qr {
        return Err(ep_validation(instance, "qrFormat", "only allowed with userFlow QR"));
    }
    if let Some(QrFormat { format: QrFormatKind::Png, size: Some(s) }) = &req.qr_format {
        if !(100..=2000).contains(s) {
            return Err(ep_validation(instance, "qrFormat.size", "must be 100 to 2000"));
        }
    }
    if let Some(raw) = &req.expires_at {
        let Ok(at) = DateTime::parse_from_rfc3339(raw) else {
            return Err(ep_validation(instance, "expiresAt", "must be an RFC 3339 date-time"));
        };
        if !matches!(req.user_flow, UserFlow::PushMessage | UserFlow::Qr) {
            return bad("5050", "Long-living payments not allowed", "expiresAt requires userFlow PUSH_MESSAGE or QR");
        }
        if req.receipt.is_none() {
            return bad("6130", "Long-living payment requires receipt", "expiresAt requires a receipt");
        }
        let at = at.with_timezone(&Utc);
        if at <= now + chrono::Duration::minutes(10) {
            return bad("6120", "expiresAt too soon", "expiresAt must be more than 10 minutes ahead");
        }
        if at >= now + chrono::Duration::days(60) {
            return bad("6110", "expiresAt too late", "expiresAt must be less than 60 days ahead");
        }
    }
    if let Some(age) = req.minimum_user_age {
        if !(0..=120).contains(&age) {
            return Err(ep_validation(instance, "minimumUserAge", "must be between 0 and 120"));
        }
    }
    Ok(())
}
