//! Phone numbers in Vipps' MSISDN form: country code and subscriber number, digits only (`4791234567`).

use std::fmt;

/// A phone number as Vipps wants it: 10–15 digits, country code first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Phone(String);

/// Why a phone number was refused; safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Phone number must be a Norwegian mobile number (8 digits) or an international number with country code, like +47 912 34 567")]
pub struct PhoneError;

impl Phone {
    /// Normalises what people type: spaces, dashes, dots and brackets are dropped; `+` or `00` introduce the
    /// country code; 8 digits alone are a Norwegian number (`47` is put in front).
    pub fn parse(text: &str) -> Result<Phone, PhoneError> {
        let trimmed = text.trim();
        let international = trimmed.trim_start_matches('(').starts_with('+');
        let mut digits = String::with_capacity(trimmed.len());
        let mut seen_plus = false;
        for c in trimmed.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if digits.is_empty() && !seen_plus => seen_plus = true,
                ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
                _ => return Err(PhoneError),
            }
        }
        let msisdn = if international {
            digits
        } else if let Some(rest) = digits.strip_prefix("00") {
            rest.to_owned()
        } else if digits.len() == 8 {
            format!("47{digits}")
        } else {
            digits
        };
        let valid_length = (10..=15).contains(&msisdn.len());
        let norwegian_ok = !msisdn.starts_with("47") || msisdn.len() == 10;
        if !valid_length || !norwegian_ok || msisdn.starts_with('0') {
            return Err(PhoneError);
        }
        Ok(Phone(msisdn))
    }

    /// The MSISDN digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_ways_of_writing_a_norwegian_number_become_one_msisdn() {
        for text in
            ["+47 912 34 567", "004791234567", "91234567", "4791234567", " +47-912-34-567 ", "(+47) 91 23 45 67"]
        {
            assert_eq!(Phone::parse(text).map(|p| p.to_string()), Ok("4791234567".to_owned()), "{text}");
        }
        assert_eq!(Phone::parse("+45 12 34 56 78").map(|p| p.to_string()), Ok("4512345678".to_owned()));
    }

    #[test]
    fn nonsense_is_refused() {
        for text in ["", "123", "abc", "+47 912", "47912345678", "+47 9123 4567 x", "0091", "9123456"] {
            assert!(Phone::parse(text).is_err(), "{text}");
        }
    }
}
