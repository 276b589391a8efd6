//! The dashboard's charts (finance and admin): money collected per day for the last 30 days per account, one-time
//! and recurring stacked; active agreements and their monthly value; failed charges by Vipps' reason; open
//! installments by age; reconciliation per account. Days are payhub's Oslo days (in the sandbox, the virtual
//! clock's), amounts NOK in Norwegian writing. Each chart is one grouped query (`store::dashboard`).

use chrono::{Days, NaiveDate};
use maud::{html, Markup};

use super::charts::{bars, nok, stacked_columns, Series};
use crate::state::AppState;
use crate::store::dashboard::{self as figures, AGE_BUCKETS};
use crate::store::StoreError;

/// How many of a frequency's periods fall in a month, as a fraction (numerator, denominator).
fn per_month(frequency: &str) -> (i64, i64) {
    match frequency {
        "Weekly" => (52, 12),
        "Quarterly" => (1, 3),
        "Half-yearly" | "HalfYearly" => (1, 6),
        "Yearly" => (1, 12),
        _ => (1, 1),
    }
}

fn count(value: i64) -> String {
    value.to_string()
}

/// The charts, as of the Oslo date `today`; `name_of` names an account.
pub async fn charts(
    state: &AppState,
    today: NaiveDate,
    name_of: &(dyn Fn(&str) -> String + Sync),
) -> Result<Markup, StoreError> {
    let mut conn = state.store.pool().acquire().await?;
    let collected = figures::collected_per_day(&mut conn, today).await?;
    let active = figures::active_agreements(&mut conn).await?;
    let failed = figures::failed_charges(&mut conn).await?;
    let open = figures::open_by_age(&mut conn, today).await?;
    let reconciliation = figures::reconciliation(&mut conn).await?;
    drop(conn);

    let days: Vec<NaiveDate> = (0..30u64).rev().filter_map(|back| today.checked_sub_days(Days::new(back))).collect();
    let labels: Vec<String> = days.iter().map(|d| d.format("%-d.%-m.").to_string()).collect();
    let mut accounts: Vec<&str> = collected.iter().map(|c| c.account_id.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();

    let mut monthly: Vec<(String, i64, i64)> = Vec::new();
    for group in &active {
        let (times, per) = per_month(&group.frequency);
        let value = group.amount_ore * times / per;
        match monthly.iter_mut().find(|(a, _, _)| *a == group.account_id) {
            Some(slot) => {
                slot.1 += group.count;
                slot.2 += value;
            }
            None => monthly.push((group.account_id.clone(), group.count, value)),
        }
    }
    let failed_items: Vec<(String, i64)> = failed.iter().map(|(reason, n, _)| (reason.replace('_', " "), *n)).collect();
    let open_items: Vec<(String, i64)> =
        AGE_BUCKETS.iter().zip(&open).map(|(l, (n, _))| ((*l).to_owned(), *n)).collect();

    Ok(html! {
        div.card {
            h2 { "Collected, last 30 days" }
            p.muted { "Captured money per Oslo day up to " (today.format("%-d.%-m.%Y")) "; refunds not subtracted." }
            @if accounts.is_empty() { p { "Nothing collected in the last 30 days." } }
            @for account in &accounts {
                @let of = |pick: fn(&figures::CollectedDay) -> i64| -> Vec<i64> {
                    days.iter().map(|d| collected.iter().find(|c| c.account_id == *account && c.day == *d).map_or(0, pick)).collect()
                };
                @let series = vec![
                    Series { name: "One-time".into(), values: of(|c| c.one_time_ore) },
                    Series { name: "Recurring".into(), values: of(|c| c.recurring_ore) },
                ];
                h3 { (name_of(account)) }
                (stacked_columns(&format!("collected-{account}"), &format!("Collected per day, {}", name_of(account)),
                    "One-time and recurring money captured per day for the last 30 days", &labels, &series, 5, nok))
            }
        }
        div.card {
            h2 { "Active agreements" }
            p.muted { "Recurring payments on an active agreement; monthly value is each amount spread over a month (a yearly gift counts a twelfth)." }
            (bars("agreements", "Monthly value of active agreements per account",
                &monthly.iter().map(|(a, _, v)| (name_of(a), *v)).collect::<Vec<_>>(), nok))
            table { thead { tr { th { "Account" } th.num { "Active" } th.num { "Monthly value" } } }
                tbody { @for (account, n, value) in &monthly { tr { td { (name_of(account)) } td.num { (n) } td.num { (nok(*value)) } } } } }
        }
        div.card {
            h2 { "Failed charges by Vipps' reason" }
            (bars("failed", "Failed recurring charges by Vipps' reason", &failed_items, count))
        }
        div.card {
            h2 { "Open installments by age" }
            p.muted { "Outstanding and pending installments by days past their due date." }
            (bars("open-age", "Open installments by days past due", &open_items, count))
        }
        div.card {
            h2 { "Reconciliation" }
            @if reconciliation.is_empty() { p { "No settlement ledger imported yet." } }
            @else {
                table { thead { tr { th { "Account" } th { "Last ledger date booked" } th.num { "Open in Guided Matching" } } }
                    tbody { @for r in &reconciliation { tr {
                        td { (name_of(&r.account_id)) }
                        td { (r.last_booked.map_or("none yet".to_owned(), |d| d.format("%-d.%-m.%Y").to_string())) }
                        td.num { a href="/reconciliation/queue" { (r.open_items) } }
                    } } } }
            }
        }
    })
}
