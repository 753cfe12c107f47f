//! API errors: always JSON, `{"error": {"code", "message", "field"?, "fields"?}, "request_id"}`.
//! The code is stable (clients branch on it); the message is for people. Internal causes are
//! logged and never sent: no SQL text, no stack trace. Messages are English (machine-facing)
//! unless the request's `Accept-Language` prefers Swahili: then every message with a Swahili
//! form in `market::i18n::messages` is answered in it (with `Content-Language: sw`); the codes
//! never change.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::market::{FieldError, FieldErrors};
use crate::store;

/// What went wrong, before it becomes a response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<FieldError>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// The `x-request-id` of this request: quote it when reporting a problem.
    pub request_id: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case: `validation_failed`, `invalid_token`, `rate_limited` ...
    pub code: String,
    pub message: String,
    /// The input to fix (validation and conflicts), e.g. `price_minor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every rejected field, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldMessage>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldMessage {
    pub field: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            retry_after: None,
        }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "not found")
    }

    pub fn unauthorized(code: &'static str, message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::from(FieldError::new(field, message))
    }

    pub fn rate_limited(code: &'static str, retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        ApiError {
            retry_after: Some(secs.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                code,
                "too many requests: slow down and retry after the time in Retry-After",
            )
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; quote the request id when reporting it",
        )
    }

    fn body(&self, request_id: &str) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
                field: self.fields.first().map(|f| f.field.to_owned()),
                fields: if self.fields.len() > 1 {
                    self.fields
                        .iter()
                        .map(|f| FieldMessage {
                            field: f.field.to_owned(),
                            message: f.message.clone(),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            },
            request_id: request_id.to_owned(),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        FieldErrors(vec![e]).into()
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        let message =
            e.0.iter()
                .map(|f| format!("{} {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ");
        ApiError {
            fields: e.0,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                message,
            )
        }
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NotFound => Self::not_found(),
            store::Error::Conflict(field) => ApiError {
                fields: vec![FieldError::new(field, "is already taken")],
                ..Self::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("{field} is already taken"),
                )
            },
            store::Error::Sqlx(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => {
                tracing::warn!("database unavailable: {e}");
                ApiError {
                    retry_after: Some(5),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "the service is busy or restarting; try again in a moment",
                    )
                }
            }
            other => Self::internal(other),
        }
    }
}

/// A read on a replica that could not reach it is run again on the primary.
impl crate::store::replicas::Unreachable for ApiError {
    fn unreachable(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE && self.code == "unavailable"
    }
}

/// The browser layer's errors that shared code (password hashing) returns to the API too.
impl From<crate::web::Error> for ApiError {
    fn from(e: crate::web::Error) -> Self {
        use crate::web::Error as Web;
        let unavailable = |code, retry_after| ApiError {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, e.to_string())
        };
        match &e {
            Web::Busy => unavailable("busy", 1),
            Web::Unavailable => unavailable("unavailable", 5),
            Web::Throttled(wait) => Self::rate_limited("rate_limited", *wait),
            Web::NotFound => Self::not_found(),
            _ => Self::internal(e),
        }
    }
}

impl ApiError {
    /// The messages in `lang` where they have a translation (`market::i18n::messages`); the
    /// codes and field names as they are.
    pub fn in_language(mut self, lang: crate::market::i18n::Lang) -> Self {
        use crate::market::i18n::{Lang, messages};
        if lang == Lang::En {
            return self;
        }
        let tr = |m: &str| messages::to_swahili(m).unwrap_or_else(|| m.to_owned());
        for f in &mut self.fields {
            f.message = tr(&f.message);
        }
        self.message = if self.code == "validation_failed" && !self.fields.is_empty() {
            self.fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            tr(&self.message)
        };
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body(""))).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"soko\""),
            );
        }
        resp.extensions_mut().insert(self);
        resp
    }
}

/// Outermost API middleware: every error leaves as the JSON body above with the request id
/// filled in, including the ones axum makes itself (unknown route, wrong method).
pub async fn json_errors(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let lang = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::market::i18n::Lang::from_accept_language)
        .unwrap_or_default();
    let mut resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let error = match resp.extensions_mut().remove::<ApiError>() {
        Some(e) => e,
        None => match status {
            StatusCode::NOT_FOUND => ApiError::new(
                status,
                "no_route",
                "no such API endpoint; see /api/v1/openapi.json",
            ),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
                status,
                "method_not_allowed",
                "this endpoint does not answer that method",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(status, "payload_too_large", "the request body is too large")
            }
            StatusCode::REQUEST_TIMEOUT => {
                ApiError::new(status, "timeout", "the request took too long")
            }
            s if s.is_server_error() => ApiError::new(status, "internal", "internal error"),
            _ => ApiError::new(status, "bad_request", "the request was not understood"),
        },
    };
    let error = error.in_language(lang);
    let (mut parts, _) = resp.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(lang.code()),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&error.body(&request_id)).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}
