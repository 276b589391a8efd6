//! What Vipps itself holds, read with the simulator merchant's own credentials (independent of payhub's
//! records), the simulator's fault injection, and webhooks signed as Vipps signs them.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{TestApp, Vipps};

/// A Vipps client with the simulator merchant's own credentials: what Vipps itself holds.
pub fn sim_client(vipps: &Vipps) -> vipps_client::Client {
    let merchant = &vipps.sim.merchants()[0];
    let credentials = vipps_client::Credentials {
        client_id: merchant.client_id.clone(),
        client_secret: vipps_client::Secret::new(merchant.client_secret.clone()),
        subscription_key: vipps_client::Secret::new(merchant.subscription_key.clone()),
        msn: vipps_client::Msn::parse(&merchant.msn).expect("msn"),
    };
    let system = vipps_client::SystemInfo {
        name: "payhub-tests".into(),
        version: "0.1.0".into(),
        plugin_name: "payhub-tests".into(),
        plugin_version: "0.1.0".into(),
    };
    let base = url::Url::parse(&vipps.sim.base_url()).expect("simulator url");
    vipps_client::Client::new(vipps_client::ClientConfig::new(
        vipps_client::Environment::Custom(base),
        credentials,
        system,
    ))
    .expect("vipps client")
}

/// Every charge Vipps holds for an agreement (every page), in Vipps' order.
pub async fn charges_at_vipps(vipps: &Vipps, agreement_id: &str) -> Vec<vipps_client::recurring::Charge> {
    let client = sim_client(vipps);
    let mut charges = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page =
            client.recurring().list_charges(agreement_id, None, token.as_deref()).await.expect("charges at Vipps");
        charges.extend(page.items);
        match page.continuation_token {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => break,
        }
    }
    charges
}

/// The ids of the charges Vipps holds for an agreement, sorted.
pub async fn charge_ids_at_vipps(vipps: &Vipps, agreement_id: &str) -> Vec<String> {
    let mut ids: Vec<String> = charges_at_vipps(vipps, agreement_id).await.into_iter().map(|c| c.id).collect();
    ids.sort();
    ids
}

/// The number of agreements Vipps holds for the merchant, in any status (Vipps lists one status at a time).
pub async fn agreements_at_vipps(vipps: &Vipps) -> usize {
    use vipps_client::recurring::AgreementStatus;
    let client = sim_client(vipps);
    let mut count = 0;
    for status in
        [AgreementStatus::Pending, AgreementStatus::Active, AgreementStatus::Stopped, AgreementStatus::Expired]
    {
        let mut filter = vipps_client::recurring::ListAgreements::default();
        filter.status = Some(status);
        filter.page_size = Some(1000);
        count += client.recurring().list_agreements(&filter).await.expect("agreements at Vipps").items.len();
    }
    count
}

/// What Vipps itself says was refunded of the payment, in øre.
pub async fn refunded_at_vipps(vipps: &Vipps, reference: &str) -> i64 {
    let reference = vipps_client::epayment::Reference::parse(reference).unwrap();
    sim_client(vipps).epayment().get(&reference).await.expect("payment at Vipps").aggregate.refunded_amount.value
}

/// The refunds recorded as Payments of the installment (negative øre), as the API shows them.
pub async fn refund_payments(app: &TestApp, vipps: &Vipps, installment_id: &str) -> Vec<i64> {
    let installment = app.v2_get(vipps, &format!("/v2/Installment/{installment_id}")).await;
    installment["Payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["AmountOre"].as_i64().unwrap())
        .filter(|a| *a < 0)
        .collect()
}

/// The fault rules the simulator still holds (each with its `remaining` count).
pub async fn faults_left(vipps: &Vipps) -> Vec<Value> {
    let rules: Value = vipps
        .http
        .get(format!("{}/_sim/faults", vipps.sim.base_url()))
        .send()
        .await
        .expect("faults")
        .json()
        .await
        .expect("json");
    rules["faults"].as_array().cloned().unwrap_or_default()
}

/// The simulator answers calls under `prefix` as `rule` says (`kind`: `500`, `delay`, …; `times`).
pub async fn fault(vipps: &Vipps, prefix: &str, mut rule: Value) {
    rule["pathPrefix"] = json!(prefix);
    assert_eq!(vipps.control("/_sim/faults", rule).await, StatusCode::CREATED);
}

/// The simulator answers every call normally again.
pub async fn clear_faults(vipps: &Vipps) {
    vipps.http.delete(format!("{}/_sim/faults", vipps.sim.base_url())).send().await.expect("clear faults");
}

/// The event bodies the simulator sent (or queued) for payhub.
pub async fn sim_deliveries(vipps: &Vipps) -> Vec<Value> {
    let answer: Value = vipps
        .http
        .get(format!("{}/_sim/webhooks/deliveries", vipps.sim.base_url()))
        .send()
        .await
        .expect("deliveries")
        .json()
        .await
        .expect("json");
    answer["deliveries"].as_array().cloned().unwrap_or_default()
}

/// Posts `body` to payhub's intake at `url`, signed with `secret` and dated `date` as Vipps does; the status.
pub async fn deliver(
    app: &TestApp,
    url: &str,
    secret: &str,
    body: &str,
    date: chrono::DateTime<chrono::Utc>,
) -> StatusCode {
    let parsed = url::Url::parse(url).expect("webhook url");
    let host = format!("{}:{}", parsed.host_str().expect("host"), parsed.port().expect("port"));
    let headers = vipps_client::webhooks::sign(
        &vipps_client::Secret::new(secret),
        parsed.path(),
        &host,
        &vipps_client::webhooks::format_date(date),
        body.as_bytes(),
    );
    app.http
        .post(url)
        .header("x-ms-date", headers.date)
        .header("x-ms-content-sha256", headers.content_sha256)
        .header("authorization", headers.authorization)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("delivery")
        .status()
}
