//! The web layer's errors, each mapped to a status. Internal errors are logged with their cause
//! and answered with an opaque message: never SQL text or a stack trace. The page says it in
//! the visitor's language: `session::identify` runs every browser request inside [`LANG`].

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::market::i18n::{Lang, format};
use crate::store;

tokio::task_local! {
    /// The language of the request being answered (set by `session::identify`).
    pub static LANG: Lang;
}

/// The language of the request being answered; English outside a browser request.
pub fn current_lang() -> Lang {
    LANG.try_with(|l| *l).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("please log in")]
    LoginRequired,
    #[error("you may not do that")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("the form expired or came from another site; reload the page and try again")]
    Csrf,
    #[error("the service is busy or restarting; try again in a moment")]
    Unavailable,
    /// Every password-hashing slot is taken (see `auth`): answered at once, never queued.
    #[error("too many password checks at once; try again in a moment")]
    Busy,
    #[error("too many attempts from here; wait {} and try again", crate::ops::status::human_duration(.0.as_secs().max(1)))]
    Throttled(std::time::Duration),
    #[error("internal error")]
    Internal(String),
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NotFound => Error::NotFound,
            store::Error::Sqlx(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => {
                tracing::warn!("database unavailable: {e}");
                Error::Unavailable
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

/// A read on a replica that could not reach it is run again on the primary.
impl crate::store::replicas::Unreachable for Error {
    fn unreachable(&self) -> bool {
        matches!(self, Error::Unavailable)
    }
}

impl From<askama::Error> for Error {
    fn from(e: askama::Error) -> Self {
        Error::Internal(format!("template: {e}"))
    }
}

impl Error {
    /// What the page tells a person, in `lang`.
    pub fn message(&self, lang: Lang) -> String {
        match self {
            Error::LoginRequired => lang.t("err_login_required").to_owned(),
            Error::Forbidden => lang.t("err_forbidden").to_owned(),
            Error::NotFound => lang.t("err_not_found").to_owned(),
            Error::Csrf => lang.t("err_csrf").to_owned(),
            Error::Unavailable => lang.t("err_unavailable").to_owned(),
            Error::Busy => lang.t("err_busy").to_owned(),
            Error::Throttled(wait) => {
                lang.tf1("err_throttled", format::duration(lang, wait.as_secs()))
            }
            Error::Internal(_) => lang.t("err_internal").to_owned(),
        }
    }

    /// The answer, its page in `lang`.
    pub fn response_in(self, lang: Lang) -> Response {
        let status = match &self {
            Error::LoginRequired => {
                return (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
            }
            Error::Forbidden | Error::Csrf => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::Unavailable | Error::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Error::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Internal(cause) => {
                tracing::error!("internal error: {cause}");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut resp = (
            status,
            Html(format!(
                "<!doctype html><html lang=\"{}\"><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
                 <link rel=stylesheet href=\"{}\"><main class=page><h1>{}</h1><p>{}</p>\
                 <p><a href=\"/\">{}</a></p></main>",
                lang.code(),
                super::assets::url("app.css"),
                status.as_u16(),
                escape(&self.message(lang)),
                escape(lang.t("err_back")),
            )),
        )
            .into_response();
        if let Error::Throttled(wait) = &self {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A hashing slot frees in milliseconds; a restarting database takes longer.
            let secs = if matches!(self, Error::Busy) {
                "1"
            } else {
                "5"
            };
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static(secs));
        }
        resp
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.response_in(current_lang())
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
