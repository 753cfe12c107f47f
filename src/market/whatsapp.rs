//! The WhatsApp lead funnel: a `wa.me` link to the seller's own number with a message that names
//! the product, its price and its link.

use super::i18n::Lang;
use super::money::Money;
use super::phone::Phone;

/// The prefilled message, as the original promised (and with the product's link added).
pub fn message(product: &str, price: Option<Money>, link: &str) -> String {
    message_in(Lang::En, product, price, link)
}

/// The buyer's first WhatsApp message in the buyer's language.
pub fn message_in(lang: Lang, product: &str, price: Option<Money>, link: &str) -> String {
    let price = super::i18n::format::money(lang, price);
    lang.tf2("whatsapp_message", product, price)
        .replace("{2}", link)
}

/// `https://wa.me/254712345678?text=...`
pub fn link(seller: &Phone, text: &str) -> String {
    format!(
        "https://wa.me/{}?text={}",
        seller.digits(),
        percent_encode(text)
    )
}

/// RFC 3986 unreserved characters stay; everything else (UTF-8 bytes) is %XX.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::money::Currency;
    use super::*;

    #[test]
    fn the_link_goes_to_the_sellers_own_number_with_the_product() {
        let phone = Phone::parse("whatsapp", "0712 345 678").unwrap();
        let text = message(
            "Kiondo basket",
            Some(Money::new(450_000, Currency::KES)),
            "https://shop.example/p/7",
        );
        let url = link(&phone, &text);
        assert!(
            url.starts_with("https://wa.me/254712345678?text=Hi%21%20I%27m%20interested"),
            "{url}"
        );
        assert!(url.contains("Kiondo%20basket"));
        assert!(url.contains("KSh%204%2C500"));
        assert!(url.contains("https%3A%2F%2Fshop.example%2Fp%2F7"));
        assert!(!url.contains(' ') && !url.contains('\n'));
    }

    #[test]
    fn no_price_says_contact_for_price() {
        assert!(message("X", None, "l").contains("Price: Contact for price"));
    }
}
