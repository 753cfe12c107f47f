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
