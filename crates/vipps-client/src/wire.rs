//! Shared wire types and helpers for tolerant deserialisation.

use serde::{Deserialize, Deserializer, Serialize};

/// Declares a string enum as Vipps sends it: known values map to variants, anything else is
/// kept verbatim in `Unknown(String)` so a value Vipps adds later never fails a read.
///
/// The enums are deliberately not `#[non_exhaustive]`: a caller can map them with an exhaustive
/// `match` (including `Unknown`), so a variant added to this crate shows up as a compile error
/// where it needs handling.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value not documented when this crate was written, kept as sent.
            Unknown(String),
        }

        impl $name {
            /// The value as it appears on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )*
                    Self::Unknown(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $( $wire => Self::$variant, )*
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                Ok(Self::from(value.as_ref()))
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// ISO 4217 currency of an amount.
    pub enum Currency {
        /// Norwegian krone.
        Nok => "NOK",
        /// Danish krone.
        Dkk => "DKK",
        /// Euro.
        Eur => "EUR",
    }
}

/// An amount in minor units (øre, cent) with its currency, as ePayment sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// Currency of the amount.
    pub currency: Currency,
    /// Value in minor units: `49900` is NOK 499.00.
    pub value: i64,
}

impl Amount {
    /// An amount in Norwegian øre.
    pub fn nok(value: i64) -> Self {
        Self { currency: Currency::Nok, value }
    }

    /// An amount in minor units of `currency`.
    pub fn new(currency: Currency, value: i64) -> Self {
        Self { currency, value }
    }
}

/// Reads an integer sent either as a JSON number or as a string of digits.
pub(crate) fn int_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw<'a> {
        Int(i64),
        Float(f64),
        #[serde(borrow)]
        Str(std::borrow::Cow<'a, str>),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Int(value) => Ok(value),
        // Truncation is intended: these are second counts; a fraction carries no meaning.
        #[allow(clippy::cast_possible_truncation)]
        Raw::Float(value) if value.is_finite() => Ok(value as i64),
        Raw::Float(_) => Err(serde::de::Error::custom("non-finite number")),
        Raw::Str(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| serde::de::Error::custom(format!("expected an integer, got {text:?}"))),
    }
}

/// Like [`int_or_string`] for an optional field.
pub(crate) fn opt_int_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "int_or_string")] i64);
    Ok(Option::<Wrap>::deserialize(deserializer)?.map(|w| w.0))
}

/// Parses a timestamp in RFC 3339 or with a colon-less offset (`2022-10-01T16:33:00.824993+0200`),
/// both of which the Report API sends.
pub(crate) fn parse_timestamp(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .or_else(|| {
            // No offset at all: Vipps documents these timestamps as UTC.
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|naive| naive.and_utc().fixed_offset())
        })
}

/// Deserialises a timestamp accepted by [`parse_timestamp`].
pub(crate) fn timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<chrono::DateTime<chrono::FixedOffset>, D::Error> {
    let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
    parse_timestamp(&text).ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {text:?}")))
}

/// Deserialises an optional timestamp accepted by [`parse_timestamp`].
pub(crate) fn opt_timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<chrono::DateTime<chrono::FixedOffset>>, D::Error> {
    let text = Option::<std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    match text {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) => parse_timestamp(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {text:?}"))),
    }
}

/// Deserialises a calendar date sent either as `YYYY-MM-DD` or as a timestamp
/// (`2022-09-16T00:00:00Z`, as Recurring returns `due`).
pub(crate) fn date_or_timestamp<'de, D: Deserializer<'de>>(deserializer: D) -> Result<chrono::NaiveDate, D::Error> {
    let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
    let head = text.get(..10).unwrap_or(&text);
    chrono::NaiveDate::parse_from_str(head, "%Y-%m-%d")
        .map_err(|_| serde::de::Error::custom(format!("invalid date {text:?}")))
}

/// Deserialises `null` as the type's default (Vipps sends `null` for empty lists and objects).
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Deserialize)]
    struct N {
        #[serde(deserialize_with = "int_or_string")]
        n: i64,
    }

    #[test]
    fn integers_are_read_from_numbers_and_strings() {
        let a: N = serde_json::from_str(r#"{"n": 3600}"#).unwrap();
        let b: N = serde_json::from_str(r#"{"n": "3600"}"#).unwrap();
        let c: N = serde_json::from_str(r#"{"n": 3600.0}"#).unwrap();
        assert_eq!((a.n, b.n, c.n), (3600, 3600, 3600));
        assert!(serde_json::from_str::<N>(r#"{"n": "soon"}"#).is_err());
        assert!(serde_json::from_str::<N>(r#"{"n": null}"#).is_err());
    }

    #[test]
    fn report_timestamps_with_and_without_offset_colon_parse_to_the_same_instant() {
        let a = parse_timestamp("2022-10-01T16:33:00.824993+0200").unwrap();
        let b = parse_timestamp("2022-10-01T14:33:00.824993Z").unwrap();
        let c = parse_timestamp("2022-10-01T14:33:00.824993").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert!(parse_timestamp("yesterday").is_none());
    }

    #[test]
    fn unknown_currency_is_kept_verbatim() {
        let c: Currency = serde_json::from_str(r#""SEK""#).unwrap();
        assert_eq!(c, Currency::Unknown("SEK".into()));
        assert_eq!(serde_json::to_string(&c).unwrap(), r#""SEK""#);
        let n: Currency = serde_json::from_str(r#""NOK""#).unwrap();
        assert_eq!(n, Currency::Nok);
    }
}
