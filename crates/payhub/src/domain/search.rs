//! The records pages' one search box: what a reader typed, recognised as the kind of thing it is, so one field
//! finds a payment by its reference, an agreement by its id, or a payer by phone, email or name. Pure.

use super::phone::Phone;

/// What a search text names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A payment intent id (`pi_…`).
    Intent(String),
    /// A payment reference, the order id Vipps sees (`pi-…`).
    Reference(String),
    /// An installment id (`ins_…`).
    Installment(String),
    /// A Vipps agreement id (`agr_…`).
    Agreement(String),
    /// A mandate id (`mdt_…`).
    Mandate(String),
    /// A recurring payment id (`rp_…`).
    Recurring(String),
    /// A payer's phone, as an MSISDN (`4791234567`).
    Phone(String),
    /// A payer's email, lowercase.
    Email(String),
    /// A reference Vipps gave an operation (a psp reference, a charge id): one word with a digit in it.
    PspReference(String),
    /// A part of a payer's name, lowercase.
    Name(String),
    /// Ten bare digits starting with 47: a Norwegian phone with its country code, or a Vipps reference of that
    /// shape (Vipps' psp references are ten digits too); the search finds either.
    PhoneOrReference {
        /// The number as an MSISDN.
        phone: String,
        /// The text as typed.
        reference: String,
    },
}

type MakeLookup = fn(String) -> Lookup;

/// Recognises `text` (`None` when it is empty). A number is a phone when it is written as one (`+47 …`,
/// `0047…`, spaced or dashed, 8 digits, or 10 digits starting with 47); other bare digits are a Vipps reference.
pub fn recognise(text: &str) -> Option<Lookup> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let text: String = text.chars().take(200).collect();
    let prefixed: [(&str, MakeLookup); 6] = [
        ("pi_", Lookup::Intent),
        ("pi-", Lookup::Reference),
        ("ins_", Lookup::Installment),
        ("agr_", Lookup::Agreement),
        ("mdt_", Lookup::Mandate),
        ("rp_", Lookup::Recurring),
    ];
    if let Some((_, make)) = prefixed.iter().find(|(prefix, _)| text.starts_with(prefix)) {
        return Some(make(text));
    }
    if text.contains('@') {
        return Some(Lookup::Email(text.to_lowercase()));
    }
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let written_as_phone = text.starts_with('+')
        || text.starts_with("(+")
        || text.starts_with("00")
        || text.contains([' ', '-', '.'])
        || digits.len() == 8
        || (digits.len() == 10 && digits.starts_with("47"));
    let bare = text.chars().all(|c| c.is_ascii_digit());
    if bare && digits.len() == 10 && digits.starts_with("47") {
        if let Ok(phone) = Phone::parse(&text) {
            return Some(Lookup::PhoneOrReference { phone: phone.to_string(), reference: text });
        }
    }
    if written_as_phone {
        if let Ok(phone) = Phone::parse(&text) {
            return Some(Lookup::Phone(phone.to_string()));
        }
    }
    if !text.contains(char::is_whitespace) && !digits.is_empty() {
        return Some(Lookup::PspReference(text));
    }
    Some(Lookup::Name(text.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_references_are_known_by_their_prefix() {
        assert_eq!(recognise(" pi-1733 "), Some(Lookup::Reference("pi-1733".into())));
        assert_eq!(recognise("pi_019"), Some(Lookup::Intent("pi_019".into())));
        assert_eq!(recognise("ins_1"), Some(Lookup::Installment("ins_1".into())));
        assert_eq!(recognise("agr_5kSeqz"), Some(Lookup::Agreement("agr_5kSeqz".into())));
        assert_eq!(recognise("mdt_1"), Some(Lookup::Mandate("mdt_1".into())));
        assert_eq!(recognise("rp_1"), Some(Lookup::Recurring("rp_1".into())));
        assert_eq!(recognise(""), None);
    }

    #[test]
    fn a_phone_in_any_common_form_is_one_msisdn_and_bare_numbers_are_vipps_references() {
        for text in ["+47 912 34 567", "91234567", "004791234567", "912 34 567", "(+47) 91 23 45 67"] {
            assert_eq!(recognise(text), Some(Lookup::Phone("4791234567".into())), "{text}");
        }
        // Vipps' psp references are ten digits too, so ten bare digits starting with 47 may be either.
        assert_eq!(
            recognise("4791234567"),
            Some(Lookup::PhoneOrReference { phone: "4791234567".into(), reference: "4791234567".into() })
        );
        assert_eq!(recognise("3343121302"), Some(Lookup::PspReference("3343121302".into())));
        assert_eq!(recognise("chr-2024-x1"), Some(Lookup::PspReference("chr-2024-x1".into())));
    }

    #[test]
    fn emails_and_names_are_matched_without_case() {
        assert_eq!(recognise("Kari@Example.org"), Some(Lookup::Email("kari@example.org".into())));
        assert_eq!(recognise("Kari Nordmann"), Some(Lookup::Name("kari nordmann".into())));
        assert_eq!(recognise("Nordmann"), Some(Lookup::Name("nordmann".into())));
    }
}
