//! The outbox: payhub tells the integrator's systems what happened, with FinDock's event types, at the
//! endpoints configured for the installation and at each payment intent's own `WebhookURL`.
//!
//! An event is written **in the same transaction as the change it announces** (one delivery row per target,
//! each with the job that sends it), so it exists exactly when its change was committed. A flow announces in its
//! own transaction ([`installment`], [`intent`], [`mandate`], [`move_installment`], or [`emit_at`] for any
//! event); a batch of one-time intents (`store::together`) announces through [`BatchEvents`], which the store
//! calls inside the batch with what it wrote and read. Both paths build the event's data with the functions of
//! [`events`] and address it with [`compose`], so they cannot say different things. The deliveries are sent by
//! the [`DELIVER`] job ([`deliver`]); [`endpoints`] administers endpoints and the delivery log. Every statement on
//! the outbox's tables is in `store::outbox`.

pub mod deliver;
pub mod endpoints;
pub mod events;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

pub use self::deliver::{new_secret, sign, verify, InvalidSecret, DELIVER, DELIVERY_ATTEMPTS};
pub use self::endpoints::NewEndpoint;
pub use self::events::EVENT_TYPES;
use crate::domain::ids::new_id;
use crate::domain::status::InstallmentStatus;
use crate::domain::webhook_target::WebhookTargets;
use crate::jobs::{self, Handlers, Job, Jobs, Queue};
use crate::secrets::MasterKey;
use crate::store::outbox::{self as table, Endpoint, NewDelivery, Outgoing};
pub use crate::store::outbox::{DeliveryView, EndpointView, Listeners};
use crate::store::together::{Announce, AnswerWritten, IntentWritten};
use crate::store::StoreResult;

/// The outbox's services: endpoints, the delivery log, resend, and the delivery job. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    queue: Queue,
    key: MasterKey,
    http: reqwest::Client,
    timeout: Duration,
    targets: WebhookTargets,
}

impl Outbox {
    /// The outbox on `queue`'s database, sealing secrets with `key`; receivers get 10 s to answer, and only
    /// public hosts are targets (see [`Outbox::with_targets`]).
    pub fn new(queue: Queue, key: MasterKey) -> Self {
        let targets = WebhookTargets::PublicOnly;
        Self { queue, key, http: deliver::client(targets), timeout: Duration::from_secs(10), targets }
    }

    /// The same services taking endpoint URLs and sending deliveries by `targets`
    /// (`allow_private_webhook_targets`).
    pub fn with_targets(mut self, targets: WebhookTargets) -> Self {
        self.targets = targets;
        self.http = deliver::client(targets);
        self
    }

    /// The same services with another receiver timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Registers the delivery job's handler.
    pub fn register(&self, handlers: &Handlers) {
        let me = self.clone();
        handlers.register(DELIVER, move |job: Job| {
            let me = me.clone();
            async move { me.deliver(job).await }
        });
    }

    /// Registers the delivery job's handler with `jobs` and with every fork of it (each fork's deliveries read
    /// time from that fork's clock), so any set of workers over this database sends deliveries.
    pub fn install(&self, jobs: &Jobs) {
        let me = self.clone();
        jobs.install(move |queue: &Queue, handlers: &Handlers| {
            Outbox { queue: queue.clone(), ..me.clone() }.register(handlers);
        });
    }
}

/// The deliveries of one event: one to every endpoint that takes its type (in the endpoints' order), then one to
/// `url` (an intent's `WebhookURL`), each with a new id (its `webhook-id`). The one addressing of every event,
/// whichever path announces it.
pub(crate) fn compose(
    endpoints: &[Endpoint],
    event_type: &str,
    data: serde_json::Value,
    url: Option<&str>,
    at: DateTime<Utc>,
) -> Vec<NewDelivery> {
    let body = events::body(event_type, data, at);
    let to_endpoints = endpoints.iter().filter(|e| e.takes(event_type)).map(|e| (Some(e.id.clone()), e.url.as_str()));
    let to_url = url.filter(|u| !u.is_empty()).map(|url| (None, url));
    to_endpoints
        .chain(to_url)
        .map(|(endpoint_id, url)| NewDelivery {
            id: new_id("msg"),
            endpoint_id,
            url: url.to_owned(),
            event_type: event_type.to_owned(),
            body: body.clone(),
            at,
        })
        .collect()
}

/// When a delivery's job is due: at once, even when the event was stamped by a clock running ahead (the
/// simulator's), which must not hold it back.
fn due(delivery: &NewDelivery) -> DateTime<Utc> {
    delivery.at.min(Utc::now())
}

/// Writes one delivery of `event_type` per target (every endpoint subscribed to it, plus `extra_url`, the
/// intent's `WebhookURL`) inside the caller's transaction, and enqueues a delivery job for each. Returns the
/// delivery ids.
pub async fn emit(
    conn: &mut AnyConnection,
    event_type: &str,
    data: serde_json::Value,
    extra_url: Option<&str>,
) -> StoreResult<Vec<String>> {
    emit_at(conn, event_type, data, extra_url, Utc::now()).await
}

/// [`emit`] with the event's time given (sandbox mode passes the virtual clock's time); the deliveries are due
/// at once whichever clock that time came from.
pub async fn emit_at(
    conn: &mut AnyConnection,
    event_type: &str,
    data: serde_json::Value,
    extra_url: Option<&str>,
    at: DateTime<Utc>,
) -> StoreResult<Vec<String>> {
    let endpoints = table::endpoints(&mut *conn).await?;
    let mut ids = Vec::new();
    for delivery in compose(&endpoints, event_type, data, extra_url, at) {
        table::insert_delivery(&mut *conn, &delivery).await?;
        jobs::insert(&mut *conn, deliver::delivery_job(&delivery.id), due(&delivery)).await?;
        ids.push(delivery.id);
    }
    Ok(ids)
}

/// `installment.created` or `installment.status_change` for the installment as it now stands.
pub async fn installment(
    conn: &mut AnyConnection,
    listeners: &Listeners,
    event: &str,
    installment_id: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if !listeners.anyone() {
        return Ok(());
    }
    let Some(row) = crate::store::installments::installment(&mut *conn, installment_id).await? else { return Ok(()) };
    let payments = crate::store::payments::payments_of(&mut *conn, installment_id).await?;
    emit_at(conn, event, events::installment_data(&row, &payments), listeners.url(), at).await?;
    Ok(())
}

/// Moves an installment forward (see [`crate::store::installments::advance_installment`]) and, when it moved, announces
/// `installment.status_change` in the same transaction. Returns whether it moved.
pub async fn move_installment(
    conn: &mut AnyConnection,
    listeners: &Listeners,
    id: &str,
    next: InstallmentStatus,
    reason: Option<&str>,
    amount_open_ore: Option<i64>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let moved =
        crate::store::installments::advance_installment(&mut *conn, id, next, reason, amount_open_ore, now).await?;
    if moved {
        installment(conn, listeners, "installment.status_change", id, now).await?;
    }
    Ok(moved)
}

/// `paymentIntent.created|processed|failed` for an intent as it now stands.
pub async fn intent(
    conn: &mut AnyConnection,
    listeners: &Listeners,
    event: &str,
    intent_id: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if !listeners.anyone() {
        return Ok(());
    }
    let Some(intent) = crate::store::intents::intent(&mut *conn, intent_id).await? else { return Ok(()) };
    let installment = match &intent.installment_id {
        Some(id) => crate::store::installments::installment(&mut *conn, id).await?,
        None => None,
    };
    let one_time = installment.as_ref().map(|i| (i.id.as_str(), i.status));
    let data = events::intent_data(&intent.id, intent.status, &intent.payer_id, one_time);
    emit_at(conn, event, data, listeners.url(), at).await?;
    Ok(())
}

/// `mandate.status_change` for a mandate as it now stands.
pub async fn mandate(
    conn: &mut AnyConnection,
    listeners: &Listeners,
    mandate_id: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if !listeners.anyone() {
        return Ok(());
    }
    let Some(mandate) = crate::store::mandates::mandate(&mut *conn, mandate_id).await? else { return Ok(()) };
    emit_at(conn, "mandate.status_change", events::mandate_data(&mandate), listeners.url(), at).await?;
    Ok(())
}

/// The events of a batch of one-time intents, composed inside the batch's transaction from what it wrote and
/// read (see `store::together`): the same events, with the same data, as [`intent`] and [`installment`] would
/// announce from the stored rows.
pub(crate) struct BatchEvents;

impl BatchEvents {
    /// Adds the deliveries of one event, with their jobs, to the batch's.
    fn emit(
        endpoints: &[Endpoint],
        listeners: &Listeners,
        event_type: &str,
        data: serde_json::Value,
        at: DateTime<Utc>,
        out: &mut Outgoing,
    ) {
        for delivery in compose(endpoints, event_type, data, listeners.url(), at) {
            out.add(&delivery, deliver::delivery_job(&delivery.id).row(due(&delivery)));
        }
    }
}

impl Announce for BatchEvents {
    fn recorded(&self, endpoints: &[Endpoint], intent: &IntentWritten<'_>, out: &mut Outgoing) {
        let installment = intent.installment;
        let data = events::intent_data(
            intent.intent_id,
            intent.status,
            intent.payer_id,
            installment.map(|i| (i.id.as_str(), i.status)),
        );
        Self::emit(endpoints, intent.listeners, "paymentIntent.created", data, intent.at, out);
        if let Some(installment) = installment {
            let data = events::installment_data(installment, &[]);
            Self::emit(endpoints, intent.listeners, "installment.created", data, intent.at, out);
        }
    }

    fn created(&self, endpoints: &[Endpoint], answer: &AnswerWritten<'_>, out: &mut Outgoing) {
        let installment = answer.installment;
        if answer.moved {
            let data = events::installment_data(installment, answer.payments);
            Self::emit(endpoints, answer.listeners, "installment.status_change", data, answer.at, out);
        }
        let data = events::intent_data(
            answer.intent_id,
            answer.status,
            answer.payer_id,
            Some((&installment.id, installment.status)),
        );
        Self::emit(endpoints, answer.listeners, "paymentIntent.processed", data, answer.at, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::intent::PayerInput;
    use crate::store::together::testing::{pending, write_once};
    use crate::store::together::{CreatedAtVipps, PendingIntent};
    use crate::store::Store;

    /// The single number `sql` selects.
    async fn count(store: &Store, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(store.pool()).await.unwrap()
    }

    fn answer(item: &PendingIntent, reference: &str, listeners: Option<Listeners>) -> CreatedAtVipps {
        CreatedAtVipps {
            reference: reference.to_owned(),
            installment_id: item.installment_id.clone(),
            intent_id: item.intent_id.clone(),
            amount_ore: item.amount_ore,
            redirect_url: Some(format!("https://landing.example/{reference}")),
            body: "{}".into(),
            listeners,
            now: item.now,
        }
    }

    /// The events announced about `item`, in the order their jobs run, with its own ids replaced so that two
    /// intents' events compare.
    async fn events_of(store: &Store, item: &PendingIntent, reference: &str) -> Vec<String> {
        let mut conn = store.pool().acquire().await.unwrap();
        let payer: String = sqlx::query_scalar("SELECT payer_id FROM payment_intents WHERE id = $1")
            .bind(&item.intent_id)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT d.event_type, d.url, d.body FROM webhook_deliveries d \
             JOIN jobs j ON json_extract(j.payload, '$.delivery_id') = d.id ORDER BY j.id",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        rows.into_iter()
            .filter(|(_, _, body)| body.contains(&item.intent_id))
            .map(|(event, url, body)| {
                let mut body: serde_json::Value = serde_json::from_str(&body).unwrap();
                body["timestamp"] = serde_json::Value::Null;
                let body = body
                    .to_string()
                    .replace(&item.intent_id, "INTENT")
                    .replace(&item.installment_id, "INSTALLMENT")
                    .replace(&payer, "PAYER")
                    .replace(reference, "REFERENCE");
                format!("{event} {url} {body}")
            })
            .collect()
    }

    /// `paymentIntent.*` and `installment.*` as the per-row helpers announce them from the stored rows, for
    /// comparison with what a batch composed.
    async fn announce_from_rows(store: &Store, items: &[(&PendingIntent, &Listeners)], answered: bool) {
        let mut tx = store.begin_write().await.unwrap();
        for (item, listeners) in items {
            let (intent_id, installment_id) = (&item.intent_id, &item.installment_id);
            if answered {
                installment(&mut tx, listeners, "installment.status_change", installment_id, item.now).await.unwrap();
                intent(&mut tx, listeners, "paymentIntent.processed", intent_id, item.now).await.unwrap();
            } else {
                intent(&mut tx, listeners, "paymentIntent.created", intent_id, item.now).await.unwrap();
                installment(&mut tx, listeners, "installment.created", installment_id, item.now).await.unwrap();
            }
        }
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_batch_announces_what_the_rows_it_wrote_say() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
        store.migrate().await.unwrap();
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, url, description, event_types, secret_sealed, created_at) \
             VALUES ('whe_1', 'http://127.0.0.1:9/erp', '', '[]', 'sealed', '2026-01-01T00:00:00Z')",
        )
        .execute(store.pool())
        .await
        .unwrap();
        // Written together: a new payer twice (the email in two cases), the first at half past midnight in Oslo,
        // and a payer known by phone alone with a WebhookURL of its own.
        let mut a = pending(1, "pi-100000000001");
        a.now = "2026-11-23T23:30:00Z".parse().unwrap();
        let mut b = pending(2, "pi-100000000002");
        b.payer.email = Some("same@example.org".into());
        let mut c = pending(3, "pi-100000000003");
        c.payer = PayerInput {
            phone: Some(crate::domain::phone::Phone::parse("4791234567").unwrap()),
            ..PayerInput::default()
        };
        c.profile_phone = Some("4791234567".into());
        c.webhook_url = Some("http://127.0.0.1:9/own".to_owned());
        let recorded =
            write_once(&store, &BatchEvents, &[], &[&a, &b, &c]).await.expect("the batch is written together");
        assert_eq!(recorded.len(), 3);
        assert!(recorded.iter().all(|r| r.listeners.anyone()));
        let heard = [(&a, &recorded[0].listeners), (&c, &recorded[2].listeners)];
        announce_from_rows(&store, &heard, false).await;
        // Answers: one whose listeners are known, one read from its intent.
        let (answer_a, answer_c) =
            (answer(&a, &a.reference, Some(recorded[0].listeners.clone())), answer(&c, &c.reference, None));
        write_once(&store, &BatchEvents, &[&answer_a, &answer_c], &[]).await.expect("the answers are written together");
        announce_from_rows(&store, &heard, true).await;

        // Each intent's deliveries, in the order of their jobs: the batch's created events, the same read from the
        // rows, the batch's answered events, the same read from the rows.
        for (item, targets) in [(&a, 1), (&c, 2)] {
            let events = events_of(&store, item, &item.reference).await;
            assert_eq!(events.len(), 8 * targets, "{events:?}");
            let phase = |n: usize| events[n * 2 * targets..(n + 1) * 2 * targets].to_vec();
            assert_eq!(phase(0), phase(1), "created: the batch's, then from the rows");
            assert_eq!(phase(2), phase(3), "answered: the batch's, then from the rows");
        }

        assert_eq!(count(&store, "SELECT COUNT(*) FROM payers").await, 2);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM payment_profiles").await, 2);
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM installments WHERE status = 'Pending'").await,
            2,
            "a and c were answered"
        );
        let dates: (String, String) = sqlx::query_as(
            "SELECT i.due_date, r.report_date FROM installments i JOIN inbound_reports r ON r.installment_id = i.id \
             AND r.report_type = 'PaymentIntent' WHERE i.id = $1",
        )
        .bind(&a.installment_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(dates, ("2026-11-24".into(), "2026-11-24".into()), "the Oslo date, not the UTC one");
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM jobs").await,
            count(&store, "SELECT COUNT(*) FROM webhook_deliveries").await,
        );
    }
}
