//! Every word a person reads, in English and Swahili: one catalogue of keys (`catalogue.rs`),
//! the messages of validation and refusals matched to their Swahili form (`messages.rs`), and
//! numbers, money and dates in the reader's language (`format.rs`).
//!
//! Templates and handlers ask for a key: `page.t("log_in")`, `lang.t("log_in")`, with
//! positional arguments `lang.tf1("n_days", 7)` (`{0}`, `{1}` in the text). A key missing from
//! the catalogue is a test failure (`tests.rs` scans the templates and the sources for every
//! `t("…")`, `tf1("…"`, `tf2("…"` and names the key and the file); at run time it renders as
//! the key itself, never as nothing.

mod catalogue;
pub mod format;
pub mod messages;
#[cfg(test)]
mod tests;

pub use catalogue::{SAME_IN_BOTH, STRINGS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Sw,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Sw];

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "sw" => Some(Lang::Sw),
            _ => None,
        }
    }

    /// The first language of an `Accept-Language` header this shop speaks (`sw-KE, en;q=0.8`):
    /// weights are honoured, anything unreadable is skipped.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(u16, usize, Lang)> = None;
        for (i, part) in header.split(',').enumerate().take(32) {
            let mut pieces = part.split(';');
            let tag = pieces
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            let primary = tag.split('-').next().unwrap_or_default();
            let Some(lang) = Lang::parse(primary) else {
                continue;
            };
            let mut q = 1000u16;
            for p in pieces {
                if let Some(v) = p.trim().strip_prefix("q=") {
                    q = match v.trim().parse::<f32>() {
                        Ok(x) if (0.0..=1.0).contains(&x) => (x * 1000.0) as u16,
                        _ => 0,
                    };
                }
            }
            if q == 0 {
                continue;
            }
            if best.is_none_or(|(bq, bi, _)| q > bq || (q == bq && i < bi)) {
                best = Some((q, i, lang));
            }
        }
        best.map(|(_, _, l)| l)
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

    /// The text of `key` in this language. An unknown key (a test fails on it: see `tests.rs`)
    /// answers the key itself and logs it, so a page never shows an empty label.
    pub fn t(self, key: &str) -> &'static str {
        match catalogue::lookup(key) {
            Some((en, sw)) => match self {
                Lang::En => en,
                Lang::Sw => sw,
            },
            None => {
                tracing::error!(key, "i18n: no such key in the catalogue");
                catalogue::leak_key(key)
            }
        }
    }

    /// `key` with `{0}` replaced by `a`.
    pub fn tf1(self, key: &str, a: impl std::fmt::Display) -> String {
        self.t(key).replace("{0}", &a.to_string())
    }

    /// `key` with `{0}` and `{1}` replaced.
    pub fn tf2(self, key: &str, a: impl std::fmt::Display, b: impl std::fmt::Display) -> String {
        self.t(key)
            .replace("{0}", &a.to_string())
            .replace("{1}", &b.to_string())
    }

    /// A state word stored in the database (`pending`, `approved`, `new`, `shipped`, …) as a
    /// person reads it: the catalogue's `state_<word>`; a word without a key stays as it is.
    pub fn state(self, word: &str) -> &'static str {
        let key = format!("state_{word}");
        match catalogue::lookup(&key) {
            Some((en, sw)) => match self {
                Lang::En => en,
                Lang::Sw => sw,
            },
            None => {
                tracing::warn!(word, "i18n: no state word for it");
                catalogue::leak_key(word)
            }
        }
    }

    /// A validation or refusal message written in English by the rules (`market`, `accounts`,
    /// `imaging`) in this language (see `messages`).
    pub fn message(self, english: &str) -> String {
        match self {
            Lang::En => english.to_owned(),
            Lang::Sw => messages::to_swahili(english).unwrap_or_else(|| {
                tracing::warn!(message = english, "i18n: no Swahili for this message");
                english.to_owned()
            }),
        }
    }

    /// A form field's problem as one sentence: "Business name is required" /
    /// "Jina la biashara: linahitajika".
    pub fn field_error(self, label: &str, message: &str) -> String {
        match self {
            Lang::En => format!("{label} {message}"),
            Lang::Sw => format!("{label}: {}", self.message(message)),
        }
    }
}
