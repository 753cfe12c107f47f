//! The catalogue is complete: every key used in a template or a source file exists in both
//! languages, no template shows text that is not a key, and every message the rules write
//! has its Swahili. Each failure names the key, file and line to fix.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::catalogue::{SAME_IN_BOTH, STRINGS, lookup};
use super::messages::{MESSAGES, matches, to_swahili};
use super::{Lang, format};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|e| e == ext) {
            out.push(p);
        }
    }
}

/// `{0}`, `{1}`… in a text.
fn placeholders(s: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
            out.insert(inner.to_owned());
        }
        rest = &rest[open + close + 1..];
    }
    out
}

#[test]
fn every_key_has_both_languages_and_the_same_placeholders() {
    let mut seen = BTreeSet::new();
    for (key, en, sw) in STRINGS {
        assert!(seen.insert(*key), "key {key} is in the catalogue twice");
        assert!(!en.trim().is_empty(), "key {key} has no English");
        assert!(!sw.trim().is_empty(), "key {key} has no Swahili");
        assert_eq!(
            placeholders(en),
            placeholders(sw),
            "key {key}: English and Swahili name different placeholders"
        );
        assert_eq!(Lang::En.t(key), *en);
        assert_eq!(Lang::Sw.t(key), *sw);
    }
    for (en, sw) in MESSAGES {
        assert!(
            placeholders(sw).is_subset(&placeholders(en)),
            "message {en:?}: Swahili uses a placeholder English lacks"
        );
    }
}

#[test]
fn an_unknown_key_is_never_empty() {
    assert_eq!(
        Lang::Sw.t("no_such_key_in_the_catalogue"),
        "no_such_key_in_the_catalogue"
    );
    assert_eq!(Lang::En.t("chat_whatsapp"), "Chat on WhatsApp");
    assert_eq!(
        Lang::Sw.t("chat_whatsapp"),
        "Wasiliana na muuzaji kwa WhatsApp"
    );
    assert_eq!(Lang::Sw.tf1("n_days", 7), "siku 7");
    assert_eq!(Lang::parse("sw"), Some(Lang::Sw));
    assert_eq!(Lang::parse("fr"), None);
}

#[test]
fn accept_language_picks_the_best_language_spoken_here() {
    assert_eq!(
        Lang::from_accept_language("sw-KE, en;q=0.8"),
        Some(Lang::Sw)
    );
    assert_eq!(Lang::from_accept_language("en-GB,sw;q=0.9"), Some(Lang::En));
    assert_eq!(Lang::from_accept_language("fr, sw;q=0.5"), Some(Lang::Sw));
    assert_eq!(
        Lang::from_accept_language("sw;q=0, en;q=0.1"),
        Some(Lang::En)
    );
    assert_eq!(Lang::from_accept_language("fr, de"), None);
    assert_eq!(Lang::from_accept_language("sw;q=x, *"), None);
    assert_eq!(Lang::from_accept_language(""), None);
}

/// Every `t("key")`, `tf1("key"`, `tf2("key"` in `text`, with its line.
fn keys_used(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for call in ["t(\"", "tf1(\"", "tf2(\""] {
            for (at, _) in line.match_indices(call) {
                // A method call: `.t("…")`, not `format!("…")` or `assert!("…")`.
                if at == 0 || line.as_bytes()[at - 1] != b'.' {
                    continue;
                }
                let rest = &line[at + call.len()..];
                if let Some(end) = rest.find('"') {
                    let key = &rest[..end];
                    // Keys are snake_case words; anything else is prose about keys.
                    if !key.is_empty()
                        && key
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    {
                        out.push((n + 1, key.to_owned()));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_key_used_in_templates_and_sources_is_in_the_catalogue() {
    let mut paths = Vec::new();
    files(&root().join("src"), "rs", &mut paths);
    files(&root().join("src/web/templates"), "html", &mut paths);
    let mut missing = Vec::new();
    let mut used = 0;
    for p in &paths {
        // This file's own examples of unknown keys.
        if p.ends_with("market/i18n/tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(p).unwrap();
        for (line, key) in keys_used(&text) {
            used += 1;
            if lookup(&key).is_none() {
                missing.push(format!("{}:{line}: {key}", p.display()));
            }
        }
    }
    assert!(used > 150, "the scan found too few keys ({used})");
    assert!(
        missing.is_empty(),
        "keys used but missing from src/market/i18n/catalogue.rs (add English and Swahili):\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_state_word_and_month_has_its_key() {
    use crate::market::orders::{LeadStatus, OrderStatus};
    use crate::market::states::{Moderation, ProductStatus, Role, SellerStatus, UserStatus};
    let mut words: Vec<&str> = Vec::new();
    words.extend(ProductStatus::ALL.iter().map(|s| s.as_str()));
    words.extend(Moderation::ALL.iter().map(|s| s.as_str()));
    words.extend(SellerStatus::ALL.iter().map(|s| s.as_str()));
    words.extend(Role::ALL.iter().map(|s| s.as_str()));
    words.extend(UserStatus::ALL.iter().map(|s| s.as_str()));
    words.extend(LeadStatus::ALL.iter().map(|s| s.as_str()));
    words.extend(OrderStatus::ALL.iter().map(|s| s.as_str()));
    for w in words {
        assert!(lookup(&format!("state_{w}")).is_some(), "no key state_{w}");
        assert_ne!(Lang::Sw.state(w), w, "state_{w} has no Swahili");
    }
    for m in 1..=12 {
        assert!(lookup(&format!("month_{m}")).is_some(), "no key month_{m}");
    }
}

/// A template with its Askama tags and comments taken out (each replaced by `\u{1}`, so that
/// an attribute made only of expressions is told from one with text).
fn without_askama(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    loop {
        let next = ["{{", "{%", "{#"]
            .iter()
            .filter_map(|o| rest.find(o).map(|i| (i, *o)))
            .min();
        let Some((at, open)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        let close = match open {
            "{{" => "}}",
            "{%" => "%}",
            _ => "#}",
        };
        let end = rest[at..]
            .find(close)
            .unwrap_or_else(|| panic!("an unclosed {open} in a template"));
        out.push('\u{1}');
        rest = &rest[at + end + 2..];
    }
}

/// Text a template may hold without a key: markup punctuation, symbols, digits and the words
/// that are the same in both languages.
fn allowed_literal(text: &str) -> bool {
    text.split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .all(|w| SAME_IN_BOTH.contains(&w))
}

/// (line, what) of every piece of literal text in a template: text between tags and the
/// person-facing attributes.
fn literal_text(template: &str) -> Vec<(usize, String)> {
    const READ_ATTRS: &[&str] = &[
        "placeholder",
        "title",
        "alt",
        "aria-label",
        "data-confirm",
        "label",
        "content",
    ];
    let stripped = without_askama(template);
    let mut out = Vec::new();
    let bytes = stripped.as_str();
    let mut i = 0;
    let line_of = |at: usize| stripped[..at].matches('\n').count() + 1;
    while i < bytes.len() {
        if let Some(lt) = bytes[i..].find('<') {
            let text = &bytes[i..i + lt];
            if !allowed_literal(text) {
                out.push((line_of(i), text.trim().to_owned()));
            }
            let start = i + lt;
            let end = bytes[start..]
                .find('>')
                .map_or(bytes.len(), |e| start + e + 1);
            let tag = &bytes[start..end];
            // `<meta name="…" content="…">`: only og/twitter text would be person-facing, and
            // those are expressions; the scan reads `content` all the same.
            for attr in READ_ATTRS {
                let pat = format!(" {attr}=\"");
                if let Some(a) = tag.find(&pat) {
                    let v = &tag[a + pat.len()..];
                    let v = &v[..v.find('"').unwrap_or(v.len())];
                    // `content` is read out only on the description and title metas.
                    let skip = *attr == "content"
                        && ![
                            "name=\"description\"",
                            "property=\"og:title\"",
                            "property=\"og:description\"",
                            "name=\"twitter:title\"",
                        ]
                        .iter()
                        .any(|m| tag.contains(m));
                    if !skip && !allowed_literal(v) {
                        out.push((line_of(start), format!("{attr}=\"{v}\"")));
                    }
                }
            }
            i = end;
        } else {
            let text = &bytes[i..];
            if !allowed_literal(text) {
                out.push((line_of(i), text.trim().to_owned()));
            }
            break;
        }
    }
    out
}

#[test]
fn no_template_holds_untranslated_text() {
    let mut paths = Vec::new();
    files(&root().join("src/web/templates"), "html", &mut paths);
    assert!(paths.len() >= 15, "too few templates found");
    let mut found = Vec::new();
    for p in &paths {
        let text = std::fs::read_to_string(p).unwrap();
        for (line, what) in literal_text(&text) {
            found.push(format!("{}:{line}: {what:?}", p.display()));
        }
    }
    assert!(
        found.is_empty(),
        "text in templates that is not a catalogue key (use {{{{ page.t(\"…\") }}}}):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_sees_text_and_lets_markup_through() {
    assert!(literal_text("<p>{{ page.t(\"x\") }} · ★ 5</p>").is_empty());
    assert_eq!(literal_text("<p>Hello {{ name }}</p>").len(), 1);
    assert_eq!(literal_text("<input placeholder=\"Your name\">").len(), 1);
    assert!(literal_text("<input placeholder=\"{{ page.t(\"x\") }}\">").is_empty());
    assert!(literal_text("{% block title %}Soko{% endblock %}").is_empty());
    assert_eq!(
        literal_text("{% if x %}Suspend{% else %}{{ y }}{% endif %}").len(),
        1
    );
}

/// The message literal of each `FieldError::new(field, "…")` / `format!("…")` in `text`,
/// with `{name}` turned into `{0}`.
fn field_error_literals(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("FieldError::new(") {
        let call = call_text(&text[at..]);
        // The message is the last string literal of the call.
        let quotes: Vec<usize> = call.match_indices('"').map(|(i, _)| i).collect();
        if quotes.len() < 2 {
            continue; // a message built elsewhere (a variable): checked by the samples below
        }
        let (a, b) = (quotes[quotes.len() - 2], quotes[quotes.len() - 1]);
        let mut lit = call[a + 1..b].to_owned();
        // `{name}` / `{}` → `{0}`, `{1}`…
        let mut n = 0;
        let mut out_lit = String::new();
        let mut rest = lit.as_str();
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
            out_lit.push_str(&rest[..open]);
            out_lit.push_str(&format!("{{{n}}}"));
            n += 1;
            rest = &rest[(close + 1).min(rest.len())..];
        }
        out_lit.push_str(rest);
        lit = out_lit;
        let line = text[..at].matches('\n').count() + 1;
        // A one-word literal is the field's name (the message came from a variable).
        if lit.contains(' ') || lit.starts_with('{') {
            out.push((line, lit));
        }
    }
    out
}

/// `FieldError::new(…)` up to its closing parenthesis (strings skipped).
fn call_text(from: &str) -> &str {
    let mut depth = 0;
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in from.char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &from[..=i];
                }
            }
            _ => {}
        }
    }
    from
}

#[test]
fn every_field_error_the_sources_write_has_its_swahili() {
    let mut paths = Vec::new();
    for dir in ["src/market", "src/web", "src/accounts"] {
        files(&root().join(dir), "rs", &mut paths);
    }
    let mut missing = Vec::new();
    let mut seen = 0;
    for p in &paths {
        if p.ends_with("market/i18n/tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(p).unwrap();
        for (line, lit) in field_error_literals(&text) {
            seen += 1;
            // A pattern whose placeholders may stand for the literal's placeholders.
            if !MESSAGES.iter().any(|(en, _)| matches(en, &lit).is_some()) {
                missing.push(format!("{}:{line}: {lit:?}", p.display()));
            }
        }
    }
    assert!(seen > 10, "the scan found too few field errors ({seen})");
    assert!(
        missing.is_empty(),
        "field errors without Swahili (add them to src/market/i18n/messages.rs):\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_rules_messages_read_in_swahili() {
    use crate::market::money::{Currency, Money};
    use crate::market::phone::Phone;
    use crate::market::text;
    let mut samples: Vec<String> = vec![
        text::line("f", "", 1, 10).unwrap_err().message,
        text::line("f", "a", 3, 10).unwrap_err().message,
        text::line("f", "abcdefghijkl", 1, 10).unwrap_err().message,
        text::line("f", "a\u{7}b", 1, 10).unwrap_err().message,
        text::line("f", "a\u{202e}b", 1, 10).unwrap_err().message,
        text::paragraph("f", &"x".repeat(30), 10)
            .unwrap_err()
            .message,
        text::email("f", "nope").unwrap_err().message,
        Phone::parse("f", "12").unwrap_err().message,
        Phone::parse("f", "+2547123").unwrap_err().message,
        Money::parse("", Currency::KES).unwrap_err().message,
        Money::parse("-5", Currency::KES).unwrap_err().message,
        Money::parse("abc", Currency::KES).unwrap_err().message,
        Money::parse("1.234", Currency::KES).unwrap_err().message,
        Money::parse("99999999999999999999", Currency::KES)
            .unwrap_err()
            .message,
        crate::accounts::check_new_password("short")
            .unwrap_err()
            .message,
        crate::accounts::check_new_password(&"x".repeat(300))
            .unwrap_err()
            .message,
    ];
    for r in [
        crate::imaging::codec::Refusal::TooManyBytes,
        crate::imaging::codec::Refusal::TooManyPixels(9000, 9000),
        crate::imaging::codec::Refusal::QueryTooManyPixels(9000, 9000, 4),
        crate::imaging::codec::Refusal::TooMuchMemory,
        crate::imaging::codec::Refusal::Empty,
        crate::imaging::codec::Refusal::NotAnImage,
        crate::imaging::codec::Refusal::Corrupt("eof".into()),
        crate::imaging::codec::Refusal::TooManyPhotos(8),
    ] {
        samples.push(r.to_string());
    }
    for m in &samples {
        let sw = to_swahili(m).unwrap_or_else(|| panic!("no Swahili for {m:?}"));
        assert_ne!(&sw, m);
        assert_eq!(Lang::Sw.message(m), sw);
        assert_eq!(Lang::En.message(m), *m);
    }
    assert_eq!(
        Lang::Sw.field_error("Bei", "is required"),
        "Bei: inahitajika"
    );
    assert_eq!(
        Lang::En.field_error("Price", "is required"),
        "Price is required"
    );
}

#[test]
fn dates_use_the_catalogue_months() {
    assert_eq!(format::date(Lang::Sw, "2026-03-01"), "1 Mac 2026");
    assert_eq!(format::date(Lang::En, "2026-03-01"), "1 Mar 2026");
}
