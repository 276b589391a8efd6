//! Giving Pages: a hosted donation page's settings, checked whole. The admin API and the admin pages send the
//! same JSON; what is stored is the checked settings, so a page on the air is always a valid one. Pure: no I/O.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::account::ParameterDefault;
use super::money::{Kroner, Money};
use super::phone::Phone;
use super::recurring::MAX_RECURRING_ORE;
use super::schedule::Frequency;
use super::FieldError;

/// The smallest gift a page accepts unless it says otherwise, in øre (10 kr).
pub const DEFAULT_MIN_ORE: i64 = 1_000;
/// The largest gift a page accepts unless it says otherwise, in øre (100 000 kr).
pub const DEFAULT_MAX_ORE: i64 = 10_000_000;
/// The brand colour unless the page names one: dark enough for white text (contrast 5.2:1, WCAG AA).
pub const DEFAULT_COLOUR: &str = "#c2410c";

/// A text in bokmål and English. English falls back to bokmål when not given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Texts {
    /// Norwegian bokmål.
    pub nb: String,
    /// English.
    pub en: String,
}

impl Texts {
    /// The text in the language asked for.
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Nb => &self.nb,
            Lang::En if self.en.is_empty() => &self.nb,
            Lang::En => &self.en,
        }
    }

    fn is_empty(&self) -> bool {
        self.nb.trim().is_empty() && self.en.trim().is_empty()
    }
}

/// A page's language: bokmål by default, English when asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Norwegian bokmål (`nb`).
    Nb,
    /// English (`en`).
    En,
}

impl Lang {
    /// The `lang` attribute's value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Nb => "nb",
            Lang::En => "en",
        }
    }
}

/// How often a gift is given: once, or on a schedule (a Vipps agreement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Giving {
    /// One gift now (a Vipps ePayment).
    OneTime,
    /// A recurring gift.
    Recurring(Frequency),
}

impl Giving {
    /// The name the API and the form use (`OneTime`, `Monthly`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Giving::OneTime => "OneTime",
            Giving::Recurring(f) => f.as_str(),
        }
    }

    /// Parses the API's names (`OneTime` or a Payment API frequency).
    pub fn parse(text: &str) -> Option<Giving> {
        match text.trim() {
            "OneTime" | "One-time" | "Onetime" => Some(Giving::OneTime),
            other => other.parse().ok().map(Giving::Recurring),
        }
    }

    /// The label on the page.
    pub fn label(self, lang: Lang) -> &'static str {
        use Frequency::*;
        match (self, lang) {
            (Giving::OneTime, Lang::Nb) => "Én gang",
            (Giving::OneTime, Lang::En) => "One-time",
            (Giving::Recurring(Weekly), Lang::Nb) => "Hver uke",
            (Giving::Recurring(Weekly), Lang::En) => "Weekly",
            (Giving::Recurring(Monthly), Lang::Nb) => "Hver måned",
            (Giving::Recurring(Monthly), Lang::En) => "Monthly",
            (Giving::Recurring(Quarterly), Lang::Nb) => "Hvert kvartal",
            (Giving::Recurring(Quarterly), Lang::En) => "Quarterly",
            (Giving::Recurring(HalfYearly), Lang::Nb) => "Hvert halvår",
            (Giving::Recurring(HalfYearly), Lang::En) => "Every six months",
            (Giving::Recurring(Yearly), Lang::Nb) => "Hvert år",
            (Giving::Recurring(Yearly), Lang::En) => "Yearly",
        }
    }
}

impl fmt::Display for Giving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Giving {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl utoipa::PartialSchema for Giving {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use Frequency::*;
        let every = [Giving::OneTime, Giving::Recurring(Weekly), Giving::Recurring(Monthly)];
        let more = [Giving::Recurring(Quarterly), Giving::Recurring(HalfYearly), Giving::Recurring(Yearly)];
        let names = every.into_iter().chain(more).map(Giving::as_str);
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "How often a gift is given: `OneTime`, or a Payment API frequency (a recurring gift, a Vipps agreement).",
            ))
            .enum_values(Some(names))
            .into()
    }
}

impl utoipa::ToSchema for Giving {}

impl<'de> Deserialize<'de> for Giving {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Giving::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown frequency {text}")))
    }
}

/// A preset amount with its optional narrative ("250 kr gives a family clean water for a month").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preset {
    /// The amount in øre.
    pub ore: i64,
    /// What the gift does, in both languages (may be empty).
    #[serde(default)]
    pub narrative: Texts,
}

/// The Vipps parameters a page sets on every intent it makes (FinDock's parameter defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PageParameters {
    /// `ProductName` (the agreement's name, recurring).
    #[serde(rename = "ProductName", skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// `description` (the installment's product).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `TransactionText` (what the payer sees in Vipps and on the statement).
    #[serde(rename = "TransactionText", skip_serializing_if = "Option::is_none")]
    pub transaction_text: Option<String>,
    /// `MerchantAgreementUrl` (recurring).
    #[serde(rename = "MerchantAgreementUrl", skip_serializing_if = "Option::is_none")]
    pub merchant_agreement_url: Option<String>,
    /// `mobileNumber`'s default, which pre-fills the phone when the link names none (`?mobileNumber=`): a fixed
    /// number, or a payer field the link carries as `pf_<Field>` (e.g. `{"payer_field": "HomePhone"}` and
    /// `?pf_HomePhone=…`), so any phone field of a CRM's links reaches Vipps. The number the payer types wins.
    #[serde(rename = "mobileNumber", skip_serializing_if = "Option::is_none")]
    pub mobile_number: Option<ParameterDefault>,
}

impl PageParameters {
    /// The phone the page's default gives for a link's query, as written there, if any (a text that is no phone
    /// number is left out).
    pub fn default_phone(&self, query: &std::collections::HashMap<String, String>) -> Option<String> {
        let default = self.mobile_number.as_ref()?;
        let text = match (&default.value, &default.payer_field) {
            (Some(value), _) => value.clone(),
            (None, Some(field)) => query.get(&format!("pf_{field}"))?.clone(),
            (None, None) => return None,
        };
        Phone::parse(&text).is_ok().then_some(text)
    }
}

/// A Giving Page's checked settings: what is stored and what the API shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GivingPageSettings {
    /// The page's address: `/give/{slug}`.
    pub slug: String,
    /// The heading.
    pub title: Texts,
    /// The text under the heading.
    pub intro: Texts,
    /// The preset amounts, in the order shown.
    pub amounts: Vec<Preset>,
    /// The smallest amount accepted, in øre.
    pub min_ore: i64,
    /// The largest amount accepted, in øre.
    pub max_ore: i64,
    /// The frequencies offered, in the order shown.
    pub frequencies: Vec<Giving>,
    /// The frequency chosen when the payer has not chosen one.
    pub default_frequency: Giving,
    /// The merchant account's name (`Target`); `None`: the default account.
    pub account: Option<String>,
    /// Campaign every gift is linked to (a query `campaign` may replace it).
    pub campaign: Option<String>,
    /// Origin label of every gift (a query `origin` may replace it); `give/{slug}` when not set.
    pub origin: Option<String>,
    /// Vipps parameters.
    pub parameters: PageParameters,
    /// Brand colour, `#rrggbb`.
    pub colour: String,
    /// Logo image URL (https).
    pub logo_url: Option<String>,
    /// The hosted thank-you page's text.
    pub thank_you: Texts,
    /// Where payers go after a gift instead of the hosted thank-you page.
    pub success_url: Option<String>,
    /// Where payers go after a failed gift instead of the hosted page.
    pub failure_url: Option<String>,
    /// Whether the page takes gifts.
    pub active: bool,
}

impl GivingPageSettings {
    /// The page's limits for one frequency: recurring gifts are also capped by what Vipps takes for an
    /// agreement.
    pub fn limits(&self, giving: Giving) -> (i64, i64) {
        match giving {
            Giving::OneTime => (self.min_ore, self.max_ore),
            Giving::Recurring(_) => (self.min_ore.max(100), self.max_ore.min(MAX_RECURRING_ORE)),
        }
    }

    /// The text colour on the brand colour: white, or near-black when white would not reach 4.5:1.
    pub fn on_colour(&self) -> &'static str {
        match hex_colour(&self.colour) {
            Some(rgb) if contrast(rgb, [255, 255, 255]) >= 4.5 => "#ffffff",
            _ => "#111111",
        }
    }

    /// The settings as the API shows them (amounts in kroner, as they are sent).
    pub fn view(&self) -> SettingsView {
        SettingsView {
            slug: self.slug.clone(),
            title: self.title.clone(),
            intro: self.intro.clone(),
            amounts: self
                .amounts
                .iter()
                .map(|p| PresetView { amount: Kroner::from_ore(p.ore), narrative: p.narrative.clone() })
                .collect(),
            min_amount: Kroner::from_ore(self.min_ore),
            max_amount: Kroner::from_ore(self.max_ore),
            frequencies: self.frequencies.clone(),
            default_frequency: self.default_frequency,
            account: self.account.clone(),
            campaign: self.campaign.clone(),
            origin: self.origin.clone(),
            parameter_defaults: self.parameters.clone(),
            brand_colour: self.colour.clone(),
            logo_url: self.logo_url.clone(),
            thank_you: self.thank_you.clone(),
            success_url: self.success_url.clone(),
            failure_url: self.failure_url.clone(),
            active: self.active,
        }
    }

    /// [`GivingPageSettings::view`] as JSON: what [`parse_settings`] reads back as the same settings.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.view()).unwrap_or(Value::Null)
    }
}

/// A preset amount as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PresetView {
    /// The amount in NOK.
    pub amount: Kroner,
    /// What the gift does, in both languages (empty texts when none).
    pub narrative: Texts,
}

/// A Giving Page's settings as the API shows them (and takes them back: every field here is one
/// [`parse_settings`] reads).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SettingsView {
    /// The page's address: `/give/{slug}`.
    pub slug: String,
    /// The heading.
    pub title: Texts,
    /// The text under the heading.
    pub intro: Texts,
    /// The preset amounts, in the order shown.
    pub amounts: Vec<PresetView>,
    /// The smallest gift accepted, in NOK.
    pub min_amount: Kroner,
    /// The largest gift accepted, in NOK.
    pub max_amount: Kroner,
    /// The frequencies offered, in the order shown.
    pub frequencies: Vec<Giving>,
    /// The frequency chosen when the payer has not chosen one.
    pub default_frequency: Giving,
    /// The merchant account's name (`Target`); `null`: the default account.
    pub account: Option<String>,
    /// Campaign every gift is linked to (a query `campaign` on the page's address may replace it).
    pub campaign: Option<String>,
    /// Origin label of every gift (a query `origin` may replace it); `give/{slug}` when `null`.
    pub origin: Option<String>,
    /// The Vipps parameters set on every intent the page makes.
    pub parameter_defaults: PageParameters,
    /// Brand colour, `#rrggbb`.
    pub brand_colour: String,
    /// Logo image URL.
    pub logo_url: Option<String>,
    /// The hosted thank-you page's text.
    pub thank_you: Texts,
    /// Where payers go after a gift instead of the hosted thank-you page.
    pub success_url: Option<String>,
    /// Where payers go after a failed gift instead of the hosted page.
    pub failure_url: Option<String>,
    /// Whether the page takes gifts.
    pub active: bool,
}

fn hex_colour(text: &str) -> Option<[u8; 3]> {
    let hex = text.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// WCAG 2.1 contrast ratio of two sRGB colours.
fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
    let luminance = |c: [u8; 3]| {
        let channel = |v: u8| {
            let s = f64::from(v) / 255.0;
            if s <= 0.039_28 {
                s / 12.92
            } else {
                ((s + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2])
    };
    let (x, y) = (luminance(a), luminance(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

/// Whether a slug is usable in a URL as is: 1–60 lowercase letters, digits and dashes.
pub fn valid_slug(slug: &str) -> bool {
    (1..=60).contains(&slug.len())
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
}

const FIELDS: [&str; 18] = [
    "slug",
    "title",
    "intro",
    "amounts",
    "min_amount",
    "max_amount",
    "frequencies",
    "default_frequency",
    "account",
    "campaign",
    "origin",
    "parameter_defaults",
    "brand_colour",
    "logo_url",
    "thank_you",
    "success_url",
    "failure_url",
    "active",
];

/// Checks a page's JSON (as the admin API takes it) and returns its settings, or every problem found. Only
/// `slug`, `title`, `amounts` and `frequencies` are required.
pub fn parse_settings(body: &Value) -> Result<GivingPageSettings, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(map) = body.as_object() else {
        return Err(vec![FieldError::invalid("body", "The body must be a JSON object")]);
    };
    for key in map.keys() {
        if !FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::invalid("body", format!("Unknown field {key}")));
        }
    }
    let slug = text(map, "slug").unwrap_or_default();
    if slug.is_empty() {
        errors.push(FieldError::missing("slug", "slug is required"));
    } else if !valid_slug(&slug) {
        errors.push(FieldError::invalid("slug", "slug may hold only a-z, 0-9 and dashes (at most 60)"));
    }
    let title = texts(map, "title", &mut errors);
    if title.is_empty() {
        errors.push(FieldError::missing("title", "title is required"));
    }
    let intro = texts(map, "intro", &mut errors);
    let thank_you = texts(map, "thank_you", &mut errors);
    let kroner = |key: &'static str, errors: &mut Vec<FieldError>| match map.get(key) {
        None | Some(Value::Null) => None,
        Some(value) => match Money::from_json(value) {
            Ok(m) => Some(m.ore()),
            Err(e) => {
                errors.push(FieldError::invalid(key, format!("{key}: {e}")));
                None
            }
        },
    };
    let min_ore = kroner("min_amount", &mut errors).unwrap_or(DEFAULT_MIN_ORE);
    let max_ore = kroner("max_amount", &mut errors).unwrap_or(DEFAULT_MAX_ORE);
    if min_ore > max_ore {
        errors.push(FieldError::invalid("min_amount", "min_amount must not be above max_amount"));
    }
    let mut amounts = Vec::new();
    match map.get("amounts") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= 8 => {
            for item in items {
                let (value, narrative) = match item {
                    Value::Object(o) => {
                        (o.get("amount").cloned().unwrap_or(Value::Null), texts(o, "narrative", &mut errors))
                    }
                    other => (other.clone(), Texts::default()),
                };
                match Money::from_json(&value) {
                    Ok(m) if (min_ore..=max_ore).contains(&m.ore()) => amounts.push(Preset { ore: m.ore(), narrative }),
                    Ok(_) => errors.push(FieldError::invalid(
                        "amounts",
                        "Every preset amount must be within min_amount and max_amount",
                    )),
                    Err(e) => errors.push(FieldError::invalid("amounts", format!("amounts: {e}"))),
                }
            }
        }
        None | Some(Value::Null) => {
            errors.push(FieldError::missing("amounts", "amounts is required: 1 to 8 amounts in NOK"))
        }
        Some(_) => errors.push(FieldError::invalid("amounts", "amounts must be a list of 1 to 8 amounts in NOK")),
    }
    let mut frequencies = Vec::new();
    match map.get("frequencies") {
        Some(Value::Array(items)) if !items.is_empty() => {
            for item in items {
                match item.as_str().and_then(Giving::parse) {
                    Some(g) if !frequencies.contains(&g) => frequencies.push(g),
                    Some(_) => {}
                    None => errors.push(FieldError::invalid(
                        "frequencies",
                        format!("{item} is not one of OneTime, Weekly, Monthly, Quarterly, Half-yearly, Yearly"),
                    )),
                }
            }
        }
        None | Some(Value::Null) => {
            errors.push(FieldError::missing("frequencies", "frequencies is required, e.g. [\"OneTime\", \"Monthly\"]"))
        }
        Some(_) => errors
            .push(FieldError::invalid("frequencies", "frequencies must be a list, e.g. [\"OneTime\", \"Monthly\"]")),
    }
    let default_frequency = match text(map, "default_frequency") {
        None => frequencies.first().copied().unwrap_or(Giving::OneTime),
        Some(t) => match Giving::parse(&t).filter(|g| frequencies.contains(g)) {
            Some(g) => g,
            None => {
                errors.push(FieldError::invalid("default_frequency", "default_frequency must be one of frequencies"));
                Giving::OneTime
            }
        },
    };
    let colour = text(map, "brand_colour").unwrap_or_else(|| DEFAULT_COLOUR.to_owned()).to_ascii_lowercase();
    if hex_colour(&colour).is_none() {
        errors.push(FieldError::invalid("brand_colour", "brand_colour must be #rrggbb"));
    }
    let url_field = |key: &'static str, errors: &mut Vec<FieldError>| {
        let value = text(map, key)?;
        match Url::parse(&value) {
            Ok(u) if matches!(u.scheme(), "https" | "http") => Some(u.to_string()),
            _ => {
                errors.push(FieldError::invalid(key, format!("{key} must be an http(s) URL")));
                None
            }
        }
    };
    let logo_url = url_field("logo_url", &mut errors);
    let success_url = url_field("success_url", &mut errors);
    let failure_url = url_field("failure_url", &mut errors);
    if success_url.is_some() != failure_url.is_some() {
        errors.push(FieldError::invalid("failure_url", "success_url and failure_url go together"));
    }
    let parameters = match map.get("parameter_defaults") {
        None | Some(Value::Null) => PageParameters::default(),
        Some(value) => match serde_json::from_value::<PageParameters>(value.clone()) {
            Ok(p) => p,
            Err(e) => {
                errors.push(FieldError::invalid("parameter_defaults", format!("parameter_defaults: {e}")));
                PageParameters::default()
            }
        },
    };
    if let Some(default) = &parameters.mobile_number {
        let field_ok =
            |f: &String| (1..=40).contains(&f.len()) && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let problem = match (&default.value, &default.payer_field) {
            (Some(_), Some(_)) | (None, None) => Some("mobileNumber takes either value or payer_field"),
            (Some(value), None) if Phone::parse(value).is_err() => Some("mobileNumber's value is not a phone number"),
            (None, Some(field)) if !field_ok(field) => {
                Some("mobileNumber's payer_field is a field name: letters, digits and _ (at most 40)")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            errors.push(FieldError::invalid("parameter_defaults", problem));
        }
    }
    if parameters.transaction_text.as_ref().is_some_and(|t| !(3..=100).contains(&t.chars().count())) {
        errors.push(FieldError::invalid(
            "parameter_defaults",
            "TransactionText must be 3 to 100 characters (a Vipps rule)",
        ));
    }
    let active = match map.get("active") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(FieldError::invalid("active", "active must be true or false"));
            true
        }
    };
    for (key, limit) in [("account", 100), ("campaign", 100), ("origin", 100)] {
        if text(map, key).is_some_and(|t| t.chars().count() > limit) {
            errors.push(FieldError::invalid(key, format!("{key} can be at most {limit} characters")));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(GivingPageSettings {
        slug,
        title,
        intro,
        amounts,
        min_ore,
        max_ore,
        frequencies,
        default_frequency,
        account: text(map, "account"),
        campaign: text(map, "campaign"),
        origin: text(map, "origin"),
        parameters,
        colour,
        logo_url,
        thank_you,
        success_url,
        failure_url,
        active,
    })
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A text given as one string (both languages) or as `{"nb": …, "en": …}`.
fn texts(map: &Map<String, Value>, key: &'static str, errors: &mut Vec<FieldError>) -> Texts {
    match map.get(key) {
        None | Some(Value::Null) => Texts::default(),
        Some(Value::String(s)) => Texts { nb: s.trim().to_owned(), en: String::new() },
        Some(Value::Object(o)) => {
            let get = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default().trim().to_owned();
            let t = Texts { nb: get("nb"), en: get("en") };
            if t.nb.chars().count() > 2_000 || t.en.chars().count() > 2_000 {
                errors.push(FieldError::invalid(key, format!("{key} can be at most 2000 characters")));
            }
            if t.nb.is_empty() && !t.en.is_empty() {
                return Texts { nb: t.en.clone(), en: t.en };
            }
            t
        }
        Some(_) => {
            errors.push(FieldError::invalid(key, format!("{key} must be a text or {{\"nb\": …, \"en\": …}}")));
            Texts::default()
        }
    }
}

/// Norwegian money: `kr 1 234,50`, or `kr 250` for whole kroner (a no-break space between groups).
pub fn format_kroner(ore: i64) -> String {
    let sign = if ore < 0 { "−" } else { "" };
    let ore = ore.unsigned_abs();
    let whole = (ore / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push('\u{a0}');
        }
        grouped.push(c);
    }
    match ore % 100 {
        0 => format!("kr\u{a0}{sign}{grouped}"),
        cents => format!("kr\u{a0}{sign}{grouped},{cents:02}"),
    }
}

/// Reads an amount as a payer types it on a Norwegian page: `250`, `250,50`, `1 234,50`, `kr 250`, `250.50`.
pub fn parse_payer_amount(text: &str) -> Option<Money> {
    let cleaned: String = text
        .trim()
        .trim_start_matches("kr")
        .trim_start_matches("NOK")
        .trim_end_matches("kr")
        .trim_end_matches(",-")
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}'))
        .map(|c| if c == ',' { '.' } else { c })
        .collect();
    Money::parse_kroner(&cleaned).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_issues_body_is_enough_and_defaults_fill_the_rest() {
        let body = json!({"slug": "spring", "title": "Vårinnsamling", "amounts": [100, 250], "frequencies": ["OneTime", "Monthly"], "account": "Sandbox"});
        let page = parse_settings(&body).unwrap();
        assert_eq!(page.amounts.iter().map(|p| p.ore).collect::<Vec<_>>(), vec![10_000, 25_000]);
        assert_eq!(page.default_frequency, Giving::OneTime);
        assert_eq!(page.frequencies, vec![Giving::OneTime, Giving::Recurring(Frequency::Monthly)]);
        assert_eq!((page.min_ore, page.max_ore), (DEFAULT_MIN_ORE, DEFAULT_MAX_ORE));
        assert!(page.active);
        assert_eq!(page.title.get(Lang::En), "Vårinnsamling");
        assert_eq!(page.on_colour(), "#ffffff");
        assert_eq!(parse_settings(&page.to_json()).unwrap(), page, "what the API shows reads back the same");
    }

    #[test]
    fn every_problem_is_named() {
        let errors = parse_settings(
            &json!({"slug": "Not OK", "amounts": [0], "frequencies": ["Daily"], "brand_colour": "orange", "extra": 1}),
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        for field in ["slug", "title", "amounts", "frequencies", "brand_colour", "body"] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
    }

    #[test]
    fn norwegian_amounts() {
        assert_eq!(format_kroner(123_450), "kr\u{a0}1\u{a0}234,50");
        assert_eq!(format_kroner(25_000), "kr\u{a0}250");
        assert_eq!(format_kroner(100_000_000), "kr\u{a0}1\u{a0}000\u{a0}000");
        assert_eq!(parse_payer_amount("1 234,50"), Some(Money::from_ore(123_450)));
        assert_eq!(parse_payer_amount("kr 250"), Some(Money::from_ore(25_000)));
        assert_eq!(parse_payer_amount("250.5"), Some(Money::from_ore(25_050)));
        assert_eq!(parse_payer_amount("ti kroner"), None);
        assert_eq!(parse_payer_amount("-5"), None);
    }

    #[test]
    fn contrast_picks_readable_text() {
        assert!(contrast([255, 255, 255], [0, 0, 0]) > 20.9);
        let light = parse_settings(
            &json!({"slug": "a", "title": "t", "amounts": [50], "frequencies": ["OneTime"], "brand_colour": "#ffdd00"}),
        )
        .unwrap();
        assert_eq!(light.on_colour(), "#111111");
    }
}
