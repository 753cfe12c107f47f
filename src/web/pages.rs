//! Shared page pieces: the context every page template gets, and the generic form page.

use askama::Template;
use axum::response::Html;

use super::Error;
use super::session::Visitor;
use crate::market::FieldErrors;
use crate::market::i18n::{Lang, format};
use crate::market::money::Money;

/// What the layout needs on every page.
pub struct PageCtx {
    pub user: Option<String>,
    pub csrf: String,
    pub query: String,
    pub lang: Lang,
}

impl PageCtx {
    pub fn new(v: &Visitor) -> Self {
        PageCtx {
            user: v.user.as_ref().map(|u| u.name.clone()),
            csrf: v.csrf.clone(),
            query: String::new(),
            lang: v.lang,
        }
    }

    /// The context of a page that is the same for every anonymous visitor (cached and
    /// publicly cacheable: no account, no CSRF token).
    pub fn shared(lang: Lang) -> Self {
        PageCtx {
            user: None,
            csrf: String::new(),
            query: String::new(),
            lang,
        }
    }

    /// The content-hashed URL of a static file (`app.css`, `app.js`, `photo.js`).
    pub fn asset(&self, name: &str) -> &'static str {
        super::assets::url(name)
    }

    /// The catalogue's text of `key` in the visitor's language (see `market::i18n`).
    pub fn t(&self, key: &str) -> &'static str {
        self.lang.t(key)
    }

    /// `key` with `{0}` filled in.
    pub fn tf1(&self, key: &str, a: impl std::fmt::Display) -> String {
        self.lang.tf1(key, a)
    }

    /// `key` with `{0}` and `{1}` filled in.
    pub fn tf2(&self, key: &str, a: impl std::fmt::Display, b: impl std::fmt::Display) -> String {
        self.lang.tf2(key, a, b)
    }

    /// A stored state word (`pending`, `shipped`, …) in the visitor's language.
    pub fn state(&self, word: &str) -> &'static str {
        self.lang.state(word)
    }

    /// A count with thousands separators.
    pub fn num(&self, n: impl format::Number) -> String {
        format::number(self.lang, n)
    }

    /// A price (`KSh 1,200`), or "Contact for price".
    pub fn price(&self, p: &Option<Money>) -> String {
        format::money(self.lang, *p)
    }

    /// A stored UTC date as the visitor reads it (`5 Des 2026`).
    pub fn date(&self, s: &str) -> String {
        format::date(self.lang, s)
    }

    /// A stored UTC moment with its time of day (`5 Des 2026, 14:03`).
    pub fn date_time(&self, s: &str) -> String {
        format::date_time(self.lang, s)
    }

    /// Quality control's findings (`check: detail; …`) in the visitor's language.
    pub fn qc_summary(&self, summary: &str) -> String {
        crate::market::quality::summary_in(self.lang, summary)
    }

    /// A category's name in the visitor's language (its Swahili name when it has one).
    pub fn category(&self, c: &crate::store::catalogue::Category) -> String {
        category_name(self.lang, c)
    }
}

/// A category's name in `lang`: the Swahili name when set, else the name.
pub fn category_name(lang: Lang, c: &crate::store::catalogue::Category) -> String {
    if lang == Lang::Sw && !c.name_sw.is_empty() {
        c.name_sw.clone()
    } else {
        c.name.clone()
    }
}

pub fn render(t: &impl Template) -> Result<Html<String>, Error> {
    Ok(Html(t.render()?))
}

/// A form field; its label is catalogue text (`lang.t("…")`), its error a whole sentence in
/// the page's language (see [`FormPage::with_errors`]).
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub value: String,
    pub required: bool,
    pub options: Vec<(String, String)>,
    pub error: Option<String>,
}

impl Field {
    pub fn new(name: &'static str, label: &'static str, kind: &'static str, value: &str) -> Self {
        Field {
            name,
            label,
            kind,
            value: value.to_owned(),
            required: kind != "textarea" && kind != "select",
            options: Vec::new(),
            error: None,
        }
    }

    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    pub fn options(mut self, options: Vec<(String, String)>) -> Self {
        self.options = options;
        self
    }
}

#[derive(Template)]
#[template(path = "form.html")]
pub struct FormPage {
    pub page: PageCtx,
    pub title: &'static str,
    pub action: String,
    pub submit: &'static str,
    pub notice: Option<String>,
    pub fields: Vec<Field>,
}

impl FormPage {
    /// Attach each field's error message, in the page's language.
    pub fn with_errors(mut self, errors: &FieldErrors) -> Self {
        field_errors(self.page.lang, &mut self.fields, errors);
        self
    }
}

/// Each field's problem as one sentence in `lang` ("Price is required" / "Bei: inahitajika").
pub fn field_errors(lang: Lang, fields: &mut [Field], errors: &FieldErrors) {
    for f in fields {
        f.error = errors
            .get(f.name)
            .map(|message| lang.field_error(f.label, message));
    }
}
