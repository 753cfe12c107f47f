//! The web layer's errors, each mapped to a status. Internal errors are logged with their cause
//! and answered with an opaque message: never SQL text or a stack trace.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::store;

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

impl From<askama::Error> for Error {
    fn from(e: askama::Error) -> Self {
        Error::Internal(format!("template: {e}"))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
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
                "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
                 <link rel=stylesheet href=\"{}\"><main class=page><h1>{}</h1><p>{}</p>\
                 <p><a href=\"/\">Back to the shop</a></p></main>",
                super::assets::url("app.css"),
                status.as_u16(),
                self
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
