//! Extractors whose rejections are API errors: a JSON body whose bad field is named, path
//! parameters that answer 404 when malformed, query strings, and the client's address.

use std::net::IpAddr;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::market::FieldError;

/// A JSON body. Wrong content type: 415; not JSON: 400 `malformed_json`; JSON of the wrong
/// shape: 422 `validation_failed` naming the field (`price_minor`, `images[0]` ...).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    e.status(),
                    "payload_too_large",
                    "the request body is too large",
                )
            } else {
                ApiError::bad_request("malformed_body", "the request body could not be read")
            }
        })?;
        parse(&bytes).map(Json)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        })
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::bad_request(
                "malformed_json",
                format!("the body is not JSON: {inner}"),
            );
        }
        let path = e.path().to_string();
        let message = strip_position(&inner.to_string());
        // serde names a missing field only in its message: "missing field `name`".
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'));
        let (field, message) = match (path.as_str(), missing) {
            (".", Some(m)) => (m.to_owned(), "is required".to_owned()),
            (p, Some(m)) => (format!("{p}.{m}"), "is required".to_owned()),
            (p, None) => (p.to_owned(), message),
        };
        ApiError::from(FieldError::new(leak_field(&field), message))
    })
}

/// serde_json appends " at line 1 column 20": noise for a named field.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// `FieldError` names fields with `&'static str` (forms know theirs at compile time). A JSON
/// path is dynamic; keep the few shapes our DTOs have, and fall back to "body".
fn leak_field(path: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "login",
        "password",
        "name",
        "description",
        "price_minor",
        "currency",
        "stock",
        "category",
        "status",
        "reason",
        "visitor",
        "hidden",
    ];
    KNOWN
        .iter()
        .find(|k| **k == path)
        .copied()
        .unwrap_or("body")
}

/// A path parameter; one that does not parse (`/products/abc`) is simply not found.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|_| ApiError::not_found())
    }
}

/// A query string. Its values are read as text and validated by the handler, so that a bad
/// one is refused naming its parameter; only a malformed encoding is refused here.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request("malformed_query", e.body_text()))
    }
}

/// The client's address as the rate limiter resolved it (see `limit::client_ip`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .ok_or_else(|| ApiError::internal("the client address middleware is missing"))
    }
}

/// An optional query value parsed as `T`, refused naming `field` when it does not parse.
pub fn parse_opt<T: std::str::FromStr>(
    field: &'static str,
    value: &Option<String>,
    expected: &str,
) -> Result<Option<T>, FieldError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| FieldError::new(field, format!("must be {expected}"))),
    }
}

/// The `limit` query parameter every list takes: a whole number from 1 to `max`, `default`
/// when absent or empty, else refused naming `limit`.
pub fn limit(value: &Option<String>, max: u32, default: u32) -> Result<u32, FieldError> {
    let expected = format!("a whole number from 1 to {max}");
    match parse_opt::<u32>("limit", value, &expected)? {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(FieldError::new("limit", format!("must be {expected}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_1_to_max_with_a_default() {
        let l = |v: Option<&str>| limit(&v.map(str::to_owned), 50, 20);
        assert_eq!(l(None), Ok(20));
        assert_eq!(l(Some(" ")), Ok(20));
        assert_eq!(l(Some("50")), Ok(50));
        let msg = "must be a whole number from 1 to 50";
        assert_eq!(l(Some("0")).unwrap_err().message, msg);
        assert_eq!(l(Some("51")).unwrap_err().message, msg);
        assert_eq!(l(Some("x")).unwrap_err().message, msg);
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        price_minor: i64,
    }

    #[test]
    fn the_bad_field_is_named() {
        let e = parse::<Body>(br#"{"name": "x", "price_minor": "lots"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.fields[0].field, "price_minor");
        let e = parse::<Body>(br#"{"price_minor": 5}"#).unwrap_err();
        assert_eq!(e.fields[0].field, "name");
        let e = parse::<Body>(b"{nope").unwrap_err();
        assert_eq!(e.code, "malformed_json");
    }
}
