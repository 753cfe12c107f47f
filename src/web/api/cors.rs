//! CORS for the API: only origins on the `api.cors_origins` allow-list get CORS headers, and
//! only they may send credentials (`Access-Control-Allow-Credentials` is never paired with a
//! wildcard). A preflight from any other origin is refused with 403. A plain request from one
//! is served without CORS headers, so the browser keeps the answer from the page: the API
//! authenticates with bearer tokens, never cookies, so such a request carries no one's rights.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

pub struct Cors {
    origins: Vec<String>,
}

const METHODS: &str = "GET, POST, PATCH, DELETE, OPTIONS";
const HEADERS: &str = "authorization, content-type, x-request-id";
const EXPOSED: &str = "retry-after, x-request-id";

impl Cors {
    pub fn new(origins: &[crate::config::api::Origin]) -> Arc<Self> {
        Arc::new(Cors {
            origins: origins.iter().map(|o| o.as_str().to_owned()).collect(),
        })
    }

    /// The request's `Origin`, when it is on the allow-list.
    fn allowed(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(ORIGIN)?;
        let text = origin.to_str().ok()?.to_ascii_lowercase();
        self.origins.contains(&text).then(|| origin.clone())
    }
}

fn allow(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
}

pub async fn handle(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    let allowed = cors.allowed(req.headers());
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key(ORIGIN)
        && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let Some(origin) = allowed else {
            let mut resp = ApiError::forbidden(
                "cors_origin_refused",
                "this origin is not allowed to call the API (api.cors_origins)",
            )
            .into_response();
            resp.headers_mut()
                .append(VARY, HeaderValue::from_static("origin"));
            return resp;
        };
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        allow(h, origin);
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(METHODS),
        );
        h.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(HEADERS),
        );
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        h.append(
            VARY,
            HeaderValue::from_static(
                "origin, access-control-request-method, access-control-request-headers",
            ),
        );
        return resp;
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if let Some(origin) = allowed {
        allow(h, origin);
        h.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED),
        );
    }
    h.append(VARY, HeaderValue::from_static("origin"));
    resp
}
