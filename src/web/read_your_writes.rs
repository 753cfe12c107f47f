//! Read-your-writes with read replicas (`database.replicas`; see `store::replicas`): a request
//! that writes (any method but GET, HEAD and OPTIONS) and succeeds marks its client, and for
//! the next few seconds (`Reads::read_your_writes_window`, longer than the lag a replica may
//! have and still get reads) that client's reads go to the primary, so a seller who saves a
//! product sees the new price on the next page, and a new session sees its own login.
//!
//! The mark: a browser gets the cookie `soko_rw` holding the Unix second it runs out (across
//! app nodes too). The cookie is not signed: all a forged one can do is send that client's own
//! reads to the primary, where they would go without replicas, and a deadline further out than
//! one window is not believed. The request that writes reads the primary too.
//!
//! An API client (a bearer token) reads the primary always: API clients rarely keep cookies,
//! and a deadline remembered per token in one process is not seen by the next node the load
//! balancer picks. Bearer clients are sellers' tools, a small share of the reads; the storefront,
//! crawlers and anonymous API reads keep the replicas. A made-up bearer header only sends its
//! sender's reads to the primary, as a forged cookie does. Without replicas nothing is marked
//! and no cookie is set.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::store::replicas::primary_only;

pub const COOKIE_NAME: &str = "soko_rw";

fn writes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The deadline in `soko_rw`, if it is still ahead and not further out than one window.
fn cookie_fresh(headers: &HeaderMap, now: u64, window: Duration) -> bool {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .filter(|(k, _)| *k == COOKIE_NAME)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .any(|until| until > now && until <= now + window.as_secs() + 1)
}

/// The request carries a bearer token (an API client: see the module docs).
fn bearer(headers: &HeaderMap) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") || v.starts_with("bearer "))
}

/// Middleware around pages and the API.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.reads.has_replicas() {
        return next.run(req).await;
    }
    let window = state.reads.read_your_writes_window();
    let now = crate::clock::now_unix();
    let write = writes(req.method());
    let api = bearer(req.headers());
    let recent = cookie_fresh(req.headers(), now, window);
    let mut resp = primary_only(write || recent || api, next.run(req)).await;
    let status = resp.status();
    if write && !api && (status.is_success() || status.is_redirection()) {
        let until = now + window.as_secs();
        let secure = if state.settings.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{COOKIE_NAME}={until}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            window.as_secs()
        )) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(cookie).unwrap());
        h
    }

    #[test]
    fn only_a_deadline_ahead_and_within_one_window_counts() {
        let w = Duration::from_secs(7);
        assert!(cookie_fresh(&with("a=b; soko_rw=1005"), 1000, w));
        assert!(!cookie_fresh(&with("soko_rw=999"), 1000, w));
        assert!(!cookie_fresh(&with("soko_rw=999999"), 1000, w));
        assert!(!cookie_fresh(&with("soko_rw=soon"), 1000, w));
        assert!(!cookie_fresh(&HeaderMap::new(), 1000, w));
    }

    #[test]
    fn a_bearer_token_is_an_api_client() {
        let mut h = HeaderMap::new();
        assert!(!bearer(&h));
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic Zm9vOmJhcg=="),
        );
        assert!(!bearer(&h));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert!(bearer(&h));
    }

    #[test]
    fn only_gets_and_heads_are_reads() {
        assert!(!writes(&Method::GET));
        assert!(!writes(&Method::HEAD));
        assert!(writes(&Method::POST));
        assert!(writes(&Method::DELETE));
        assert!(writes(&Method::PATCH));
    }
}
