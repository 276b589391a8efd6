//! Money: integer øre in Norwegian kroner, the only currency Vipps takes from Norwegian merchants here.

use std::fmt;

/// An amount of NOK in øre (1 krone = 100 øre). Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Money(i64);

/// The largest amount accepted, in øre: Vipps' ePayment maximum (NOK 650 000).
pub const MAX_ORE: i64 = 65_000_000;

/// Why an amount was refused; the text is safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not a number.
    #[error("Amount must be a number of kroner, like 36 or 36.50")]
    NotANumber,
    /// Zero or negative.
    #[error("Amount can't be 0 or negative")]
    NotPositive,
    /// More than two decimals.
    #[error("Amount can have at most 2 decimals")]
    TooPrecise,
    /// Above the maximum.
    #[error("Amount can be at most 650000 kroner")]
    TooLarge,
}

impl Money {
    /// An amount from øre.
    pub const fn from_ore(ore: i64) -> Money {
        Money(ore)
    }

    /// The amount in øre.
    pub const fn ore(self) -> i64 {
        self.0
    }

    /// Parses kroner written as a decimal number (`36`, `36.5`, `36.50`, `-1` is refused), exactly: the text is
    /// read digit by digit, never through a float, so `1.005` is refused rather than rounded.
    pub fn parse_kroner(text: &str) -> Result<Money, MoneyError> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = match digits.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (digits, None),
        };
        let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !is_digits(whole) || fraction.is_some_and(|f| !is_digits(f)) {
            return Err(MoneyError::NotANumber);
        }
        // Exponent notation and the like were refused above; trailing zeros beyond two decimals are fine.
        let fraction = fraction.unwrap_or("");
        let significant = fraction.trim_end_matches('0');
        if significant.len() > 2 {
            return Err(MoneyError::TooPrecise);
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 12 {
            return Err(MoneyError::TooLarge);
        }
        let kroner: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| MoneyError::TooLarge)? };
        let ore_part: i64 = format!("{significant:0<2}").parse().map_err(|_| MoneyError::NotANumber)?;
        let ore = kroner * 100 + ore_part;
        if negative || ore == 0 {
            return Err(MoneyError::NotPositive);
        }
        if ore > MAX_ORE {
            return Err(MoneyError::TooLarge);
        }
        Ok(Money(ore))
    }

    /// Parses a JSON amount: a number or a numeric string, in kroner. A number is read back from its shortest
    /// decimal text (which round-trips exactly for every amount with two decimals), never by multiplying a float.
    pub fn from_json(value: &serde_json::Value) -> Result<Money, MoneyError> {
        match value {
            serde_json::Value::Number(n) => Money::parse_kroner(&n.to_string()),
            serde_json::Value::String(s) => Money::parse_kroner(s),
            _ => Err(MoneyError::NotANumber),
        }
    }

    /// The amount as kroner with two decimals, as a JSON number would carry it (`36.5` → `"36.50"`).
    pub fn kroner_string(self) -> String {
        // The sign is written apart: `-50 / 100` is 0, which has no sign to carry.
        let sign = if self.0 < 0 { "-" } else { "" };
        format!("{sign}{}.{:02}", (self.0 / 100).unsigned_abs(), (self.0 % 100).unsigned_abs())
    }

    /// The amount as a JSON number in kroner (exact: built from the decimal text).
    pub fn to_json_kroner(self) -> serde_json::Value {
        serde_json::from_str(&self.kroner_string()).unwrap_or(serde_json::Value::Null)
    }
}

/// An amount as the APIs write it: a JSON number of kroner with at most two decimals (`-12.50` for a refund),
/// made from øre so that no float ever holds money on the way out. Response types hold this, not a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kroner(pub i64);

impl Kroner {
    /// `ore` øre, as kroner.
    pub const fn from_ore(ore: i64) -> Kroner {
        Kroner(ore)
    }
}

impl serde::Serialize for Kroner {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&signed_json_kroner(self.0), serializer)
    }
}

impl utoipa::PartialSchema for Kroner {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .description(Some("An amount in NOK (kroner, at most two decimals; negative for money paid back)."))
            .examples([serde_json::json!(250.5)])
            .into()
    }
}

impl utoipa::ToSchema for Kroner {}

/// An amount as a request gives it: a JSON number of kroner or the same as a string (`36`, `"36.50"`), at most
/// two decimals, more than 0 and at most 650 000; read exactly by [`Money::from_json`]. It documents request
/// bodies that the handlers parse by hand.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(transparent)]
pub struct AmountInput(pub serde_json::Value);

impl utoipa::PartialSchema for AmountInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{SchemaType, Type};
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Number, Type::String]))
            .description(Some(
                "An amount in NOK: a number of kroner or the same as a string (`36`, `\"36.50\"`), more than 0, at \
                 most two decimals and at most 650000.",
            ))
            .exclusive_minimum(Some(0.0))
            .maximum(Some(650_000.0))
            .pattern(Some(r"^\s*\+?[0-9]+(\.[0-9]+)?\s*$"))
            .examples([serde_json::json!("36.50")])
            .into()
    }
}

impl utoipa::ToSchema for AmountInput {}

/// A signed amount of øre as a JSON number of kroner (`-1250` → `-12.50`), for refunds shown as negatives.
pub fn signed_json_kroner(ore: i64) -> serde_json::Value {
    let sign = if ore < 0 { "-" } else { "" };
    serde_json::from_str(&format!("{sign}{}", Money::from_ore(ore.abs()).kroner_string()))
        .unwrap_or(serde_json::Value::Null)
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NOK {}", self.kroner_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kroner_convert_to_ore_exactly() {
        for (text, ore) in [
            ("36", 3600),
            ("36.5", 3650),
            ("36.50", 3650),
            ("0.01", 1),
            ("1.10", 110),
            ("1.000", 100),
            ("650000", MAX_ORE),
            ("007", 700),
        ] {
            assert_eq!(Money::parse_kroner(text), Ok(Money::from_ore(ore)), "{text}");
        }
    }

    #[test]
    fn bad_amounts_are_refused_with_a_reason() {
        assert_eq!(Money::parse_kroner("0"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse_kroner("0.00"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse_kroner("-1"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse_kroner("1.005"), Err(MoneyError::TooPrecise));
        assert_eq!(Money::parse_kroner("1,50"), Err(MoneyError::NotANumber));
        assert_eq!(Money::parse_kroner("abc"), Err(MoneyError::NotANumber));
        assert_eq!(Money::parse_kroner("1e3"), Err(MoneyError::NotANumber));
        assert_eq!(Money::parse_kroner(""), Err(MoneyError::NotANumber));
        assert_eq!(Money::parse_kroner("."), Err(MoneyError::NotANumber));
        assert_eq!(Money::parse_kroner("650000.01"), Err(MoneyError::TooLarge));
        assert_eq!(Money::parse_kroner("99999999999999999999999"), Err(MoneyError::TooLarge));
    }

    #[test]
    fn json_numbers_and_strings_are_both_accepted() {
        let v: serde_json::Value =
            serde_json::from_str(r#"[36, "36", 36.25, 1.005, true, null, 1e2]"#).unwrap_or_default();
        assert_eq!(Money::from_json(&v[0]), Ok(Money::from_ore(3600)));
        assert_eq!(Money::from_json(&v[1]), Ok(Money::from_ore(3600)));
        assert_eq!(Money::from_json(&v[2]), Ok(Money::from_ore(3625)));
        assert_eq!(Money::from_json(&v[3]), Err(MoneyError::TooPrecise));
        assert_eq!(Money::from_json(&v[4]), Err(MoneyError::NotANumber));
        assert_eq!(Money::from_json(&v[5]), Err(MoneyError::NotANumber));
        assert_eq!(Money::from_json(&v[6]), Ok(Money::from_ore(10_000)), "1e2 is the number 100");
        assert_eq!(Money::from_ore(3650).kroner_string(), "36.50");
        assert_eq!(Money::from_ore(3650).to_string(), "NOK 36.50");
    }

    #[test]
    fn a_negative_amount_under_one_krone_keeps_its_sign() {
        for (ore, text) in [(-50, "-0.50"), (-1, "-0.01"), (-100, "-1.00"), (-3650, "-36.50"), (0, "0.00"), (7, "0.07")]
        {
            assert_eq!(Money::from_ore(ore).kroner_string(), text, "{ore}");
        }
        assert_eq!(Money::from_ore(-50).to_json_kroner(), serde_json::json!(-0.5));
    }
}
