//! Property tests of the parsers that read what people type (prices, phone numbers, product
//! drafts, text fields): any input gives a value or an error naming the field, never a panic;
//! what they accept survives being printed and read again.

use proptest::prelude::*;

use super::money::{Currency, MAX_MINOR, Money};
use super::phone::Phone;
use super::product::{PriceInput, ProductDraft, StockInput};
use super::text;

/// Strings a person (or an attacker) might send: any Unicode, digits and separators often.
fn typed() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9 ,._+()\\-]{0,40}",
        "(KSh|KES|USD|\\+|0)?[0-9 ,.]{0,30}[a-z\u{a0}\u{202e}\u{0}]?",
    ]
}

fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![
        Just(Currency::KES),
        "[A-Z]{3}".prop_map(|c| Currency::parse(&c).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_price_parses_within_bounds_or_names_the_price(input in typed(), cur in currency()) {
        match Money::parse(&input, cur) {
            Ok(m) => {
                prop_assert!((0..=MAX_MINOR).contains(&m.minor), "{input:?} → {}", m.minor);
                prop_assert_eq!(m.currency, cur);
            }
            Err(e) => {
                prop_assert_eq!(e.field, "price");
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn a_printed_price_reads_back_the_same(minor in 0..=MAX_MINOR, cur in currency()) {
        let m = Money::new(minor, cur);
        prop_assert_eq!(Money::parse(&m.to_string(), cur), Ok(m));
    }

    #[test]
    fn a_price_too_large_is_refused_not_wrapped(whole in (MAX_MINOR / 100 + 1)..i64::MAX) {
        let e = Money::parse(&whole.to_string(), Currency::KES).unwrap_err();
        prop_assert_eq!(e.field, "price");
        prop_assert!(e.message.contains("too large"), "{}", e.message);
    }

    #[test]
    fn a_currency_is_exactly_three_capitals(code in any::<String>()) {
        let ok = code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase());
        match Currency::parse(&code) {
            Ok(c) => {
                prop_assert!(ok);
                prop_assert_eq!(c.code(), code.as_str());
            }
            Err(e) => {
                prop_assert!(!ok);
                prop_assert_eq!(e.field, "currency");
            }
        }
    }

    #[test]
    fn a_phone_is_e164_or_names_its_field(input in typed()) {
        match Phone::parse("whatsapp", &input) {
            Ok(p) => {
                let digits = p.digits();
                prop_assert!(p.as_str().starts_with('+'));
                prop_assert!((10..=15).contains(&digits.len()), "{input:?} → {p}");
                prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
                prop_assert!(!digits.starts_with('0'));
                // A parsed number reads back as itself.
                prop_assert_eq!(Phone::parse("whatsapp", p.as_str()), Ok(p.clone()));
            }
            Err(e) => prop_assert_eq!(e.field, "whatsapp"),
        }
    }

    #[test]
    fn every_way_of_typing_a_kenyan_number_is_the_same_number(
        subscriber in "[17][0-9]{8}",
        form in 0..4usize,
        seps in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("-"), Just(".")], 9),
    ) {
        let spaced: String = subscriber
            .chars()
            .zip(&seps)
            .map(|(c, s)| format!("{c}{s}"))
            .collect();
        let typed = match form {
            0 => format!("0{spaced}"),
            1 => spaced.clone(),
            2 => format!("254{subscriber}"),
            _ => format!("+254 {spaced}"),
        };
        let p = Phone::parse("whatsapp", &typed).unwrap();
        prop_assert_eq!(p.as_str(), format!("+254{subscriber}"));
    }

    #[test]
    fn a_product_draft_names_only_its_own_fields(
        name in proptest::option::of(typed()),
        description in proptest::option::of(any::<String>()),
        price_text in proptest::option::of(typed()),
        price_minor in proptest::option::of(proptest::option::of(any::<i64>())),
        currency in proptest::option::of(typed()),
        stock_text in proptest::option::of(typed()),
        stock_count in proptest::option::of(any::<u32>()),
    ) {
        let price = match (&price_text, price_minor) {
            (Some(t), _) => Some(PriceInput::Text(t)),
            (None, m) => m.map(PriceInput::Minor),
        };
        let stock = match (&stock_text, stock_count) {
            (Some(t), _) => Some(StockInput::Text(t)),
            (None, n) => n.map(StockInput::Count),
        };
        let draft = ProductDraft {
            name: name.as_deref(),
            description: description.as_deref(),
            price,
            currency: currency.as_deref(),
            stock,
        };
        match draft.validate_new(Currency::KES) {
            Ok(p) => {
                let name = p.name.unwrap();
                prop_assert!((2..=200).contains(&name.chars().count()));
                prop_assert!(!name.chars().any(char::is_control));
                if let Some(Some(m)) = p.price {
                    prop_assert!((0..=MAX_MINOR).contains(&m.minor));
                }
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in &errors.0 {
                    prop_assert!(
                        ["name", "description", "price", "price_minor", "currency", "stock"]
                            .contains(&e.field),
                        "{e:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn text_fields_are_bounded_and_clean(input in any::<String>(), max in 1..300usize) {
        match text::line("name", &input, 2, max) {
            Ok(s) => {
                prop_assert!((2..=max).contains(&s.chars().count()));
                prop_assert!(!s.chars().any(char::is_control));
            }
            Err(e) => prop_assert_eq!(e.field, "name"),
        }
        match text::paragraph("description", &input, max) {
            Ok(s) => {
                prop_assert!(s.chars().count() <= max);
                prop_assert!(!s.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
            }
            Err(e) => prop_assert_eq!(e.field, "description"),
        }
        if let Ok(s) = text::email("login", &input) {
            prop_assert!(s.len() <= 254 && s.contains('@'));
        }
        let slug = text::slug(&input, max.max(8));
        prop_assert!(!slug.is_empty() && slug.len() <= max.max(8));
        prop_assert!(slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    }
}

mod quality {
    use proptest::prelude::*;

    use super::super::quality::{
        BannedWords, Check, Decision, Finding, Spread, check_price, check_text, decide,
    };
    use super::typed;

    fn finding() -> impl Strategy<Value = Finding> {
        (any::<bool>(), any::<bool>(), -1.0f64..2.0).prop_map(|(reject, error, c)| {
            match (error, reject) {
                (true, _) => Finding::errored("photo", "broken"),
                (false, true) => Finding::reject(Check::BannedWord, c, "x"),
                (false, false) => Finding::flag(Check::Blurry, c, "x"),
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text gives findings (never a panic); a banned word placed anywhere as a word
        /// rejects, whatever surrounds it.
        #[test]
        fn text_checks_take_any_text(name in typed(), description in any::<String>(), pre in "[a-z ]{0,20}") {
            let banned = BannedWords::new(&["counterfeit", "fake id"]);
            let findings = check_text(&banned, &name, &description);
            for f in &findings {
                prop_assert!((0.0..=1.0).contains(&f.confidence));
                prop_assert!(!f.detail.is_empty());
            }
            let planted = format!("{pre} counterfeit {description}");
            prop_assert_eq!(decide(check_text(&banned, &name, &planted)).decision, Decision::Rejected);
        }

        /// The decision: any rejection rejects, else any flag flags, else approved; the
        /// confidence is within 0 to 1 and a lone errored check gives exactly 0.5.
        #[test]
        fn the_decision_is_ordered_and_bounded(findings in proptest::collection::vec(finding(), 0..8)) {
            let v = decide(findings.clone());
            prop_assert!((0.0..=1.0).contains(&v.confidence));
            let want = if findings.iter().any(|f| f.severity == super::super::quality::Severity::Reject) {
                Decision::Rejected
            } else if findings.is_empty() {
                Decision::Approved
            } else {
                Decision::Flagged
            };
            prop_assert_eq!(v.decision, want);
            if !findings.is_empty() && findings.iter().all(|f| f.check == Check::Error) {
                prop_assert_eq!(v.confidence, 0.5);
            }
            prop_assert!(v.summary().chars().count() <= 500);
        }

        /// Median/MAD: a price inside the sample's range is never further out than the
        /// sample's extremes; no price panics, zero and negative ones are ignored.
        #[test]
        fn price_spread_is_robust(prices in proptest::collection::vec(-10i64..10_000_000_000, 0..60), price in any::<i64>()) {
            match Spread::of(&prices, 5) {
                None => prop_assert!(prices.iter().filter(|p| **p > 0).count() < 5),
                Some(s) => {
                    prop_assert!(s.mad >= 0.0 && s.median.is_finite());
                    let _ = check_price(Some(price), Some(&s), 3.5);
                    prop_assert!(check_price(Some(s.typical().max(1)), Some(&s), 3.5).is_none());
                }
            }
        }
    }
}
