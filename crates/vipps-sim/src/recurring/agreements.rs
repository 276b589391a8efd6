//! Agreements: draft, get, list (with `Continuation-Token` paging), update/stop, force accept, and
//! the payer's actions (accept, reject, stop) and expiry.

use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PricingIn {
    #[serde(rename = "type")]
    kind: Option<PricingType>,
    currency: String,
    amount: Option<i64>,
    suggested_max_amount: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InitialChargeIn {
    amount: i64,
    description: String,
    transaction_type: TransactionType,
    order_id: Option<String>,
    external_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DraftIn {
    pricing: PricingIn,
    interval: Option<Interval>,
    merchant_agreement_url: Option<String>,
    merchant_redirect_url: String,
    product_name: String,
    product_description: Option<String>,
    phone_number: Option<String>,
    initial_charge: Option<InitialChargeIn>,
    campaign: Option<Value>,
    scope: Option<String>,
    is_app: Option<bool>,
    skip_landing_page: Option<bool>,
    external_id: Option<String>,
    country_code: Option<String>,
}

pub(super) fn url_ok(u: &str, https_only: bool) -> bool {
    if u.len() > 1024 {
        return false;
    }
    match url::Url::parse(u) {
        Ok(url) => match url.scheme() {
            "https" => url.host_str().is_some(),
            "http" => matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
            "javascript" | "data" | "file" | "ftp" => false,
            _ => !https_only,
        },
        Err(_) => false,
    }
}

pub(super) fn validate_draft(d: &DraftIn, instance: &str) -> Result<Pricing, Reply> {
    let v = |f: &str, r: &str| Err(validation(instance, f, r));
    if d.pricing.currency != "NOK" {
        return Err(rec_problem(
            StatusCode::BAD_REQUEST,
            "invalid-sale-unit",
            "The currency does not match the sales unit (NOK)",
            instance,
            &[("pricing.currency", "must be NOK for this sales unit")],
        ));
    }
    let kind = d.pricing.kind.unwrap_or(PricingType::Legacy);
    let pricing = match kind {
        PricingType::Legacy => {
            let Some(a) = d.pricing.amount else { return v("pricing.amount", "required for LEGACY pricing") };
            if !(100..=i64::from(i32::MAX)).contains(&a) {
                return v("pricing.amount", "must be at least 100");
            }
            Pricing { kind, amount: Some(a), suggested_max: None, max_amount: None }
        }
        PricingType::Variable => {
            let Some(s) = d.pricing.suggested_max_amount else {
                return Err(rec_problem(
                    StatusCode::BAD_REQUEST,
                    "invalid-suggested-max-amount",
                    "suggestedMaxAmount is required for VARIABLE pricing",
                    instance,
                    &[],
                ));
            };
            if !(100..=2_000_000).contains(&s) {
                return Err(rec_problem(
                    StatusCode::BAD_REQUEST,
                    "invalid-suggested-max-amount",
                    "suggestedMaxAmount must be 100 to 2000000",
                    instance,
                    &[],
                ));
            }
            if d.campaign.is_some() {
                return v("campaign", "campaigns are not allowed with VARIABLE pricing");
            }
            Pricing { kind, amount: None, suggested_max: Some(s), max_amount: None }
        }
        PricingType::Flexible => {
            if d.campaign.is_some() {
                return v("campaign", "campaigns are not allowed with FLEXIBLE pricing");
            }
            Pricing { kind, amount: None, suggested_max: None, max_amount: None }
        }
    };
    if let Some(c) = &d.campaign {
        if let Err(reason) = check_campaign(c) {
            return v("campaign", reason);
        }
    }
    if let Some(i) = &d.interval {
        if !(1..=31).contains(&i.count) {
            return v("interval.count", "must be 1 to 31");
        }
    }
    let name_len = d.product_name.chars().count();
    if name_len == 0 || name_len > 45 {
        return v("productName", "must be 1 to 45 characters");
    }
    if d.product_description.as_ref().is_some_and(|s| s.chars().count() > 100) {
        return v("productDescription", "must be at most 100 characters");
    }
    match &d.merchant_agreement_url {
        None => return v("merchantAgreementUrl", "required for Norwegian merchants"),
        Some(u) if !url_ok(u, true) => {
            return v("merchantAgreementUrl", "must be an https URL of at most 1024 characters")
        }
        Some(_) => {}
    }
    if !url_ok(&d.merchant_redirect_url, false) {
        return v("merchantRedirectUrl", "must be an https URL or app deeplink of at most 1024 characters");
    }
    if d.phone_number.as_ref().is_some_and(|p| !valid_phone(p)) {
        return v("phoneNumber", "must be an MSISDN: 10 to 15 digits");
    }
    if d.external_id.as_ref().is_some_and(|e| !valid_external_id(e)) {
        return v("externalId", "must be 1 to 64 characters");
    }
    if d.country_code.as_ref().is_some_and(|c| c != "NO") {
        return Err(rec_problem(
            StatusCode::BAD_REQUEST,
            "invalid-sale-unit",
            "countryCode must match the sales unit (NO)",
            instance,
            &[],
        ));
    }
    if d.skip_landing_page == Some(true) {
        return Err(rec_problem(
            StatusCode::FORBIDDEN,
            "not-authorized",
            "skipLandingPage requires allow-listing",
            instance,
            &[],
        ));
    }
    if let Some(s) = &d.scope {
        const SCOPES: &[&str] = &["name", "address", "email", "phoneNumber", "birthDate", "nin"];
        if s.split(' ').any(|x| !SCOPES.contains(&x)) {
            return v("scope", "must be a space-separated subset of name address email phoneNumber birthDate nin");
        }
    }
    if let Some(ic) = &d.initial_charge {
        if !(100..=i64::from(i32::MAX)).contains(&ic.amount) {
            return v("initialCharge.amount", "must be at least 100");
        }
        let n = ic.description.chars().count();
        if n == 0 || n > 45 {
            return v("initialCharge.description", "must be 1 to 45 characters");
        }
        if ic.order_id.as_ref().is_some_and(|o| !valid_order_id(o)) {
            return v("initialCharge.orderId", "must match ^[a-zA-Z0-9-]{1,64}$");
        }
        if ic.external_id.as_ref().is_some_and(|e| !valid_external_id(e)) {
            return v("initialCharge.externalId", "must be 1 to 64 characters");
        }
    }
    Ok(pricing)
}

/// Checks a campaign object: a known `type`, a non-negative integer `price` and the fields
/// that type requires (reference §5.2).
pub(super) fn check_campaign(c: &Value) -> Result<(), &'static str> {
    let price_ok = c.get("price").and_then(Value::as_i64).is_some_and(|p| p >= 0);
    if !price_ok {
        return Err("campaign.price must be a non-negative integer");
    }
    let has = |k: &str| c.get(k).is_some_and(|v| !v.is_null());
    let period_ok = |k: &str| {
        c.get(k)
            .is_some_and(|p| serde_json::from_value::<Interval>(p.clone()).is_ok_and(|i| (1..=31).contains(&i.count)))
    };
    match c.get("type").and_then(Value::as_str) {
        Some("PRICE_CAMPAIGN") if has("end") => Ok(()),
        Some("PERIOD_CAMPAIGN") if period_ok("period") => Ok(()),
        Some("EVENT_CAMPAIGN") if has("eventDate") && has("eventText") => Ok(()),
        Some("FULL_FLEX_CAMPAIGN") if has("end") && period_ok("interval") => Ok(()),
        Some("PRICE_CAMPAIGN" | "PERIOD_CAMPAIGN" | "EVENT_CAMPAIGN" | "FULL_FLEX_CAMPAIGN") => {
            Err("campaign is missing a field its type requires")
        }
        _ => Err("campaign.type must be PRICE_CAMPAIGN, PERIOD_CAMPAIGN, EVENT_CAMPAIGN or FULL_FLEX_CAMPAIGN"),
    }
}

/// The campaign as `GET agreement` shows it: the request fields plus `end` (computed for a
/// period campaign from the creation time) and an `explanation`.
pub(super) fn campaign_response(c: &Value, created: DateTime<Utc>) -> Value {
    let mut out = c.clone();
    if c.get("type").and_then(Value::as_str) == Some("PERIOD_CAMPAIGN") {
        if let Some(i) = c.get("period").and_then(|p| serde_json::from_value::<Interval>(p.clone()).ok()) {
            let n = u32::try_from(i.count).unwrap_or(1);
            let end = match i.unit {
                Unit::Day => created + chrono::Duration::days(i64::from(n)),
                Unit::Week => created + chrono::Duration::weeks(i64::from(n)),
                Unit::Month => created.checked_add_months(chrono::Months::new(n)).unwrap_or(created),
                Unit::Year => created.checked_add_months(chrono::Months::new(12 * n)).unwrap_or(created),
            };
            out["end"] = json!(ts(end));
        }
    }
    let price = c.get("price").and_then(Value::as_i64).unwrap_or(0);
    out["explanation"] = json!(format!("Campaign price {},{:02} kr", price / 100, price % 100));
    out
}

pub(super) fn fresh_charge_id(store: &Store, msn: &str) -> String {
    loop {
        let id = new_id("chr-", 7);
        if !store.charge_index.contains_key(&(msn.to_owned(), id.clone())) {
            return id;
        }
    }
}

/// `POST /recurring/v3/agreements` → `201 {agreementId, uuid, vippsConfirmationUrl, chargeId}`.
pub(crate) async fn draft(State(sim): State<SharedSim>, headers: HeaderMap, uri: Uri, body: Bytes) -> Reply {
    let instance = uri.path();
    let base = sim.base_url.clone();
    let timeout = sim.config.payer_timeout;
    modify(&sim, &headers, &Method::POST, instance, &body, lim("recurring.draft", "", 300), |db, msn, key, now| {
        let d: DraftIn = match parse(&body, instance) {
            Ok(d) => d,
            Err(r) => return r,
        };
        let pricing = match validate_draft(&d, instance) {
            Ok(p) => p,
            Err(r) => return r,
        };
        if let Some(o) = d.initial_charge.as_ref().and_then(|ic| ic.order_id.as_ref()) {
            if db.recurring.charge_index.contains_key(&(msn.to_owned(), o.clone())) {
                return rec_problem(
                    StatusCode::CONFLICT,
                    "conflict",
                    &format!("orderId {o} is already used"),
                    instance,
                    &[],
                );
            }
        }
        let id = loop {
            let id = new_id("agr_", 7);
            if !db.recurring.agreements.contains_key(&id) {
                break id;
            }
        };
        let token = db.new_landing(LandingTarget::Agreement { agreement_id: id.clone() });
        let confirmation_url = format!("{base}/landing?token={token}");
        let _ = d.is_app;
        let mut a = Agreement {
            id: id.clone(),
            uuid: uuid::Uuid::new_v4().to_string(),
            msn: msn.to_owned(),
            status: AgreementStatus::Pending,
            product_name: d.product_name,
            product_description: d.product_description,
            pricing,
            interval: d.interval,
            merchant_agreement_url: d.merchant_agreement_url.unwrap_or_default(),
            merchant_redirect_url: d.merchant_redirect_url,
            phone: d.phone_number,
            external_id: d.external_id,
            scope: d.scope,
            campaign: d.campaign,
            created: now,
            start: None,
            stop: None,
            confirmation_url: confirmation_url.clone(),
            sub: None,
            charges: Vec::new(),
        };
        let mut charge_id = None;
        if let Some(ic) = d.initial_charge {
            let cid = ic.order_id.clone().unwrap_or_else(|| fresh_charge_id(&db.recurring, msn));
            db.recurring.charge_index.insert((msn.to_owned(), cid.clone()), id.clone());
            a.charges.push(Charge {
                id: cid.clone(),
                agreement_id: id.clone(),
                external_id: ic.external_id,
                amount: ic.amount,
                description: ic.description,
                due: oslo_today(now),
                retry_days: 0,
                status: ChargeStatus::Pending,
                initial: true,
                transaction_type: ic.transaction_type,
                transaction_id: None,
                failure_reason: None,
                captured: 0,
                refunded: 0,
                cancelled: 0,
                history: vec![HistoryEvent {
                    occurred: now,
                    event: "CREATE",
                    amount: ic.amount,
                    idempotency_key: Some(key.to_owned()),
                    success: true,
                }],
                attempts: 0,
                forced_failures: None,
            });
            charge_id = Some(cid);
        }
        let uuid = a.uuid.clone();
        db.recurring.agreements.insert(id.clone(), a);
        db.recurring.by_msn.entry(msn.to_owned()).or_default().push(id.clone());
        db.schedule(now + timeout, Timer::AgreementExpiry { agreement_id: id.clone() });
        Reply::json(
            StatusCode::CREATED,
            &json!({"agreementId": id, "uuid": uuid, "vippsConfirmationUrl": confirmation_url, "chargeId": charge_id}),
        )
    })
}

pub(super) fn get_own<'a>(db: &'a Db, msn: &str, id: &str) -> Option<&'a Agreement> {
    db.recurring.agreements.get(id).filter(|a| a.msn == msn)
}

/// `GET /recurring/v3/agreements/{agreementId}` → `200 AgreementResponseV3`.
pub(crate) async fn get_agreement(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Reply {
    let instance = uri.path();
    read(
        &sim,
        &headers,
        instance,
        Limit { op: "recurring.fetch-agreement", resource: &id, per_minute: 120 },
        |db, msn, _| match get_own(db, msn, &id) {
            Some(a) => Reply::json(StatusCode::OK, &agreement_json(a)),
            None => not_found("Agreement", instance),
        },
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListAgreementsQuery {
    status: Option<String>,
    created_after: Option<i64>,
    page_number: Option<usize>,
    page_size: Option<usize>,
}

/// `GET /recurring/v3/agreements?status=&createdAfter=&pageNumber=&pageSize=` → `200 [AgreementResponseV3]`.
/// Without `status`, only `ACTIVE` agreements are listed (as documented). Without
/// `pageNumber`/`pageSize`, long lists come in pages with a `Continuation-Token` header;
/// sending that header back returns the next page.
pub(crate) async fn list_agreements(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<ListAgreementsQuery>, QueryRejection>,
) -> Response {
    let instance = uri.path();
    let page_size = sim.config.list_page_size.max(1);
    let now = sim.clock.now();
    let mut db = sim.lock();
    let msn = match authorize(&db, now, &headers, Api::Recurring, instance) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    if sim.config.rate_limits {
        let limit = Limit { op: "recurring.list-agreements", resource: "", per_minute: 5 };
        if let Err(r) = db.recurring.rate.hit(&msn, &limit, now) {
            return r.into_response();
        }
    }
    let Ok(Query(q)) = query else {
        return validation(instance, "query", "invalid query parameters").into_response();
    };
    let (kind, offset) = match continuation(&db, &headers, &msn, now, instance) {
        Err(r) => return r.into_response(),
        Ok(Some((kind @ ListKind::Agreements { .. }, offset))) => (kind, offset),
        Ok(Some(_)) => {
            return validation(instance, "Continuation-Token", "the token belongs to another list").into_response()
        }
        Ok(None) => {
            let status = match q.status.as_deref() {
                None => AgreementStatus::Active,
                Some(s) => match serde_json::from_value::<AgreementStatus>(json!(s)) {
                    Ok(st) => st,
                    Err(_) => {
                        return validation(instance, "status", "must be PENDING, ACTIVE, STOPPED or EXPIRED")
                            .into_response()
                    }
                },
            };
            (ListKind::Agreements { status, created_after: q.created_after }, 0)
        }
    };
    let ListKind::Agreements { status, created_after } = kind.clone() else {
        return validation(instance, "Continuation-Token", "the token belongs to another list").into_response();
    };
    let all = db
        .recurring
        .by_msn
        .get(&msn)
        .into_iter()
        .flatten()
        .filter_map(|id| db.recurring.agreements.get(id))
        .filter(|a| a.status == status)
        .filter(|a| created_after.is_none_or(|t| a.created.timestamp() > t));
    if q.page_number.is_some() || q.page_size.is_some() {
        let size = q.page_size.unwrap_or(page_size).max(1);
        let page = q.page_number.unwrap_or(1).max(1);
        let list: Vec<Value> = all.skip(size.saturating_mul(page - 1)).take(size).map(agreement_json).collect();
        return Reply::json(StatusCode::OK, &Value::Array(list)).into_response();
    }
    let items: Vec<Value> = all.skip(offset).take(page_size.saturating_add(1)).map(agreement_json).collect();
    paged(&mut db, &msn, kind, offset, items, page_size, now)
}

/// Reads a `Continuation-Token` request header: `Ok(None)` without one; 400 if unknown,
/// expired or another merchant's.
pub(super) fn continuation(
    db: &Db,
    headers: &HeaderMap,
    msn: &str,
    now: DateTime<Utc>,
    instance: &str,
) -> Result<Option<(ListKind, usize)>, Reply> {
    let Some(raw) = headers.get("Continuation-Token") else { return Ok(None) };
    let found =
        raw.to_str().ok().and_then(|t| db.recurring.continuations.get(t)).filter(|c| c.msn == msn && c.expires > now);
    match found {
        Some(c) => Ok(Some((c.kind.clone(), c.offset))),
        None => Err(validation(instance, "Continuation-Token", "unknown or expired Continuation-Token")),
    }
}

/// Answers one page (`items` holds up to `page_size + 1` entries from `offset`) and, when more
/// remain, a `Continuation-Token` for the rest.
pub(super) fn paged(
    db: &mut Db,
    msn: &str,
    kind: ListKind,
    offset: usize,
    mut items: Vec<Value>,
    page_size: usize,
    now: DateTime<Utc>,
) -> Response {
    let more = items.len() > page_size;
    items.truncate(page_size);
    let mut reply = Reply::json(StatusCode::OK, &Value::Array(items)).into_response();
    if more {
        let token = uuid::Uuid::new_v4().to_string();
        let conts = &mut db.recurring.continuations;
        conts.retain(|_, c| c.expires > now);
        conts.insert(
            token.clone(),
            Continuation {
                msn: msn.to_owned(),
                kind,
                offset: offset + page_size,
                expires: now + chrono::Duration::minutes(CONTINUATION_LIFETIME_MINUTES),
            },
        );
        if let Ok(v) = HeaderValue::from_str(&token) {
            reply.headers_mut().insert("Continuation-Token", v);
        }
    }
    reply
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PricingUpdateIn {
    amount: Option<i64>,
    suggested_max_amount: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PatchIn {
    product_name: Option<String>,
    product_description: Option<String>,
    merchant_agreement_url: Option<String>,
    external_id: Option<String>,
    status: Option<StopOnly>,
    pricing: Option<PricingUpdateIn>,
    interval: Option<Value>,
}

#[derive(Deserialize, PartialEq, Eq)]
pub(super) enum StopOnly {
    #[serde(rename = "STOPPED")]
    Stopped,
}

/// `PATCH /recurring/v3/agreements/{agreementId}` → `204`. `{"status": "STOPPED"}` must come alone.
pub(crate) async fn update_agreement(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    let instance = uri.path();
    modify(
        &sim,
        &headers,
        &Method::PATCH,
        instance,
        &body,
        lim("recurring.update-agreement", &id, 5),
        |db, msn, _key, now| {
            let p: PatchIn = match parse(&body, instance) {
                Ok(p) => p,
                Err(r) => return r,
            };
            let Some(a) = db.recurring.agreements.get_mut(&id).filter(|a| a.msn == msn) else {
                return not_found("Agreement", instance);
            };
            if a.status != AgreementStatus::Active {
                return rec_problem(
                    StatusCode::BAD_REQUEST,
                    "illegal-agreement-update",
                    &format!("The agreement is {} and cannot be updated", a.status.as_str()),
                    instance,
                    &[],
                );
            }
            let others = p.product_name.is_some()
                || p.product_description.is_some()
                || p.merchant_agreement_url.is_some()
                || p.external_id.is_some()
                || p.pricing.is_some()
                || p.interval.is_some();
            if p.status.is_some() {
                if others {
                    return validation(instance, "status", "status STOPPED must be sent alone");
                }
                stop_agreement(db, &id, "MERCHANT", now);
                return Reply::empty(StatusCode::NO_CONTENT);
            }
            if let Some(n) = &p.product_name {
                if n.is_empty() || n.chars().count() > 45 {
                    return validation(instance, "productName", "must be 1 to 45 characters");
                }
            }
            if p.product_description.as_ref().is_some_and(|s| s.chars().count() > 100) {
                return validation(instance, "productDescription", "must be at most 100 characters");
            }
            if p.merchant_agreement_url.as_ref().is_some_and(|u| !url_ok(u, true)) {
                return validation(instance, "merchantAgreementUrl", "must be an https URL of at most 1024 characters");
            }
            if p.external_id.as_ref().is_some_and(|e| !valid_external_id(e)) {
                return validation(instance, "externalId", "must be 1 to 64 characters");
            }
            if let Some(pr) = &p.pricing {
                match (a.pricing.kind, pr.amount, pr.suggested_max_amount) {
                    (PricingType::Legacy, Some(x), None) if x >= 100 => {}
                    (PricingType::Variable, None, Some(x)) if (100..=2_000_000).contains(&x) => {}
                    (PricingType::Variable, _, Some(_)) => {
                        return rec_problem(
                            StatusCode::BAD_REQUEST,
                            "invalid-suggested-max-amount",
                            "suggestedMaxAmount must be 100 to 2000000",
                            instance,
                            &[],
                        );
                    }
                    (_, None, None) => {}
                    _ => {
                        return validation(
                            instance,
                            "pricing",
                            "amount only for LEGACY (≥ 100), suggestedMaxAmount only for VARIABLE",
                        )
                    }
                }
            }
            let new_interval = match &p.interval {
                None => None,
                Some(v) => match parse_patch_interval(v) {
                    Ok(i) => Some(i),
                    Err(reason) => return validation(instance, "interval", reason),
                },
            };
            if let Some(n) = p.product_name {
                a.product_name = n;
            }
            if let Some(d) = p.product_description {
                a.product_description = Some(d);
            }
            if let Some(u) = p.merchant_agreement_url {
                a.merchant_agreement_url = u;
            }
            if let Some(e) = p.external_id {
                a.external_id = Some(e);
            }
            if let Some(pr) = p.pricing {
                if pr.amount.is_some() {
                    a.pricing.amount = pr.amount;
                }
                if pr.suggested_max_amount.is_some() {
                    a.pricing.suggested_max = pr.suggested_max_amount;
                }
            }
            if let Some(i) = new_interval {
                a.interval = i;
            }
            Reply::empty(StatusCode::NO_CONTENT)
        },
    )
}

pub(super) fn parse_patch_interval(v: &Value) -> Result<Option<Interval>, &'static str> {
    match v.get("type").and_then(Value::as_str) {
        Some("FLEXIBLE") => Ok(None),
        Some("RECURRING") => {
            let period = v.get("period").ok_or("RECURRING requires period")?;
            let i: Interval = serde_json::from_value(period.clone()).map_err(|_| "period must be {unit, count}")?;
            if !(1..=31).contains(&i.count) {
                return Err("period.count must be 1 to 31");
            }
            Ok(Some(i))
        }
        _ => Err("interval.type must be RECURRING or FLEXIBLE"),
    }
}

/// Stops an agreement. A merchant stop cancels `PENDING`, `DUE` and `RESERVED` charges; a user
/// stop leaves `RESERVED` charges for the merchant.
pub(super) fn stop_agreement(db: &mut Db, id: &str, actor: &str, at: DateTime<Utc>) {
    let Db { recurring, hooks, .. } = db;
    let Some(a) = recurring.agreements.get_mut(id) else { return };
    a.status = AgreementStatus::Stopped;
    a.stop = Some(at);
    let msn = a.msn.clone();
    emit_agreement(hooks, a, "recurring.agreement-stopped.v1", actor, at);
    for c in &mut a.charges {
        let cancel = match c.status {
            ChargeStatus::Pending | ChargeStatus::Due => true,
            ChargeStatus::Reserved => actor == "MERCHANT",
            _ => false,
        };
        if cancel {
            c.cancelled = c.amount - c.captured;
            c.status = ChargeStatus::Cancelled;
            c.history.push(HistoryEvent {
                occurred: at,
                event: "CANCEL",
                amount: c.cancelled,
                idempotency_key: None,
                success: true,
            });
            emit_charge(hooks, &msn, c, "recurring.charge-canceled.v1", at);
        }
    }
}

/// Why a payer action was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PayerError {
    NotFound,
    NotPending(&'static str),
    BadPhone,
}

/// The payer accepts a `PENDING` agreement: it becomes `ACTIVE` and its initial charge is
/// processed (DIRECT_CAPTURE → CHARGED, RESERVE_CAPTURE → RESERVED). A failing DIRECT_CAPTURE
/// initial charge (see `fail-next-charge`) makes the agreement `EXPIRED` instead.
pub(crate) fn payer_accept(db: &mut Db, id: &str, phone: Option<&str>, at: DateTime<Utc>) -> Result<(), PayerError> {
    if phone.is_some_and(|p| !valid_phone(p)) {
        return Err(PayerError::BadPhone);
    }
    let Db { recurring, hooks, movements, .. } = db;
    let Store { agreements, fail_next, .. } = recurring;
    let a = agreements.get_mut(id).ok_or(PayerError::NotFound)?;
    if a.status != AgreementStatus::Pending {
        return Err(PayerError::NotPending(a.status.as_str()));
    }
    if let Some(p) = phone {
        a.phone = Some(p.to_owned());
    }
    if a.scope.is_some() {
        a.sub = Some(uuid::Uuid::new_v4().to_string());
    }
    if a.pricing.kind == PricingType::Variable {
        a.pricing.max_amount = a.pricing.suggested_max;
    }
    let msn = a.msn.clone();
    let forced = fail_next.remove(id);
    let initial_fails = forced.is_some() && a.charges.iter().any(|c| c.initial);
    if initial_fails {
        let reason = forced.map(|f| f.1).unwrap_or_default();
        let direct = a.charges.iter().any(|c| c.initial && c.transaction_type == TransactionType::DirectCapture);
        if let Some(c) = a.charges.iter_mut().find(|c| c.initial) {
            c.status = ChargeStatus::Failed;
            c.failure_reason = Some(reason);
            c.history.push(HistoryEvent {
                occurred: at,
                event: "FAIL",
                amount: c.amount,
                idempotency_key: None,
                success: false,
            });
            emit_charge(hooks, &msn, c, "recurring.charge-failed.v1", at);
        }
        if direct {
            a.status = AgreementStatus::Expired;
            emit_agreement(hooks, a, "recurring.agreement-expired.v1", "USER", at);
            return Ok(());
        }
    } else if let Some(f) = forced {
        fail_next.insert(id.to_owned(), f);
    }
    a.status = AgreementStatus::Active;
    a.start = Some(at);
    emit_agreement(hooks, a, "recurring.agreement-activated.v1", "USER", at);
    let agreement_id = a.id.clone();
    for c in a.charges.iter_mut().filter(|c| c.initial && c.status == ChargeStatus::Pending) {
        succeed_charge(hooks, movements, &msn, &agreement_id, c, at);
    }
    Ok(())
}

/// The payer rejects a `PENDING` agreement: it becomes `STOPPED` (event `agreement-rejected`).
pub(crate) fn payer_reject(db: &mut Db, id: &str, at: DateTime<Utc>) -> Result<(), PayerError> {
    let Db { recurring, hooks, .. } = db;
    let a = recurring.agreements.get_mut(id).ok_or(PayerError::NotFound)?;
    if a.status != AgreementStatus::Pending {
        return Err(PayerError::NotPending(a.status.as_str()));
    }
    a.status = AgreementStatus::Stopped;
    a.stop = Some(at);
    emit_agreement(hooks, a, "recurring.agreement-rejected.v1", "USER", at);
    let msn = a.msn.clone();
    for c in a.charges.iter_mut().filter(|c| c.status == ChargeStatus::Pending) {
        c.status = ChargeStatus::Cancelled;
        c.cancelled = c.amount;
        c.history.push(HistoryEvent {
            occurred: at,
            event: "CANCEL",
            amount: c.amount,
            idempotency_key: None,
            success: true,
        });
        emit_charge(hooks, &msn, c, "recurring.charge-canceled.v1", at);
    }
    Ok(())
}

/// The payer stops an `ACTIVE` agreement in the app (actor `USER`).
pub(crate) fn payer_stop(db: &mut Db, id: &str, at: DateTime<Utc>) -> Result<(), PayerError> {
    let a = db.recurring.agreements.get(id).ok_or(PayerError::NotFound)?;
    if a.status != AgreementStatus::Active {
        return Err(PayerError::NotPending(a.status.as_str()));
    }
    stop_agreement(db, id, "USER", at);
    Ok(())
}

/// Timer: a `PENDING` agreement expires after the payer timeout.
pub(crate) fn expire_agreement(db: &mut Db, id: &str, at: DateTime<Utc>) {
    let Db { recurring, hooks, .. } = db;
    let Some(a) = recurring.agreements.get_mut(id) else { return };
    if a.status != AgreementStatus::Pending {
        return;
    }
    a.status = AgreementStatus::Expired;
    emit_agreement(hooks, a, "recurring.agreement-expired.v1", "USER", at);
    let msn = a.msn.clone();
    for c in a.charges.iter_mut().filter(|c| c.status == ChargeStatus::Pending) {
        c.status = ChargeStatus::Cancelled;
        c.cancelled = c.amount;
        c.history.push(HistoryEvent {
            occurred: at,
            event: "CANCEL",
            amount: c.amount,
            idempotency_key: None,
            success: true,
        });
        emit_charge(hooks, &msn, c, "recurring.charge-canceled.v1", at);
    }
}

/// `PATCH /recurring/v3/agreements/{agreementId}/accept` `{"phoneNumber"}` (test only) → `204`.
pub(crate) async fn force_accept(
    State(sim): State<SharedSim>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct AcceptIn {
        phone_number: String,
    }
    let instance = uri.path();
    modify(&sim, &headers, &Method::PATCH, instance, &body, None, |db, msn, _key, now| {
        let req: AcceptIn = match parse(&body, instance) {
            Ok(r) => r,
            Err(r) => return r,
        };
        if get_own(db, msn, &id).is_none() {
            return not_found("Agreement", instance);
        }
        match payer_accept(db, &id, Some(&req.phone_number), now) {
            Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
            Err(PayerError::NotFound) => not_found("Agreement", instance),
            Err(PayerError::BadPhone) => validation(instance, "phoneNumber", "must be an MSISDN: 10 to 15 digits"),
            Err(PayerError::NotPending(s)) => rec_problem(
                StatusCode::BAD_REQUEST,
                "illegal-agreement-update",
                &format!("The agreement is {s}, not PENDING"),
                instance,
                &[],
            ),
        }
    })
}
