//! CORS for the API, by tower-http's [`CorsLayer`]: only origins on the `api.cors_origins`
//! allow-list get CORS headers, and only they may send credentials
//! (`Access-Control-Allow-Credentials` is never paired with a wildcard). A preflight from any
//! other origin is refused with 403 ([`preflight_answer`]). A plain request from one is served
//! without CORS headers, so the browser keeps the answer from the page: the API authenticates
//! with bearer tokens, never cookies, so such a request carries no one's rights.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, CONTENT_TYPE,
    ORIGIN, RETRY_AFTER, VARY,
};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

use super::error::ApiError;
use crate::config::api::Origin;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The CORS layer for `origins` (lower-case, as `api.cors_origins` keeps them; the request's
/// `Origin` is compared without regard to case).
pub fn layer(origins: &[Origin]) -> CorsLayer {
    let listed: Arc<[String]> = origins.iter().map(|o| o.as_str().to_owned()).collect();
    let allowed = move |origin: &HeaderValue| {
        origin
            .to_str()
            .is_ok_and(|o| listed.iter().any(|l| l.eq_ignore_ascii_case(o)))
    };
    let credentials = allowed.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |o, _| allowed(o)))
        .allow_credentials(AllowCredentials::predicate(move |o, _| credentials(o)))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE, REQUEST_ID])
        .expose_headers([RETRY_AFTER, REQUEST_ID])
        .max_age(Duration::from_secs(600))
}

/// Outside [`layer`]: tower-http answers every `OPTIONS` itself with 200, whether the origin is
/// listed or not. The API answers 204 instead, and a preflight from an unlisted origin gets a
/// 403 with a JSON error that names the setting.
pub async fn preflight_answer(req: Request, next: Next) -> Response {
    if req.method() != Method::OPTIONS {
        return next.run(req).await;
    }
    let preflight = req.headers().contains_key(ORIGIN)
        && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = next.run(req).await;
    if !preflight || resp.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN) {
        *resp.status_mut() = StatusCode::NO_CONTENT;
        return resp;
    }
    let mut refused = ApiError::forbidden(
        "cors_origin_refused",
        "this origin is not allowed to call the API (api.cors_origins)",
    )
    .into_response();
    for vary in resp.headers().get_all(VARY) {
        refused.headers_mut().append(VARY, vary.clone());
    }
    refused
}
