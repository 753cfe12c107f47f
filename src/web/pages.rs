//! Shared page pieces: the context every page template gets, and the generic form page.

use askama::Template;
use axum::response::Html;

use super::Error;
use super::session::Visitor;
use crate::market::FieldErrors;
use crate::market::i18n::Lang;

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

    /// The storefront string `key` in the visitor's language.
    pub fn t(&self, key: &str) -> &'static str {
        self.lang.t(key)
    }
}

pub fn render(t: &impl Template) -> Result<Html<String>, Error> {
    Ok(Html(t.render()?))
}

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
    /// Attach each field's error message.
    pub fn with_errors(mut self, errors: &FieldErrors) -> Self {
        for f in &mut self.fields {
            f.error = errors.get(f.name).map(str::to_owned);
        }
        self
    }
}
