//! What every record's detail page shares: the timeline as a table (each entry opens to its raw body, with any
//! credential masked), amounts and times as the pages write them, and the confirmation step every action
//! passes through before it changes anything.

use maud::{html, Markup};

use super::{csrf_field, page};
use crate::auth::Principal;
use crate::domain::money::Money;
use crate::store::timeline::TimelineEntry;

/// Øre as NOK with two decimals (`36.00`).
pub fn kroner(ore: i64) -> String {
    Money::from_ore(ore).kroner_string()
}

/// A stored timestamp to the second, for reading.
pub fn when(stamp: &str) -> String {
    stamp.get(..19).unwrap_or(stamp).replace('T', " ")
}

/// Names whose values are credentials: masked wherever they appear in a raw body.
const SECRET_NAMES: [&str; 7] =
    ["authorization", "secret", "subscription-key", "password", "token", "api-key", "apikey"];

fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAMES.iter().any(|s| name.contains(s))
}

fn mask_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (name, value) in map.iter_mut() {
                if secret_name(name) && !value.is_null() {
                    *value = serde_json::Value::String("••••".into());
                } else {
                    mask_json(value);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_json),
        _ => {}
    }
}

/// A raw body as shown: JSON pretty-printed with credential fields masked; other text with the value of any
/// `Name: value` line whose name is a credential masked. Stored bodies should hold none; this is the guard.
pub fn masked(body: &str) -> String {
    if let Ok(mut value) = serde_json::from_str::<serde_json::Value>(body) {
        mask_json(&mut value);
        return serde_json::to_string_pretty(&value).unwrap_or_default();
    }
    body.lines()
        .map(|line| match line.split_once(':') {
            Some((name, _)) if secret_name(name) => format!("{name}: ••••"),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The timeline section of a detail page, oldest first.
pub fn render(entries: &[TimelineEntry]) -> Markup {
    html! {
        h2 { "Timeline" }
        p.muted { "Oldest first, times in UTC. Open an entry for the raw body (credentials masked)." }
        @if entries.is_empty() { p { "Nothing recorded yet." } }
        @else {
            table.log.timeline { tbody {
                @for entry in entries {
                    tr {
                        td.at { (when(&entry.at)) }
                        td.source { span.badge { (entry.source) } }
                        td {
                            @if let Some(link) = &entry.link { a href=(link) { (entry.title) } }
                            @else { (entry.title) }
                            @if let Some(body) = &entry.body {
                                details { summary { "Raw" } pre { (masked(body)) } }
                            }
                        }
                    }
                }
            } }
        }
    }
}

/// A card of facts: one row per (label, value).
pub fn facts(rows: &[(&str, Markup)]) -> Markup {
    html! {
        div.card { table.facts { tbody {
            @for (label, value) in rows { tr { th { (label) } td { (value) } } }
        } } }
    }
}

/// What a confirmation step shows and where its button posts.
pub struct Confirmation<'a> {
    /// The page's title and heading, e.g. "Confirm the pause".
    pub title: &'a str,
    /// What will happen, in a sentence.
    pub question: String,
    /// What follows from it (cannot be undone, Vipps tells the payer…).
    pub warning: &'a str,
    /// Where the confirming form posts.
    pub action: String,
    /// Fields carried over from the first form.
    pub hidden: Vec<(&'a str, String)>,
    /// The confirming button's text.
    pub button: String,
    /// Where Cancel goes back to.
    pub back: String,
}

/// An action's confirmation step: says what will happen and changes nothing; its button posts to the action.
pub fn confirmation(who: &Principal, step: &Confirmation<'_>) -> axum::response::Response {
    page(
        step.title,
        Some(who),
        html! {
            h1 { (step.title) }
            div.card {
                p { (step.question) }
                p.muted { (step.warning) }
                form method="post" action=(step.action) {
                    (csrf_field(who))
                    @for (name, value) in &step.hidden { input type="hidden" name=(name) value=(value); }
                    div.actions {
                        button.danger type="submit" { (step.button) }
                        a.button.secondary href=(step.back) { "Cancel" }
                    }
                }
            }
        },
    )
}

/// A one-button form that opens an action's confirmation step.
pub fn action_button(who: &Principal, action: &str, label: &str, fields: Markup) -> Markup {
    html! {
        form.action method="post" action=(action) {
            (csrf_field(who))
            (fields)
            button type="submit" { (label) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::masked;

    #[test]
    fn credentials_in_raw_bodies_are_masked() {
        let json = masked(r#"{"headers":{"Authorization":"Bearer abc","x":"1"},"client_secret":"s3"}"#);
        assert!(!json.contains("abc") && !json.contains("s3") && json.contains("\"x\": \"1\""), "{json}");
        let text = masked("POST /x\nAuthorization: Bearer abc\nOcp-Apim-Subscription-Key: k\nAccept: */*");
        assert!(!text.contains("abc") && !text.contains(": k") && text.contains("Accept: */*"), "{text}");
    }
}
