//! Reads of payhub's tables, for the tests whose claim is about storage itself: a row written exactly once
//! under a race, nothing written for a refused request, every webhook delivery kept raw, a unique key holding.
//! Business state (an installment's status, a mandate's, the Payments of an installment) is read through the
//! API instead ([`super::recurring`], [`super::TestApp::v2_get`]); a test that reaches here says why storage is
//! what it checks.

use sqlx::Row;

use super::TestApp;

/// The number `sql` counts (its first column, an integer), with `binds` bound to `$1`, `$2`, ….
pub async fn count(app: &TestApp, sql: &str, binds: &[&str]) -> i64 {
    let mut conn = app.state.store.pool_for_tests().acquire().await.expect("connection");
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    query.fetch_one(&mut *conn).await.expect("query").try_get::<i64, _>(0).expect("a number")
}

/// The text `sql` selects (the first column of its one row; `None` for NULL), with `binds` bound to `$1`, ….
pub async fn text(app: &TestApp, sql: &str, binds: &[&str]) -> Option<String> {
    let mut conn = app.state.store.pool_for_tests().acquire().await.expect("connection");
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    query.fetch_one(&mut *conn).await.expect("query").try_get::<Option<String>, _>(0).expect("text")
}

/// The rows of `sql`, each its first two columns as text, with `binds` bound to `$1`, `$2`, ….
pub async fn pairs(app: &TestApp, sql: &str, binds: &[&str]) -> Vec<(String, String)> {
    let mut conn = app.state.store.pool_for_tests().acquire().await.expect("connection");
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    query
        .fetch_all(&mut *conn)
        .await
        .expect("query")
        .iter()
        .map(|row| (row.try_get::<String, _>(0).expect("text"), row.try_get::<String, _>(1).expect("text")))
        .collect()
}

/// Waits (real time, bounded to ten seconds) until `sql` counts at least `at_least`: for what arrives in the
/// background with no API to ask, such as Vipps' webhooks landing in the raw message log.
pub async fn wait_for_count(app: &TestApp, sql: &str, binds: &[&str], at_least: i64) {
    for _ in 0..200 {
        if count(app, sql, binds).await >= at_least {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {sql} {binds:?} >= {at_least}");
}

/// The number of Vipps webhooks kept raw in the message log (`status`: only those in that state).
pub async fn vipps_webhook_messages(app: &TestApp, status: Option<&str>) -> i64 {
    match status {
        Some(status) => {
            count(app, "SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook' AND status = $1", &[status]).await
        }
        None => count(app, "SELECT COUNT(*) FROM messages WHERE channel = 'vipps_webhook'", &[]).await,
    }
}

/// The ids of the charge rows payhub holds for an agreement, sorted: one row per charge is the claim of the
/// exactly-once tests (the API shows an installment's charge, not whether a second row exists beside it).
pub async fn charge_ids(app: &TestApp, agreement_id: &str) -> Vec<String> {
    let mut ids: Vec<String> =
        pairs(app, "SELECT charge_id, installment_id FROM vipps_charges WHERE agreement_id = $1", &[agreement_id])
            .await
            .into_iter()
            .map(|(charge, _)| charge)
            .collect();
    ids.sort();
    ids
}

/// The account's Vipps webhook registration: its URL and its secret, opened. The secret exists only sealed in
/// payhub's table; a test that plays Vipps needs it to sign what it sends.
pub async fn webhook_registration(app: &TestApp) -> (String, String) {
    let account = app.state.accounts.list().await.expect("accounts").remove(0);
    let mut conn = app.state.store.pool_for_tests().acquire().await.expect("connection");
    let row =
        sqlx::query("SELECT url, secret_sealed FROM vipps_webhooks").fetch_one(&mut *conn).await.expect("registration");
    let sealed: String = row.try_get(1).expect("sealed secret");
    let secret = app.state.accounts.open(&sealed, &format!("vipps_webhook:{}", account.id)).expect("secret opens");
    (row.try_get(0).expect("url"), secret.expose().to_owned())
}

/// The schema's exactly-once rules hold, whatever raced: one charge row per installment, one installment per
/// recurring payment and period, at most one Payment per installment. (Counted in storage: a second row is
/// what a race would leave behind, and the API shows one of them.)
pub async fn assert_one_row_per_installment(app: &TestApp) {
    assert_eq!(
        count(app, "SELECT COUNT(*) FROM vipps_charges", &[]).await,
        count(app, "SELECT COUNT(DISTINCT installment_id) FROM vipps_charges", &[]).await,
        "one charge per installment"
    );
    assert_eq!(
        count(app, "SELECT COUNT(*) FROM installments WHERE recurring_payment_id IS NOT NULL", &[]).await,
        count(
            app,
            "SELECT COUNT(*) FROM (SELECT DISTINCT recurring_payment_id, period FROM installments \
             WHERE recurring_payment_id IS NOT NULL) x",
            &[]
        )
        .await,
        "one installment per period"
    );
    assert_eq!(
        count(app, "SELECT COUNT(*) FROM payments", &[]).await,
        count(app, "SELECT COUNT(DISTINCT installment_id) FROM payments", &[]).await,
        "at most one Payment per installment"
    );
}
