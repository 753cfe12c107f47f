//! The storefront's words in English and Swahili. A missing Swahili entry falls back to English,
//! so a new string never shows a raw key.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Sw,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "sw" => Some(Lang::Sw),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Sw => "sw",
        }
    }

    /// The other language, for the switch link.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Sw,
            Lang::Sw => Lang::En,
        }
    }

    /// The language's own name.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Sw => "Kiswahili",
        }
    }

    pub fn t(self, key: &str) -> &'static str {
        let (en, sw) = STRINGS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, en, sw)| (*en, *sw))
            .unwrap_or(("", ""));
        match self {
            Lang::Sw if !sw.is_empty() => sw,
            _ => en,
        }
    }
}

/// (key, English, Swahili)
const STRINGS: &[(&str, &str, &str)] = &[
    (
        "site_description",
        "Soko: buy from local sellers near you and chat with them on WhatsApp.",
        "Soko: nunua kutoka kwa wauzaji wa karibu nawe na uongee nao kwa WhatsApp.",
    ),
    (
        "search_placeholder",
        "Search products, sellers, cities",
        "Tafuta bidhaa, wauzaji, miji",
    ),
    ("log_in", "Log in", "Ingia"),
    ("log_out", "Log out", "Toka"),
    ("home", "Home", "Nyumbani"),
    ("watchlist", "Watchlist", "Vipendwa"),
    ("sell", "Sell", "Uza"),
    ("profile", "Profile", "Wasifu"),
    ("all", "All", "Zote"),
    ("fresh", "Fresh on Soko", "Mpya sokoni"),
    ("more", "More products", "Bidhaa zaidi"),
    ("in_stock", "in stock", "zipo"),
    (
        "ask_stock",
        "Ask the seller about stock",
        "Uliza muuzaji kuhusu upatikanaji",
    ),
    ("chat_whatsapp", "Chat on WhatsApp", "Ongea kwa WhatsApp"),
    ("share", "Share link", "Shiriki kiungo"),
    ("save", "♡ Save", "♡ Hifadhi"),
    ("saved", "♥ Saved", "♥ Imehifadhiwa"),
    ("reviews", "Reviews", "Maoni"),
    ("no_reviews", "No reviews yet.", "Bado hakuna maoni."),
    ("stars", "Stars", "Nyota"),
    ("your_review", "Your review", "Maoni yako"),
    ("post_review", "Post review", "Tuma maoni"),
    (
        "approved_seller",
        "Approved seller",
        "Muuzaji aliyeidhinishwa",
    ),
    ("contact_price", "Contact for price", "Uliza bei"),
    (
        "empty_feed",
        "Nothing here yet. Sellers: tap Sell to list your first product.",
        "Bado hakuna kitu. Wauzaji: bonyeza Uza kuweka bidhaa yako ya kwanza.",
    ),
    ("search", "Search", "Tafuta"),
    (
        "search_hint",
        "Type what you are looking for: a product, a seller or a city.",
        "Andika unachotafuta: bidhaa, muuzaji au mji.",
    ),
    (
        "no_results",
        "No products match. Try fewer words, another spelling, or browse the categories.",
        "Hakuna bidhaa zinazolingana. Jaribu maneno machache, tahajia nyingine, au angalia makundi.",
    ),
    ("results_for", "Results for", "Matokeo ya"),
    ("your_watchlist", "Your watchlist", "Vipendwa vyako"),
    (
        "empty_watchlist",
        "Tap ♡ Save on a product to keep it here.",
        "Bonyeza ♡ Hifadhi kwenye bidhaa ili kuiweka hapa.",
    ),
    (
        "seller_empty",
        "This seller has no products on show yet.",
        "Muuzaji huyu bado hana bidhaa.",
    ),
    ("for_you", "Recommended for you", "Tumekuchagulia"),
    ("trending", "Trending", "Zinazovuma"),
    (
        "also_viewed",
        "Buyers also viewed",
        "Wanunuzi pia walitazama",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_has_both_languages_and_unknown_keys_are_empty() {
        for (key, en, sw) in STRINGS {
            assert!(!en.is_empty() && !sw.is_empty(), "{key}");
            assert_eq!(Lang::Sw.t(key), *sw);
        }
        assert_eq!(Lang::En.t("chat_whatsapp"), "Chat on WhatsApp");
        assert_eq!(Lang::Sw.t("chat_whatsapp"), "Ongea kwa WhatsApp");
        assert_eq!(Lang::Sw.t("no_such_key"), "");
        assert_eq!(Lang::parse("sw"), Some(Lang::Sw));
        assert_eq!(Lang::parse("fr"), None);
    }
}
