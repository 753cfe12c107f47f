//! Sellers' own catalogues from their web pages ("Scout & Hydrate"): the SSRF-safe fetcher
//! (`fetch.rs`), robots.txt (`robots.rs`), a forgiving HTML tokenizer (`html.rs`) and the
//! extractors (`extract.rs`: schema.org JSON-LD, OpenGraph, `KES n` prices, links, sitemaps).
//! The durable work (imports, the heartbeat re-check) is in `workers::catalogue_import` and
//! `workers::catalogue_recheck`; its tables in `store::imports`.

pub mod extract;
pub mod fetch;
pub mod html;
pub mod notices;
pub mod robots;

#[cfg(test)]
mod proptests;

use crate::market::FieldErrors;
use crate::market::money::Currency;
use crate::market::product::{PriceInput, ProductDraft, StockInput};

/// A product read from a page that passed the same rules as the seller form's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub name: String,
    pub description: String,
    pub price_minor: Option<i64>,
    pub currency: String,
    pub content_hash: [u8; 32],
    pub source: extract::Source,
    pub images: Vec<reqwest::Url>,
}

/// Hold a product read from a page to `market::product`'s rules (name, description, price,
/// currency), as the seller form and the API are.
pub fn check(p: &extract::Product, default_currency: Currency) -> Result<Checked, FieldErrors> {
    let currency = p.price.as_ref().map(|pr| pr.currency.as_str());
    let draft = ProductDraft {
        name: Some(&p.name),
        description: Some(&p.description),
        price: Some(PriceInput::Minor(p.price.as_ref().map(|pr| pr.minor))),
        currency,
        stock: Some(StockInput::Count(1)),
    };
    let valid = draft.validate_new(default_currency)?;
    let price = valid.price.flatten();
    Ok(Checked {
        name: valid.name.unwrap_or_default(),
        description: valid.description.unwrap_or_default(),
        price_minor: price.map(|m| m.minor),
        currency: price
            .map(|m| m.currency)
            .or(valid.currency)
            .unwrap_or(default_currency)
            .code()
            .to_owned(),
        content_hash: p.content_hash(),
        source: p.source,
        images: p.images.clone(),
    })
}

/// Field errors as one line (an import URL's detail).
pub fn describe(errors: &FieldErrors) -> String {
    errors
        .0
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a seller may ask to import: at most `catalogue.import.max_urls` http(s) URLs, none
/// an address the fetcher refuses (a host name is checked again when it is resolved).
#[derive(Debug, Clone)]
pub struct Intake {
    pub max_urls: u32,
    policy: fetch::Policy,
}

impl Intake {
    pub fn from_config(c: &crate::config::catalogue::Catalogue) -> Self {
        Intake {
            max_urls: c.import.max_urls,
            // Validated with the configuration: the default (public only) cannot be wider.
            policy: fetch::Policy::new(&c.fetch.allow_private).unwrap_or_default(),
        }
    }

    /// The URLs of a request, each once, in order; or why not, naming the field `urls`.
    pub fn urls<'a>(
        &self,
        given: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<String>, crate::market::FieldError> {
        let bad = |m: String| crate::market::FieldError::new("urls", m);
        let mut out: Vec<String> = Vec::new();
        for raw in given.into_iter().map(str::trim).filter(|s| !s.is_empty()) {
            if out.len() >= self.max_urls as usize {
                return Err(bad(format!(
                    "lists more than {} URLs (catalogue.import.max_urls)",
                    self.max_urls
                )));
            }
            let mut url = fetch::parse_url(raw).map_err(|e| bad(e.to_string()))?;
            fetch::check_url(&url, &self.policy).map_err(|e| bad(e.to_string()))?;
            url.set_fragment(None);
            let url = url.to_string();
            if !out.contains(&url) {
                out.push(url);
            }
        }
        if out.is_empty() {
            return Err(bad(
                "needs at least one URL: your shop, a sitemap, or product pages".into(),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod intake_tests {
    use super::*;

    #[test]
    fn urls_are_checked_naming_the_field() {
        let intake = Intake::from_config(&Default::default());
        let ok = intake
            .urls([
                "https://shop.example/",
                " https://shop.example/#top ",
                "http://b.example/p/1",
            ])
            .unwrap();
        assert_eq!(ok, ["https://shop.example/", "http://b.example/p/1"]);
        for bad in [
            vec![],
            vec!["ftp://x/"],
            vec!["http://127.0.0.1/"],
            vec!["not a url"],
        ] {
            let e = intake.urls(bad.iter().copied()).unwrap_err();
            assert_eq!(e.field, "urls");
        }
        let many: Vec<String> = (0..501).map(|i| format!("https://s.example/{i}")).collect();
        let e = intake.urls(many.iter().map(String::as_str)).unwrap_err();
        assert!(e.message.contains("max_urls"), "{e}");
    }
}
