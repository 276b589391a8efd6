//! A payer's input on a Giving Page: the query's pre-fill and the submitted form, each checked against the
//! page, with problems in the payer's language tied to their fields.

use std::collections::HashMap;

use axum::http::HeaderMap;

use crate::domain::giving_page::{parse_payer_amount, Giving, GivingPageSettings, Lang};
use crate::domain::money::Money;
use crate::domain::phone::Phone;
use crate::pages::Gift;

/// What the payer sent (or the query pre-filled), kept as typed so the form can show it again.
#[derive(Debug, Default, Clone)]
pub(super) struct Values {
    pub(super) amount: String,
    pub(super) preset: String,
    pub(super) frequency: String,
    pub(super) first_name: String,
    pub(super) last_name: String,
    pub(super) email: String,
    pub(super) mobile_number: String,
    pub(super) campaign: String,
    pub(super) origin: String,
}

/// One problem, tied to its field.
pub(super) struct Problem {
    pub(super) field: &'static str,
    pub(super) message: &'static str,
}

/// A posted form's fields by name (a field sent twice keeps its last value; an unreadable body is an empty form,
/// which the checks then refuse field by field).
pub(super) fn form_fields(body: &str) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(body).unwrap_or_default().into_iter().collect()
}

pub(super) fn lang_of(query: &HashMap<String, String>, headers: &HeaderMap) -> Lang {
    match query.get("lang").map(String::as_str) {
        Some("en") => Lang::En,
        Some("nb" | "no" | "nn") => Lang::Nb,
        _ if super::payer_return::norwegian(headers) => Lang::Nb,
        _ => Lang::En,
    }
}

pub(super) fn t(lang: Lang, nb: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Nb => nb,
        Lang::En => en,
    }
}

/// A tracking value from the query or the form: up to 100 letters, digits, spaces and `-_.:/`; anything
/// else is dropped, not refused (a mangled link must still give a working page).
pub(super) fn tracking(value: Option<&String>) -> String {
    value
        .map(|v| v.trim())
        .filter(|v| v.chars().count() <= 100 && v.chars().all(|c| c.is_alphanumeric() || " -_.:/".contains(c)))
        .unwrap_or_default()
        .to_owned()
}

/// The query's pre-fill, each value checked against the page; what does not fit is left out.
pub(super) fn prefill(page: &GivingPageSettings, query: &HashMap<String, String>) -> Values {
    let giving = query
        .get("frequency")
        .and_then(|f| Giving::parse(f))
        .filter(|g| page.frequencies.contains(g))
        .unwrap_or(page.default_frequency);
    let (min, max) = page.limits(giving);
    let amount = query.get("amount").and_then(|a| parse_payer_amount(a)).filter(|m| (min..=max).contains(&m.ore()));
    let (amount, preset) = match amount {
        Some(m) if page.amounts.iter().any(|p| p.ore == m.ore()) => (String::new(), m.ore().to_string()),
        Some(m) => (kroner_input(m.ore()), String::new()),
        None => (String::new(), String::new()),
    };
    // The link's number, else the page's default (a fixed number, or the payer field the link carries).
    let phone = query
        .get("mobileNumber")
        .or_else(|| query.get("phone"))
        .filter(|p| Phone::parse(p).is_ok())
        .cloned()
        .or_else(|| page.parameters.default_phone(query))
        .unwrap_or_default();
    let text = |key: &str| {
        query.get(key).map(|v| v.trim()).filter(|v| v.chars().count() <= 100).unwrap_or_default().to_owned()
    };
    Values {
        amount,
        preset,
        frequency: giving.as_str().to_owned(),
        first_name: text("firstName"),
        last_name: text("lastName"),
        email: text("email"),
        mobile_number: phone,
        campaign: tracking(query.get("campaign")),
        origin: tracking(query.get("origin")),
    }
}

/// An amount as the payer would type it: `250` or `250,50`.
pub(super) fn kroner_input(ore: i64) -> String {
    match ore % 100 {
        0 => (ore / 100).to_string(),
        cents => format!("{},{cents:02}", ore / 100),
    }
}

/// Checks a submission against the page; the gift, or every problem.
pub(super) fn check(
    page: &GivingPageSettings,
    form: &HashMap<String, String>,
    lang: Lang,
) -> (Values, Result<Gift, Vec<Problem>>) {
    let get = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let values = Values {
        amount: get("amount"),
        preset: get("preset"),
        frequency: get("frequency"),
        first_name: get("firstName"),
        last_name: get("lastName"),
        email: get("email"),
        mobile_number: get("mobileNumber"),
        campaign: tracking(form.get("campaign")),
        origin: tracking(form.get("origin")),
    };
    let mut problems = Vec::new();
    let giving = Giving::parse(&values.frequency).filter(|g| page.frequencies.contains(g));
    if giving.is_none() {
        problems.push(Problem {
            field: "frequency",
            message: t(lang, "Velg hvor ofte du vil gi.", "Choose how often you want to give."),
        });
    }
    let (min, max) = page.limits(giving.unwrap_or(page.default_frequency));
    let amount = if !values.amount.is_empty() {
        match parse_payer_amount(&values.amount) {
            Some(m) if m.ore() < min => {
                problems.push(Problem {
                    field: "amount",
                    message: t(
                        lang,
                        "Beløpet er lavere enn det minste vi kan ta imot.",
                        "The amount is below the smallest gift we can take.",
                    ),
                });
                None
            }
            Some(m) if m.ore() > max => {
                problems.push(Problem {
                    field: "amount",
                    message: t(
                        lang,
                        "Beløpet er høyere enn det største vi kan ta imot.",
                        "The amount is above the largest gift we can take.",
                    ),
                });
                None
            }
            Some(m) => Some(m),
            None => {
                problems.push(Problem {
                    field: "amount",
                    message: t(
                        lang,
                        "Skriv beløpet i kroner, for eksempel 250 eller 250,50.",
                        "Type the amount in kroner, for example 250 or 250.50.",
                    ),
                });
                None
            }
        }
    } else {
        // A preset counts only as one of the page's own amounts: the form cannot name a price of its own.
        match page.amounts.iter().find(|p| p.ore.to_string() == values.preset) {
            Some(p) if (min..=max).contains(&p.ore) => Some(Money::from_ore(p.ore)),
            _ => {
                problems.push(Problem {
                    field: "amount",
                    message: t(lang, "Velg et beløp eller skriv inn et.", "Choose an amount or type one."),
                });
                None
            }
        }
    };
    let name = |value: &str, field: &'static str, problems: &mut Vec<Problem>| {
        if value.chars().count() > 100 {
            problems.push(Problem { field, message: t(lang, "Høyst 100 tegn.", "At most 100 characters.") });
        }
        (!value.is_empty()).then(|| value.to_owned())
    };
    let first_name = name(&values.first_name, "firstName", &mut problems);
    let last_name = name(&values.last_name, "lastName", &mut problems);
    let email = name(&values.email, "email", &mut problems);
    if email.as_ref().is_some_and(|e| !valid_email(e)) {
        problems.push(Problem {
            field: "email",
            message: t(
                lang,
                "Skriv en e-postadresse som navn@eksempel.no.",
                "Type an email address like name@example.com.",
            ),
        });
    }
    let phone = if values.mobile_number.is_empty() {
        None
    } else {
        match Phone::parse(&values.mobile_number) {
            Ok(p) => Some(p),
            Err(_) => {
                problems.push(Problem {
                    field: "mobileNumber",
                    message: t(
                        lang,
                        "Skriv et mobilnummer med 8 siffer, eller med landskode som +46 70 123 45 67.",
                        "Type a mobile number with 8 digits, or with a country code like +46 70 123 45 67.",
                    ),
                });
                None
            }
        }
    };
    match (amount, giving) {
        (Some(amount), Some(giving)) if problems.is_empty() => {
            let gift = Gift {
                amount,
                giving,
                first_name,
                last_name,
                email,
                phone,
                campaign: (!values.campaign.is_empty()).then(|| values.campaign.clone()),
                origin: (!values.origin.is_empty()).then(|| values.origin.clone()),
            };
            (values, Ok(gift))
        }
        _ => (values, Err(problems)),
    }
}

pub(super) fn valid_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payer_input_helpers() {
        assert!(valid_email("kari@example.no") && !valid_email("kari@") && !valid_email("kari example.no"));
        assert_eq!(kroner_input(25_050), "250,50");
        assert_eq!(tracking(Some(&"tv-2027".to_owned())), "tv-2027");
        assert_eq!(tracking(Some(&"<script>".to_owned())), "");
    }
}
