//! What a page says about the product it shows: schema.org `Product` JSON-LD first, then
//! OpenGraph (`og:title`, `og:description`, `og:image`, `product:price:amount`/`currency`),
//! then the original Soko's fallback, a `KES n` / `KSh n` price in the text, else "contact for
//! price". Also the links and sitemap entries discovery follows. Pure: no I/O.

use reqwest::Url;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::html::{self, Doc};
use crate::market::money::MAX_MINOR;

/// Where a product's fields came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    JsonLd,
    OpenGraph,
    Text,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::JsonLd => "json-ld",
            Source::OpenGraph => "opengraph",
            Source::Text => "text",
        }
    }
}

/// A price in minor units and its currency code (upper case, 3 letters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub minor: i64,
    pub currency: String,
}

/// A product read from a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// 2 to 200 characters.
    pub name: String,
    /// At most 5000 characters, plain text.
    pub description: String,
    /// `None`: "contact for price".
    pub price: Option<Price>,
    /// Absolute http(s) URLs of its photos, at most 8.
    pub images: Vec<Url>,
    pub source: Source,
}

impl Product {
    /// A hash of what soko keeps of the product: a page whose hash is the same has not changed.
    pub fn content_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [
            self.name.as_str(),
            self.description.as_str(),
            &self
                .price
                .as_ref()
                .map(|p| format!("{} {}", p.minor, p.currency))
                .unwrap_or_default(),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for i in &self.images {
            h.update(i.as_str().as_bytes());
            h.update([0]);
        }
        h.finalize().into()
    }
}

const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 5000;
const MAX_IMAGES: usize = 8;

fn clip(s: &str, max: usize) -> String {
    let s = html::collapse(s);
    match s.char_indices().nth(max) {
        Some((at, _)) => s[..at].trim_end().to_owned(),
        None => s,
    }
}

/// A decimal amount as minor units (2 decimals): "1500", "1,500.50", "1 500", 1500.5. `None`
/// for anything else, a negative or more than two decimals' worth, or over the maximum.
pub fn parse_amount(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 40 {
        return None;
    }
    let cleaned: String = s
        .chars()
        .filter(|c| !matches!(c, ',' | ' ' | '\u{a0}' | '_' | '\''))
        .collect();
    let (whole, frac) = match cleaned.split_once('.') {
        Some((w, f)) => (w, f),
        None => (cleaned.as_str(), ""),
    };
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // "1500.00", "1500.5"; more decimals than two must be zeros.
    let (cents, rest) = frac.split_at(frac.len().min(2));
    if !rest.bytes().all(|b| b == b'0') {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > 15 {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let cents: i64 = match cents.len() {
        0 => 0,
        1 => cents.parse::<i64>().ok()? * 10,
        _ => cents.parse().ok()?,
    };
    let minor = whole.checked_mul(100)?.checked_add(cents)?;
    (minor <= MAX_MINOR).then_some(minor)
}

fn currency_code(s: &str) -> Option<String> {
    let s = s.trim();
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic())).then(|| s.to_ascii_uppercase())
}

/// The first `KES n`, `KSh n`, `Ksh. n` or `Kshs n` price in `text` (minor units, KES).
pub fn price_in_text(text: &str) -> Option<Price> {
    text_prices(text).next()
}

/// Every `KES n` price in `text`, in order: one pass over the text.
fn text_prices(text: &str) -> impl Iterator<Item = Price> + '_ {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    std::iter::from_fn(move || {
        let b = lower.as_bytes();
        while let Some(p) = lower[from..].find('k').map(|p| p + from) {
            from = p + 1;
            // A word start: not inside "looks".
            if p > 0 && b[p - 1].is_ascii_alphanumeric() {
                continue;
            }
            let rest = &lower[p..];
            let after = ["kshs", "ksh", "kes"]
                .iter()
                .find(|m| rest.starts_with(**m))
                .map(|m| &rest[m.len()..]);
            let Some(after) = after else { continue };
            if after
                .as_bytes()
                .first()
                .is_some_and(|c| c.is_ascii_alphabetic())
            {
                continue;
            }
            let after = after.trim_start_matches(['.', ':']).trim_start();
            let num: String = after
                .chars()
                .take_while(|c| c.is_ascii_digit() || matches!(c, ',' | '.'))
                .take(20)
                .collect();
            let num = num.trim_end_matches(['.', ',']);
            if num.is_empty() || !num.as_bytes()[0].is_ascii_digit() {
                continue;
            }
            if let Some(minor) = parse_amount(num) {
                return Some(Price {
                    minor,
                    currency: "KES".into(),
                });
            }
        }
        None
    })
}

/// Distinct `KES n` prices in `text`, counted up to `max + 1`.
fn distinct_text_prices(text: &str, max: usize) -> usize {
    let mut seen: Vec<i64> = Vec::new();
    for p in text_prices(text) {
        if !seen.contains(&p.minor) {
            seen.push(p.minor);
            if seen.len() > max {
                break;
            }
        }
    }
    seen.len()
}

/// The `Product` objects of a page's JSON-LD blocks (top level, in arrays and `@graph`).
fn json_ld_products(doc: &Doc) -> Vec<Value> {
    let mut out = Vec::new();
    for tag in &doc.tags {
        let is_ld = tag.name == "script"
            && tag
                .attr("type")
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/ld+json"));
        if !is_ld {
            continue;
        }
        let Some(text) = &tag.text else { continue };
        let Ok(v) = serde_json::from_str::<Value>(text.trim()) else {
            continue;
        };
        collect_products(&v, &mut out, 0);
    }
    out
}

fn is_product_type(t: &Value) -> bool {
    let is = |s: &str| {
        let s = s.rsplit(['/', ':']).next().unwrap_or(s);
        s == "Product" || s == "ProductGroup" || s == "IndividualProduct"
    };
    match t {
        Value::String(s) => is(s),
        Value::Array(a) => a.iter().any(|x| x.as_str().is_some_and(is)),
        _ => false,
    }
}

fn collect_products(v: &Value, out: &mut Vec<Value>, depth: u32) {
    if depth > 4 || out.len() > 50 {
        return;
    }
    match v {
        Value::Array(a) => a.iter().for_each(|x| collect_products(x, out, depth + 1)),
        Value::Object(o) => {
            if o.get("@type").is_some_and(is_product_type) {
                out.push(v.clone());
            } else if let Some(g) = o.get("@graph") {
                collect_products(g, out, depth + 1);
            } else if let Some(e) = o.get("mainEntity") {
                collect_products(e, out, depth + 1);
            }
        }
        _ => {}
    }
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(a) => text_of(a.first()),
        Value::Object(o) => text_of(o.get("@value").or(o.get("name"))),
        _ => None,
    }
}

fn image_urls(v: Option<&Value>, base: &Url, out: &mut Vec<Url>) {
    match v {
        Some(Value::String(s)) => {
            if let Some(u) = absolute(base, s) {
                out.push(u);
            }
        }
        Some(Value::Array(a)) => a
            .iter()
            .take(MAX_IMAGES)
            .for_each(|x| image_urls(Some(x), base, out)),
        Some(Value::Object(o)) => image_urls(o.get("url").or(o.get("contentUrl")), base, out),
        _ => {}
    }
}

/// The offer's price: `price`, `lowPrice`, or its `priceSpecification`'s.
fn offer_price(v: &Value) -> Option<Price> {
    match v {
        Value::Array(a) => a.iter().find_map(offer_price),
        Value::Object(o) => {
            let amount =
                text_of(o.get("price").or(o.get("lowPrice"))).and_then(|s| parse_amount(&s));
            match amount {
                Some(minor) => {
                    let currency = text_of(o.get("priceCurrency"))
                        .and_then(|c| currency_code(&c))
                        .unwrap_or_else(|| "KES".into());
                    Some(Price { minor, currency })
                }
                None => o.get("priceSpecification").and_then(offer_price),
            }
        }
        _ => None,
    }
}

fn meta<'d>(doc: &'d Doc, key: &str) -> Option<&'d str> {
    doc.tags
        .iter()
        .filter(|t| t.name == "meta")
        .find(|t| {
            t.attr("property")
                .or(t.attr("name"))
                .or(t.attr("itemprop"))
                .is_some_and(|k| k.trim().eq_ignore_ascii_case(key))
        })
        .and_then(|t| t.attr("content"))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn metas<'d>(doc: &'d Doc, key: &'d str) -> impl Iterator<Item = &'d str> + 'd {
    doc.tags
        .iter()
        .filter(|t| t.name == "meta")
        .filter(move |t| {
            t.attr("property")
                .or(t.attr("name"))
                .is_some_and(|k| k.trim().eq_ignore_ascii_case(key))
        })
        .filter_map(|t| t.attr("content"))
}

fn title(doc: &Doc) -> Option<String> {
    doc.tags
        .iter()
        .find(|t| t.name == "title")
        .and_then(|t| t.text.as_deref())
        .map(|t| html::collapse(&html::decode_entities(t)))
        .filter(|t| !t.is_empty())
}

/// An absolute http(s) URL from `href` on a page at `base`, without its fragment.
pub fn absolute(base: &Url, href: &str) -> Option<Url> {
    let href = href.trim();
    if href.is_empty() || href.len() > 2000 {
        return None;
    }
    let mut u = base.join(href).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    u.set_fragment(None);
    Some(u)
}

/// The product a page shows, if it shows one: JSON-LD, else OpenGraph product tags, else (a
/// page given as a product page) a title with a `KES n` price in the text. `given`: the seller
/// named this page themselves, so a title alone makes it a "contact for price" product.
pub fn product(page: &str, base: &Url, given: bool) -> Option<Product> {
    let doc = html::parse(page);
    let products = json_ld_products(&doc);
    // More than one product: a listing (a shop or category page), not a product page.
    if products.len() == 1 {
        let p = &products[0];
        if let Some(name) = text_of(p.get("name"))
            .map(|n| clip(&html::strip_tags(&n), MAX_NAME))
            .filter(|n| n.chars().count() >= 2)
        {
            let description = text_of(p.get("description"))
                .map(|d| clip(&html::strip_tags(&d), MAX_DESCRIPTION))
                .or_else(|| meta(&doc, "og:description").map(|d| clip(d, MAX_DESCRIPTION)))
                .unwrap_or_default();
            let mut images = Vec::new();
            image_urls(p.get("image"), base, &mut images);
            if images.is_empty() {
                og_images(&doc, base, &mut images);
            }
            images.truncate(MAX_IMAGES);
            let price = p
                .get("offers")
                .and_then(offer_price)
                .or_else(|| og_price(&doc))
                .or_else(|| price_in_text(&doc.text));
            return Some(Product {
                name,
                description,
                price,
                images,
                source: Source::JsonLd,
            });
        }
    }
    let og_product = meta(&doc, "og:type").is_some_and(|t| {
        t.eq_ignore_ascii_case("product")
            || t.eq_ignore_ascii_case("og:product")
            || t.eq_ignore_ascii_case("product.item")
    }) || meta(&doc, "product:price:amount").is_some()
        || meta(&doc, "og:price:amount").is_some();
    let name = meta(&doc, "og:title")
        .map(|t| clip(t, MAX_NAME))
        .or_else(|| title(&doc).map(|t| clip(&t, MAX_NAME)))
        .filter(|n| n.chars().count() >= 2)?;
    let description = meta(&doc, "og:description")
        .or_else(|| meta(&doc, "description"))
        .map(|d| clip(d, MAX_DESCRIPTION))
        .unwrap_or_default();
    let mut images = Vec::new();
    og_images(&doc, base, &mut images);
    images.truncate(MAX_IMAGES);
    if og_product && products.len() <= 1 {
        let price = og_price(&doc).or_else(|| price_in_text(&doc.text));
        return Some(Product {
            name,
            description,
            price,
            images,
            source: Source::OpenGraph,
        });
    }
    if products.len() > 1 {
        return None;
    }
    // Many different prices in the text: a listing (a shop or category page).
    if distinct_text_prices(&doc.text, 4) > 3 {
        return None;
    }
    let price = price_in_text(&doc.text);
    // A page found by following links needs a price to count as a product page; one the
    // seller gave is one, "contact for price" when no price is found.
    if price.is_none() && !given {
        return None;
    }
    Some(Product {
        name,
        description,
        price,
        images,
        source: Source::Text,
    })
}

fn og_images(doc: &Doc, base: &Url, out: &mut Vec<Url>) {
    for key in ["og:image", "og:image:url", "og:image:secure_url"] {
        for v in metas(doc, key) {
            if let Some(u) = absolute(base, v)
                && !out.contains(&u)
            {
                out.push(u);
            }
        }
    }
}

fn og_price(doc: &Doc) -> Option<Price> {
    let amount = meta(doc, "product:price:amount").or_else(|| meta(doc, "og:price:amount"))?;
    let minor = parse_amount(amount)?;
    let currency = meta(doc, "product:price:currency")
        .or_else(|| meta(doc, "og:price:currency"))
        .and_then(currency_code)
        .unwrap_or_else(|| "KES".into());
    Some(Price { minor, currency })
}

/// Links on a page at `base` to other pages of the same host (no fragments, no obvious files
/// or cart pages), each once, in page order, at most `max`.
pub fn links(page: &str, base: &Url, max: usize) -> Vec<Url> {
    let doc = html::parse(page);
    let mut out: Vec<Url> = Vec::new();
    for t in doc.tags.iter().filter(|t| t.name == "a") {
        if out.len() >= max {
            break;
        }
        if t.attr("rel").is_some_and(|r| r.contains("nofollow")) {
            continue;
        }
        let Some(u) = t.attr("href").and_then(|h| absolute(base, h)) else {
            continue;
        };
        if u.host_str() != base.host_str()
            || u.port_or_known_default() != base.port_or_known_default()
        {
            continue;
        }
        let path = u.path().to_ascii_lowercase();
        let skip_ext = [
            ".jpg", ".jpeg", ".png", ".webp", ".gif", ".svg", ".css", ".js", ".pdf", ".zip", ".mp4",
        ];
        let skip_path = [
            "/cart",
            "/checkout",
            "/account",
            "/login",
            "/wp-admin",
            "/my-account",
            "/wp-login",
        ];
        if skip_ext.iter().any(|e| path.ends_with(e))
            || skip_path.iter().any(|p| path.starts_with(p))
            || u.query().is_some_and(|q| q.contains("add-to-cart"))
        {
            continue;
        }
        if &u != base && !out.contains(&u) {
            out.push(u);
        }
    }
    out
}

/// A sitemap's entries: `<loc>`s of a `<urlset>` (pages) or a `<sitemapindex>` (sitemaps).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sitemap {
    pub index: bool,
    pub urls: Vec<Url>,
}

/// Whether a body is a sitemap rather than a page.
pub fn is_sitemap(content_type: &str, body: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    let head: String = body
        .trim_start()
        .chars()
        .take(512)
        .collect::<String>()
        .to_ascii_lowercase();
    (ct.contains("xml") || head.starts_with("<?xml"))
        && (head.contains("<urlset") || head.contains("<sitemapindex"))
}

/// The entries of a sitemap (same host as `base` only), at most `max`.
pub fn sitemap(body: &str, base: &Url, max: usize) -> Sitemap {
    let doc = html::parse(body);
    let index = doc.tags.iter().any(|t| t.name == "sitemapindex");
    // `<loc>` is not a raw-text element for the tokenizer: read the text between the tags.
    let mut urls = Vec::new();
    let mut rest = body;
    while let Some(p) = rest.find("<loc>") {
        rest = &rest[p + 5..];
        let Some(end) = rest.find("</loc>") else {
            break;
        };
        let raw = html::decode_entities(rest[..end].trim());
        let raw = raw
            .trim()
            .trim_start_matches("<![CDATA[")
            .trim_end_matches("]]>")
            .trim();
        rest = &rest[end..];
        if let Some(u) = absolute(base, raw)
            && u.host_str() == base.host_str()
            && !urls.contains(&u)
        {
            urls.push(u);
            if urls.len() >= max {
                break;
            }
        }
    }
    Sitemap { index, urls }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://shop.example/p/kikoy").unwrap()
    }

    #[test]
    fn json_ld_first() {
        let page = r#"<html><head>
            <meta property="og:title" content="OG name">
            <script type="application/ld+json">{"@context":"https://schema.org","@graph":[
              {"@type":"WebPage"},
              {"@type":"Product","name":"Red kikoy","description":"<p>Cotton &amp; soft</p>",
               "image":["/img/1.jpg",{"url":"https://cdn.example/2.png"}],
               "offers":{"@type":"Offer","price":"1500.00","priceCurrency":"kes"}}]}
            </script></head><body>KES 99</body></html>"#;
        let p = product(page, &base(), false).unwrap();
        assert_eq!(p.source, Source::JsonLd);
        assert_eq!(p.name, "Red kikoy");
        assert_eq!(p.description, "Cotton & soft");
        assert_eq!(
            p.price,
            Some(Price {
                minor: 150_000,
                currency: "KES".into()
            })
        );
        assert_eq!(p.images[0].as_str(), "https://shop.example/img/1.jpg");
        assert_eq!(p.images[1].as_str(), "https://cdn.example/2.png");
    }

    #[test]
    fn opengraph_then_text_then_contact() {
        let og = r#"<meta property="og:type" content="product"><meta property="og:title" content="Sisal basket">
            <meta property="og:image" content="/b.jpg"><meta property="product:price:amount" content="2,400">
            <meta property="product:price:currency" content="UGX">"#;
        let p = product(og, &base(), false).unwrap();
        assert_eq!(p.source, Source::OpenGraph);
        assert_eq!(
            p.price,
            Some(Price {
                minor: 240_000,
                currency: "UGX".into()
            })
        );
        let text = "<title>Beaded sandals</title><p>Now only Ksh. 1,250 each</p>";
        let p = product(text, &base(), false).unwrap();
        assert_eq!(p.source, Source::Text);
        assert_eq!(
            p.price,
            Some(Price {
                minor: 125_000,
                currency: "KES".into()
            })
        );
        let listing = "<title>Duka</title><p>Kikoy KES 100</p><p>Mat KES 200</p><p>Pot KES 300</p><p>Cup KES 400</p>";
        assert_eq!(
            product(listing, &base(), true),
            None,
            "a listing is no product page"
        );
        let bare = "<title>Carved giraffe</title><p>Ask us</p>";
        assert_eq!(
            product(bare, &base(), false),
            None,
            "a found page needs a price"
        );
        let p = product(bare, &base(), true).unwrap();
        assert_eq!(p.price, None, "a given page is contact for price");
    }

    #[test]
    fn prices() {
        assert_eq!(parse_amount("1500"), Some(150_000));
        assert_eq!(parse_amount("1,500.5"), Some(150_050));
        assert_eq!(parse_amount("1500.000"), Some(150_000));
        assert_eq!(parse_amount("1500.001"), None);
        assert_eq!(parse_amount("-5"), None);
        assert_eq!(parse_amount("abc"), None);
        assert_eq!(price_in_text("KSh1,000").unwrap().minor, 100_000);
        assert_eq!(price_in_text("only kes: 20").unwrap().minor, 2_000);
        assert_eq!(price_in_text("Kshs 3,500.00").unwrap().minor, 350_000);
        assert_eq!(price_in_text("looks 500"), None);
        assert_eq!(price_in_text("kesho 500"), None);
    }

    #[test]
    fn links_and_sitemaps() {
        let page = r##"<a href="/p/1">1</a><a href="/p/1#top">1 again</a><a href="https://other.example/p/2">x</a>
            <a href="/cart">cart</a><a href="/img.jpg">img</a><a href="javascript:alert(1)">js</a><a href="p/3">3</a>"##;
        let l = links(page, &base(), 100);
        let l: Vec<_> = l.iter().map(Url::as_str).collect();
        assert_eq!(
            l,
            ["https://shop.example/p/1", "https://shop.example/p/p/3"]
        );
        let sm = r#"<?xml version="1.0"?><urlset><url><loc> https://shop.example/p/1 </loc></url>
            <url><loc>https://evil.example/x</loc></url><url><loc>https://shop.example/p/2?a=1&amp;b=2</loc></url></urlset>"#;
        assert!(is_sitemap("application/xml", sm));
        let s = sitemap(sm, &base(), 10);
        assert!(!s.index);
        let s: Vec<_> = s.urls.iter().map(Url::as_str).collect();
        assert_eq!(
            s,
            [
                "https://shop.example/p/1",
                "https://shop.example/p/2?a=1&b=2"
            ]
        );
    }
}
