//! Property tests of the parsers of the hostile web: the HTML tokenizer, the product
//! extractors (JSON-LD, OpenGraph, prices in text), links, sitemaps and robots.txt. Any page
//! gives a result, never a panic; what they return keeps its bounds; prices read back.

use proptest::prelude::*;
use reqwest::Url;

use super::extract::{self, parse_amount, price_in_text};
use super::html;
use super::robots::Robots;
use crate::market::money::MAX_MINOR;

/// Markup-ish text: any Unicode, and fragments of the tags the extractors look for.
fn markup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<String>(),
        Just("<script type=\"application/ld+json\">".to_owned()),
        Just("</script>".to_owned()),
        Just("{\"@type\":\"Product\",\"name\":\"".to_owned()),
        Just("\",\"offers\":{\"price\":\"".to_owned()),
        Just("<meta property=\"og:title\" content=\"".to_owned()),
        Just("<meta property=\"product:price:amount\" content=".to_owned()),
        Just("<a href='".to_owned()),
        Just("<!--".to_owned()),
        Just("&#x".to_owned()),
        Just("KSh ".to_owned()),
        Just("<title>".to_owned()),
        Just("<loc>".to_owned()),
        "[<>\"'=/ a-z0-9&;#]{0,20}",
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn base() -> Url {
    Url::parse("https://shop.example/p/1").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_page_gives_a_bounded_product_or_none(page in markup(), given in any::<bool>()) {
        if let Some(p) = extract::product(&page, &base(), given) {
            let n = p.name.chars().count();
            prop_assert!((2..=200).contains(&n), "name {:?}", p.name);
            prop_assert!(p.description.chars().count() <= 5000);
            prop_assert!(p.images.len() <= 8);
            prop_assert!(p.images.iter().all(|u| matches!(u.scheme(), "http" | "https")));
            if let Some(price) = &p.price {
                prop_assert!((0..=MAX_MINOR).contains(&price.minor));
                prop_assert_eq!(price.currency.len(), 3);
                prop_assert!(price.currency.bytes().all(|b| b.is_ascii_uppercase()));
            }
        }
    }

    #[test]
    fn links_and_sitemaps_stay_on_the_host(page in markup()) {
        for u in extract::links(&page, &base(), 50) {
            prop_assert_eq!(u.host_str(), Some("shop.example"));
            prop_assert!(u.fragment().is_none());
        }
        let s = extract::sitemap(&page, &base(), 50);
        prop_assert!(s.urls.len() <= 50);
        prop_assert!(s.urls.iter().all(|u| u.host_str() == Some("shop.example")));
    }

    #[test]
    fn the_tokenizer_never_panics(page in markup()) {
        let doc = html::parse(&page);
        prop_assert!(!doc.text.starts_with(' ') && !doc.text.ends_with(' '));
        let _ = html::decode_entities(&page);
    }

    #[test]
    fn amounts_read_back(minor in 0..=MAX_MINOR, sep in prop_oneof![Just(""), Just(",")]) {
        let whole = (minor / 100).to_string();
        let grouped = if sep.is_empty() {
            whole
        } else {
            let b = whole.as_bytes();
            let mut out = String::new();
            for (i, c) in b.iter().enumerate() {
                if i > 0 && (b.len() - i) % 3 == 0 {
                    out.push_str(sep);
                }
                out.push(*c as char);
            }
            out
        };
        let text = format!("{grouped}.{:02}", minor % 100);
        prop_assert_eq!(parse_amount(&text), Some(minor));
        let found = price_in_text(&format!("Bei: KSh {text} tu")).map(|p| p.minor);
        prop_assert_eq!(found, Some(minor));
    }

    #[test]
    fn any_amount_text_is_in_bounds(s in any::<String>()) {
        if let Some(m) = parse_amount(&s) {
            prop_assert!((0..=MAX_MINOR).contains(&m));
        }
        if let Some(p) = price_in_text(&s) {
            prop_assert!((0..=MAX_MINOR).contains(&p.minor));
        }
    }

    #[test]
    fn robots_never_panics_and_empty_allows(text in markup(), path in "/[a-z0-9/*$?.=]{0,30}") {
        let r = Robots::parse(&text, "SokoBot");
        let _ = r.allows(&path);
        prop_assert!(Robots::parse("", "SokoBot").allows(&path));
        prop_assert!(!Robots::parse("User-agent: *\nDisallow: /\n", "SokoBot").allows(&path));
    }
}
