//! Quality control of listings: the pure checks (banned words, spam patterns, price outliers)
//! and the decision that combines every check's findings into approved, flagged or rejected
//! with a confidence. The image checks (size, blur, perceptual hash) are in
//! `imaging::quality`; the worker that runs all of them is `workers::quality`.
//!
//! Untrusted text (a seller's name and description) comes in; a list of [`Finding`]s goes out.
//! Nothing here allocates in proportion to anything but the text itself.

use serde::{Deserialize, Serialize};

use super::i18n::{Lang, messages};
use super::states::string_enum;

string_enum! {
    /// The decision on a listing (`listing_checks.decision`).
    pub enum Decision {
        Approved = "approved",
        Flagged = "flagged",
        Rejected = "rejected",
    }
}

string_enum! {
    /// Which check found something.
    pub enum Check {
        BannedWord = "banned_word",
        Phone = "phone_in_text",
        Link = "link_in_text",
        AllCaps = "all_caps",
        Repeated = "repeated_text",
        PriceOutlier = "price_outlier",
        TooSmall = "image_too_small",
        Blurry = "blurry",
        Duplicate = "duplicate_photo",
        NearDuplicate = "near_duplicate_photo",
        /// A check that could not run (an image that no longer decodes, a missing file).
        Error = "check_error",
    }
}

/// What a finding asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Wait for an admin.
    Flag,
    /// Not public.
    Reject,
}

/// One check's finding: which check, what it asks for, how sure it is (0 to 1), and a line an
/// admin and the seller can read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub check: Check,
    pub severity: Severity,
    pub confidence: f64,
    pub detail: String,
}

impl Finding {
    pub fn flag(check: Check, confidence: f64, detail: impl Into<String>) -> Self {
        Finding {
            check,
            severity: Severity::Flag,
            confidence: confidence.clamp(0.0, 1.0),
            detail: detail.into(),
        }
    }

    pub fn reject(check: Check, confidence: f64, detail: impl Into<String>) -> Self {
        Finding {
            check,
            severity: Severity::Reject,
            confidence: confidence.clamp(0.0, 1.0),
            detail: detail.into(),
        }
    }

    /// A check that errored: it flags, with confidence 0.5, and never blocks.
    pub fn errored(what: &str, error: impl std::fmt::Display) -> Self {
        Finding::flag(
            Check::Error,
            ERROR_CONFIDENCE,
            format!("{what} could not be checked: {error}"),
        )
    }
}

/// The confidence of a flag from a check that errored.
pub const ERROR_CONFIDENCE: f64 = 0.5;
/// The confidence of an approval when no check found anything.
pub const CLEAN_CONFIDENCE: f64 = 0.95;

/// The combined verdict on a listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub decision: Decision,
    pub confidence: f64,
    pub findings: Vec<Finding>,
}

impl Verdict {
    /// The findings as one line for people ("blurry: …; price_outlier: …").
    pub fn summary(&self) -> String {
        summary(&self.findings)
    }
}

/// The findings as one line for people, at most 500 characters.
pub fn summary(findings: &[Finding]) -> String {
    let line = findings
        .iter()
        .map(|f| format!("{}: {}", f.check, f.detail))
        .collect::<Vec<_>>()
        .join("; ");
    line.chars().take(500).collect()
}

/// A stored summary (`check: detail; …`, as [`summary`] writes it) in `lang`: each check's name
/// from the catalogue (`qc_check_<word>`) and each detail through the rules' Swahili patterns
/// (`i18n::messages`); English as it is.
pub fn summary_in(lang: Lang, summary: &str) -> String {
    if lang == Lang::En {
        return summary.to_owned();
    }
    let said = |t: &str| messages::to_swahili(t).unwrap_or_else(|| t.to_owned());
    summary
        .split("; ")
        .map(|part| match part.split_once(": ") {
            Some((check, detail)) if check.parse::<Check>().is_ok() => {
                format!("{}: {}", lang.t(&format!("qc_check_{check}")), said(detail))
            }
            _ => said(part),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Combine findings: any rejection rejects; otherwise any flag flags; otherwise approved.
/// The confidence of several independent findings of the deciding severity is their noisy-or
/// (1 − Π(1 − cᵢ)); a flag from an errored check counts no more than 0.5.
pub fn decide(findings: Vec<Finding>) -> Verdict {
    let noisy_or = |severity: Severity| {
        let mut miss = 1.0;
        let mut any = false;
        for f in findings.iter().filter(|f| f.severity == severity) {
            any = true;
            if f.check != Check::Error {
                miss *= 1.0 - f.confidence.clamp(0.0, 1.0);
            }
        }
        any.then(|| {
            let errors_only = findings
                .iter()
                .filter(|f| f.severity == severity)
                .all(|f| f.check == Check::Error);
            if errors_only {
                ERROR_CONFIDENCE
            } else {
                1.0 - miss
            }
        })
    };
    let (decision, confidence) = if let Some(c) = noisy_or(Severity::Reject) {
        (Decision::Rejected, c)
    } else if let Some(c) = noisy_or(Severity::Flag) {
        (Decision::Flagged, c)
    } else {
        (Decision::Approved, CLEAN_CONFIDENCE)
    };
    Verdict {
        decision,
        confidence: (confidence.clamp(0.0, 1.0) * 1000.0).round() / 1000.0,
        findings,
    }
}

/// Lowercase words (letters and digits) of `text`, in order.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// A banned-words list, normalised once: each entry a phrase of one or more words.
#[derive(Debug, Clone, Default)]
pub struct BannedWords {
    phrases: Vec<Vec<String>>,
}

impl BannedWords {
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Self {
        BannedWords {
            phrases: entries
                .iter()
                .map(|e| words(e.as_ref()))
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    /// The listed phrases found in `text` as whole words (case-insensitive), each once.
    pub fn found(&self, text: &str) -> Vec<String> {
        let ws = words(text);
        let mut hits = Vec::new();
        for phrase in &self.phrases {
            if ws.windows(phrase.len()).any(|w| w == phrase.as_slice()) {
                let joined = phrase.join(" ");
                if !hits.contains(&joined) {
                    hits.push(joined);
                }
            }
        }
        hits
    }
}

/// The text checks on a listing's name and description: banned words (reject), phone numbers
/// and links in the description, shouting, repeated text (flags).
pub fn check_text(banned: &BannedWords, name: &str, description: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let all = format!("{name}\n{description}");
    let hits = banned.found(&all);
    if !hits.is_empty() {
        out.push(Finding::reject(
            Check::BannedWord,
            0.95,
            format!("banned words: {}", hits.join(", ")),
        ));
    }
    if let Some(phone) = phone_number(description) {
        out.push(Finding::flag(
            Check::Phone,
            0.7,
            format!("a phone number in the description ({phone}): buyers reach you on WhatsApp"),
        ));
    }
    if let Some(link) = link(description) {
        out.push(Finding::flag(
            Check::Link,
            0.7,
            format!("a link in the description ({link})"),
        ));
    }
    for (field, text) in [("name", name), ("description", description)] {
        if shouting(text) {
            out.push(Finding::flag(
                Check::AllCaps,
                0.6,
                format!("the {field} is in capitals"),
            ));
        }
    }
    if let Some(what) = repeated(&all) {
        out.push(Finding::flag(Check::Repeated, 0.6, what));
    }
    out
}

/// A run of at least 9 digits (spaces, dots, dashes and brackets allowed between them, an
/// optional leading `+`): a phone number. The run as written, at most 24 characters.
pub fn phone_number(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit()
            || (chars[i] == '+' && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()))
        {
            let start = i;
            let mut digits = 0;
            let mut end = i;
            let mut j = i;
            while j < chars.len() {
                let c = chars[j];
                if c.is_ascii_digit() {
                    digits += 1;
                    end = j + 1;
                } else if !(matches!(c, ' ' | '.' | '-' | '(' | ')') || (c == '+' && j == start)) {
                    break;
                }
                j += 1;
            }
            if digits >= 9 {
                return Some(chars[start..end].iter().take(24).collect());
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    None
}

/// A URL or a bare web address in `text` (http://, https://, www., or a word ending in a
/// common top-level domain): the first, at most 60 characters.
pub fn link(text: &str) -> Option<String> {
    const TLDS: &[&str] = &[
        ".com", ".net", ".org", ".co.ke", ".ke", ".io", ".shop", ".store", ".info", ".biz",
        ".co.tz", ".tz", ".ug", ".africa", ".ly", ".me",
    ];
    for token in text.split_whitespace() {
        let t = token
            .trim_matches(|c: char| {
                matches!(
                    c,
                    '(' | ')' | ',' | '"' | '\'' | '<' | '>' | '!' | '?' | ';' | ':'
                )
            })
            .trim_end_matches('.');
        let lower = t.to_lowercase();
        let bare = lower.split(['/', '?', '#']).next().unwrap_or_default();
        let is_link = lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("www.")
            || (bare.len() > 4
                && bare.contains('.')
                && !bare.starts_with('.')
                && bare.chars().next().is_some_and(|c| c.is_alphanumeric())
                && !bare.chars().any(|c| c == '@')
                && TLDS.iter().any(|tld| bare.ends_with(tld))
                && bare.split('.').all(|part| !part.is_empty()));
        if is_link {
            return Some(t.chars().take(60).collect());
        }
    }
    None
}

/// At least 12 letters, 80 % or more of them capitals.
pub fn shouting(text: &str) -> bool {
    let (mut letters, mut upper) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if c.is_uppercase() {
            upper += 1;
        }
    }
    letters >= 12 && upper * 5 >= letters * 4
}

/// The same word four or more times in a row, or a long text of few distinct words (at least
/// 20 words, fewer than a quarter of them distinct): what was found.
pub fn repeated(text: &str) -> Option<String> {
    let ws = words(text);
    let mut run = 1;
    for pair in ws.windows(2) {
        if pair[0] == pair[1] {
            run += 1;
            if run >= 4 {
                return Some(format!("{:?} repeated {run} or more times", pair[0]));
            }
        } else {
            run = 1;
        }
    }
    if ws.len() >= 20 {
        let mut distinct: Vec<&String> = ws.iter().collect();
        distinct.sort();
        distinct.dedup();
        if distinct.len() * 4 < ws.len() {
            return Some(format!(
                "{} words but only {} different ones",
                ws.len(),
                distinct.len()
            ));
        }
    }
    None
}

/// Median of `xs` (which it sorts); `None` when empty.
pub fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

/// A category's robust spread of prices: the median and the median absolute deviation of the
/// prices' natural logarithms (prices are skewed; their logs much less so).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub mad: f64,
    pub samples: usize,
}

/// The smallest MAD used (in log units, about ±5 %): a category where every price is the same
/// would otherwise call any other price an outlier.
pub const MIN_MAD: f64 = 0.05;

impl Spread {
    /// The spread of the positive prices among `prices` (minor units); `None` when fewer than
    /// `min_samples` are positive.
    pub fn of(prices: &[i64], min_samples: usize) -> Option<Spread> {
        let mut logs: Vec<f64> = prices
            .iter()
            .filter(|p| **p > 0)
            .map(|p| (*p as f64).ln())
            .collect();
        if logs.len() < min_samples.max(1) {
            return None;
        }
        let m = median(&mut logs)?;
        let mut dev: Vec<f64> = logs.iter().map(|x| (x - m).abs()).collect();
        let mad = median(&mut dev)?;
        Some(Spread {
            median: m,
            mad,
            samples: logs.len(),
        })
    }

    /// The robust z-score of `price` (0.6745 (ln p − median) / MAD), the MAD at least
    /// [`MIN_MAD`]; `None` for a price that is not positive.
    pub fn z(&self, price: i64) -> Option<f64> {
        (price > 0).then(|| 0.6745 * ((price as f64).ln() - self.median) / self.mad.max(MIN_MAD))
    }

    /// The typical price (minor units): e^median.
    pub fn typical(&self) -> i64 {
        self.median.exp().round() as i64
    }
}

/// A price beyond `threshold` robust z-scores of its category's spread is flagged (a likely
/// typo, a scam or a bait price); its confidence grows with the distance, from 0.6.
pub fn check_price(price: Option<i64>, spread: Option<&Spread>, threshold: f64) -> Option<Finding> {
    let (price, spread) = (price?, spread?);
    let z = spread.z(price)?;
    if z.abs() <= threshold {
        return None;
    }
    let confidence = (0.6 + 0.05 * (z.abs() - threshold)).min(0.9);
    let side = if z > 0.0 { "above" } else { "below" };
    Some(Finding::flag(
        Check::PriceOutlier,
        confidence,
        format!(
            "price far {side} the category's usual (about {} minor units over {} listings, robust z {z:.1})",
            spread.typical(),
            spread.samples
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_reads_in_swahili_check_by_check() {
        let banned = BannedWords::new(&["bangi"]);
        let mut findings = check_text(
            &banned,
            "BANGI SAFI SANA",
            "Call 0712 345 678 or see https://duka.example/x",
        );
        findings.push(Finding::flag(
            Check::Blurry,
            0.6,
            "photo 1 looks blurry (sharpness 12, below 40)",
        ));
        let en = summary(&findings);
        assert_eq!(summary_in(Lang::En, &en), en);
        let sw = summary_in(Lang::Sw, &en);
        for want in [
            "maneno yaliyokatazwa: bangi",
            "namba ya simu: namba ya simu kwenye maelezo (0712 345 678): wanunuzi",
            "kiungo: kiungo kwenye maelezo (https://duka.example/x)",
            "herufi kubwa: jina limeandikwa kwa herufi kubwa tu",
            "picha yenye ukungu: picha 1 inaonekana na ukungu (ukali 12, chini ya 40)",
        ] {
            assert!(sw.contains(want), "{want} in {sw}");
        }
        for check in Check::ALL {
            assert_ne!(
                Lang::Sw.t(&format!("qc_check_{check}")),
                format!("qc_check_{check}"),
                "{check} has no name in the catalogue"
            );
        }
    }

    fn banned() -> BannedWords {
        BannedWords::new(&["counterfeit", "bangi", "fake id"])
    }

    #[test]
    fn banned_words_match_whole_words_in_any_case() {
        let b = banned();
        assert_eq!(b.found("Genuine COUNTERFEIT watch"), vec!["counterfeit"]);
        assert_eq!(b.found("uza bangi hapa"), vec!["bangi"]);
        assert_eq!(b.found("a Fake  ID, cheap"), vec!["fake id"]);
        assert!(b.found("counterfeiters beware; fake identity").is_empty());
        let f = check_text(&b, "Watch", "counterfeit");
        assert_eq!(decide(f).decision, Decision::Rejected);
    }

    #[test]
    fn spam_patterns_flag() {
        assert_eq!(
            phone_number("call +254 712 345 678 now").as_deref(),
            Some("+254 712 345 678")
        );
        assert_eq!(
            phone_number("0712-345-678").as_deref(),
            Some("0712-345-678")
        );
        assert!(phone_number("size 42, 3 pieces, 2024").is_none());
        assert_eq!(
            link("see https://x.example/a").as_deref(),
            Some("https://x.example/a")
        );
        assert_eq!(
            link("visit www.shop.co.ke.").as_deref(),
            Some("www.shop.co.ke")
        );
        assert_eq!(
            link("order at myshop.co.ke today").as_deref(),
            Some("myshop.co.ke")
        );
        assert!(link("size 4.5 and 3.2kg, e.g. cotton").is_none());
        assert!(shouting("BEST PRICE IN TOWN BUY NOW"));
        assert!(!shouting("Best price in TOWN"));
        assert!(!shouting("USB HDMI"));
        assert!(repeated("buy buy buy buy now").is_some());
        assert!(repeated("a woven basket of sisal, dyed by hand").is_none());
        let f = check_text(&BannedWords::default(), "Basket", "Call 0712 345 678");
        let v = decide(f);
        assert_eq!(v.decision, Decision::Flagged);
        assert!(v.summary().contains("phone_in_text"), "{}", v.summary());
    }

    #[test]
    fn clean_text_is_approved() {
        let f = check_text(
            &banned(),
            "Kikapu basket",
            "Woven by hand in Machakos from sisal.",
        );
        assert!(f.is_empty(), "{f:?}");
        let v = decide(f);
        assert_eq!(
            (v.decision, v.confidence),
            (Decision::Approved, CLEAN_CONFIDENCE)
        );
    }

    #[test]
    fn median_and_mad() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
        let prices = [1000, 1100, 900, 1050, 950, 1000, 1200, 800];
        let s = Spread::of(&prices, 5).unwrap();
        assert!((s.typical() - 1000).abs() <= 1, "{s:?}");
        assert!(check_price(Some(1100), Some(&s), 3.5).is_none());
        let f = check_price(Some(100_000), Some(&s), 3.5).unwrap();
        assert_eq!(f.check, Check::PriceOutlier);
        assert!(f.detail.contains("above"), "{}", f.detail);
        assert!(
            check_price(Some(10), Some(&s), 3.5)
                .unwrap()
                .detail
                .contains("below")
        );
        // Too few prices: no spread, no finding.
        assert!(Spread::of(&prices[..3], 5).is_none());
        assert!(check_price(None, Some(&s), 3.5).is_none());
    }

    #[test]
    fn identical_prices_do_not_make_everything_an_outlier() {
        let s = Spread::of(&[500; 10], 5).unwrap();
        assert_eq!(s.mad, 0.0);
        assert!(check_price(Some(510), Some(&s), 3.5).is_none());
        assert!(check_price(Some(5000), Some(&s), 3.5).is_some());
    }

    #[test]
    fn decision_combines_findings() {
        let err = Finding::errored("photo 1", "it does not decode");
        let v = decide(vec![err.clone()]);
        assert_eq!((v.decision, v.confidence), (Decision::Flagged, 0.5));
        let v = decide(vec![
            Finding::flag(Check::Blurry, 0.6, "x"),
            Finding::flag(Check::AllCaps, 0.5, "y"),
            err,
        ]);
        assert_eq!((v.decision, v.confidence), (Decision::Flagged, 0.8));
        let v = decide(vec![
            Finding::flag(Check::Blurry, 0.6, "x"),
            Finding::reject(Check::BannedWord, 0.95, "z"),
        ]);
        assert_eq!((v.decision, v.confidence), (Decision::Rejected, 0.95));
    }
}
