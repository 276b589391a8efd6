//! The rules of Guided Matching that need no storage: which words of a line may be a payment reference, how
//! the candidates of a line are ranked (and why), and how a matched amount is split over the installments a
//! person chose, as the account's remainder handling says. Pure, so each rule is tested alone.

use chrono::NaiveDate;
use serde::Serialize;

use super::account::RemainderHandling;

/// Most suggestions shown for a line.
pub const MAX_SUGGESTIONS: usize = 5;

/// Due dates this many days either side of the ledger date count for an amount match.
pub const DATE_WINDOW_DAYS: i64 = 45;

/// The words of a line's reference and message that may name a payment reference or KID: at least four
/// characters of letters, digits and dashes with a digit among them, lower-cased, each once, the whole
/// reference first.
pub fn reference_words(reference: Option<&str>, message: Option<&str>) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut add = |w: &str| {
        let w = w.trim_matches('-').to_lowercase();
        if w.len() >= 4 && w.bytes().any(|b| b.is_ascii_digit()) && !words.contains(&w) {
            words.push(w);
        }
    };
    if let Some(r) = reference {
        add(r.trim());
    }
    for text in [reference, message].into_iter().flatten() {
        for word in text.split(|c: char| !(c.is_alphanumeric() || c == '-')) {
            add(word);
        }
    }
    words
}

/// The digits a masked phone (`+47 xxxx 1234`) still shows at its end, when at least three.
pub fn phone_tail(masked: Option<&str>) -> Option<String> {
    let digits: String = masked?.chars().rev().take_while(|c| c.is_ascii_digit() || *c == ' ').collect();
    let digits: String = digits.chars().filter(char::is_ascii_digit).collect::<Vec<_>>().into_iter().rev().collect();
    (digits.len() >= 3).then_some(digits)
}

/// A line to rank candidates for.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    /// Amount in øre.
    pub amount_ore: i64,
    /// Ledger date.
    pub ledger_date: NaiveDate,
    /// Reference words ([`reference_words`]).
    pub words: &'a [String],
    /// The payer's name, when the line has one.
    pub name: Option<&'a str>,
    /// The digits the masked phone shows ([`phone_tail`]).
    pub phone_tail: Option<&'a str>,
}

/// What is known of one candidate installment.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// `ins_…`
    pub installment_id: &'a str,
    /// Its payment reference.
    pub payment_reference: &'a str,
    /// What is open, in øre.
    pub amount_open_ore: i64,
    /// Due date.
    pub due_date: NaiveDate,
    /// The payer's name.
    pub payer_name: &'a str,
    /// The payer's phone.
    pub payer_phone: Option<&'a str>,
}

/// One ranked suggestion, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    /// `ins_…`
    pub installment_id: String,
    /// Higher is likelier.
    pub score: u32,
    /// Whether the line names its payment reference.
    pub reference: bool,
    /// Open amount minus the line's amount, in øre (0: exact).
    pub amount_difference_ore: i64,
    /// Days between its due date and the ledger date.
    pub date_distance_days: i64,
    /// Whether the payer's name is the line's.
    pub name: bool,
    /// Whether the payer's phone ends as the line's masked phone.
    pub phone: bool,
    /// The reasons in words.
    pub why: Vec<String>,
}

/// Ranks candidates for a line, best first, at most [`MAX_SUGGESTIONS`]: a named payment reference weighs most,
/// then an exact amount, then closeness of the due date, then name and phone. Ties go to the earlier due date,
/// then the id, so the same data always ranks the same.
pub fn rank(line: &Line<'_>, candidates: &[Facts<'_>]) -> Vec<Suggestion> {
    let mut out: Vec<Suggestion> = candidates
        .iter()
        .map(|c| {
            let reference = line.words.iter().any(|w| *w == c.payment_reference.to_lowercase());
            let amount_difference_ore = c.amount_open_ore - line.amount_ore;
            let date_distance_days = (c.due_date - line.ledger_date).num_days().abs();
            let name = line.name.is_some_and(|n| {
                let n = n.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
                !n.is_empty() && n == c.payer_name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
            });
            let phone = match (line.phone_tail, c.payer_phone) {
                (Some(tail), Some(p)) => p.chars().filter(char::is_ascii_digit).collect::<String>().ends_with(tail),
                _ => false,
            };
            let mut score = 0;
            let mut why = Vec::new();
            if reference {
                score += 100;
                why.push(format!("the line names its payment reference {}", c.payment_reference));
            }
            if amount_difference_ore == 0 {
                score += 40;
                why.push("the amount is what is open".to_owned());
            } else {
                why.push(format!("the amount differs by {} øre", amount_difference_ore.abs()));
            }
            let closeness = (DATE_WINDOW_DAYS - date_distance_days).max(0);
            score += u32::try_from(closeness * 20 / DATE_WINDOW_DAYS).unwrap_or(0);
            why.push(format!("due {date_distance_days} days from the ledger date"));
            if name {
                score += 15;
                why.push("the payer's name is the line's".to_owned());
            }
            if phone {
                score += 15;
                why.push("the payer's phone ends as the line's".to_owned());
            }
            Suggestion {
                installment_id: c.installment_id.to_owned(),
                score,
                reference,
                amount_difference_ore,
                date_distance_days,
                name,
                phone,
                why,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(a.date_distance_days.cmp(&b.date_distance_days))
            .then(a.installment_id.cmp(&b.installment_id))
    });
    out.truncate(MAX_SUGGESTIONS);
    out
}

/// How a matched amount is booked: per installment (in the order given) the amount booked on it, and what is
/// left on the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Split {
    /// Øre booked on each installment (0: none).
    pub booked_ore: Vec<i64>,
    /// Øre left on the report (over-payment nothing took).
    pub remainder_ore: i64,
}

/// Splits `amount_ore` over installments with `open_ore` each (the chosen ones first, then any the account's
/// handling may add), as `handling` says. Book on next and leave on report fill them in order; book all on first
/// puts everything on the first. Leave on report books on the chosen ones only (`chosen` of them): the rest stays
/// on the report, where book on next goes on to the following installments.
pub fn split(amount_ore: i64, open_ore: &[i64], chosen: usize, handling: RemainderHandling) -> Split {
    let mut booked = vec![0; open_ore.len()];
    if open_ore.is_empty() || amount_ore <= 0 {
        return Split { booked_ore: booked, remainder_ore: amount_ore.max(0) };
    }
    let fill_upto = match handling {
        RemainderHandling::BookAllOnFirst => {
            booked[0] = amount_ore;
            return Split { booked_ore: booked, remainder_ore: 0 };
        }
        RemainderHandling::BookOnNext => open_ore.len(),
        RemainderHandling::LeaveOnReport => chosen.min(open_ore.len()),
    };
    let mut left = amount_ore;
    for (slot, open) in booked.iter_mut().zip(open_ore).take(fill_upto) {
        let take = left.min((*open).max(0));
        *slot = take;
        left -= take;
    }
    Split { booked_ore: booked, remainder_ore: left }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, day).unwrap()
    }

    #[test]
    fn reference_words_come_from_the_reference_and_the_message() {
        let words = reference_words(Some("7000000001"), Some("Gave, KID pi-123456\nhilsen Ola"));
        assert_eq!(words, ["7000000001", "pi-123456"]);
        assert!(reference_words(None, Some("hei hei")).is_empty());
    }

    #[test]
    fn the_phone_tail_is_what_the_mask_leaves() {
        assert_eq!(phone_tail(Some("+47 xxxx 1234")).as_deref(), Some("1234"));
        assert_eq!(phone_tail(Some("xxxx 98")), None);
        assert_eq!(phone_tail(None), None);
    }

    #[test]
    fn a_named_reference_outranks_an_exact_amount_and_ties_go_to_the_nearer_date() {
        let words = reference_words(None, Some("for pi-777"));
        let line = Line {
            amount_ore: 25_000,
            ledger_date: d(10),
            words: &words,
            name: Some("Kari  Test"),
            phone_tail: Some("1234"),
        };
        let facts = [
            Facts {
                installment_id: "ins_a",
                payment_reference: "pi-111",
                amount_open_ore: 25_000,
                due_date: d(20),
                payer_name: "Ola Test",
                payer_phone: None,
            },
            Facts {
                installment_id: "ins_b",
                payment_reference: "pi-777",
                amount_open_ore: 30_000,
                due_date: d(1),
                payer_name: "Kari Test",
                payer_phone: Some("4791231234"),
            },
            Facts {
                installment_id: "ins_c",
                payment_reference: "pi-222",
                amount_open_ore: 25_000,
                due_date: d(11),
                payer_name: "Per",
                payer_phone: None,
            },
        ];
        let ranked = rank(&line, &facts);
        let order: Vec<_> = ranked.iter().map(|s| s.installment_id.as_str()).collect();
        assert_eq!(order, ["ins_b", "ins_c", "ins_a"]);
        assert!(ranked[0].reference && ranked[0].name && ranked[0].phone);
        assert_eq!(ranked[0].amount_difference_ore, 5_000);
        assert_eq!(ranked[1].date_distance_days, 1);
        assert!(ranked[1].why.iter().any(|w| w.contains("amount is what is open")));
    }

    #[test]
    fn at_most_five_suggestions_are_given() {
        let words = Vec::new();
        let line = Line { amount_ore: 100, ledger_date: d(1), words: &words, name: None, phone_tail: None };
        let ids: Vec<String> = (0..8).map(|i| format!("ins_{i}")).collect();
        let facts: Vec<Facts<'_>> = ids
            .iter()
            .map(|id| Facts {
                installment_id: id,
                payment_reference: id,
                amount_open_ore: 100,
                due_date: d(1),
                payer_name: "",
                payer_phone: None,
            })
            .collect();
        assert_eq!(rank(&line, &facts).len(), MAX_SUGGESTIONS);
    }

    #[test]
    fn remainders_are_booked_as_the_account_says() {
        use RemainderHandling::*;
        // Over-payment of 50 on one chosen installment of 100, the payer's next one open 100.
        assert_eq!(split(150, &[100, 100], 1, BookOnNext), Split { booked_ore: vec![100, 50], remainder_ore: 0 });
        assert_eq!(split(150, &[100, 100], 1, LeaveOnReport), Split { booked_ore: vec![100, 0], remainder_ore: 50 });
        assert_eq!(split(150, &[100, 100], 1, BookAllOnFirst), Split { booked_ore: vec![150, 0], remainder_ore: 0 });
        // Beyond every installment the rest stays on the report.
        assert_eq!(split(350, &[100, 100], 2, BookOnNext), Split { booked_ore: vec![100, 100], remainder_ore: 150 });
        // Under-payment: the first is filled, the second gets what is left.
        assert_eq!(split(130, &[100, 100], 2, LeaveOnReport), Split { booked_ore: vec![100, 30], remainder_ore: 0 });
        assert_eq!(split(0, &[100], 1, BookOnNext).remainder_ore, 0);
    }
}
