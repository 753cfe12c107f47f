//! Read-your-writes with read replicas (`database.replicas`; see `store::replicas`): a request
//! that writes (any method but GET, HEAD and OPTIONS) and succeeds marks its client, and for
//! the next few seconds (`Reads::read_your_writes_window`, longer than the lag a replica may
//! have and still get reads) that client's reads go to the primary, so a seller who saves a
//! product sees the new price on the next page, and a new session sees its own login.
//!
//! The mark: a browser gets the cookie `soko_rw` holding the Unix second it runs out (across
//! app nodes too); an API client, by its bearer token, a deadline in this process (API clients
//! rarely keep cookies). The cookie is not signed: all a forged one can do is send that
//! client's own reads to the primary, where they would go without replicas, and a deadline
//! further out than one window is not believed. The request that writes reads the primary too.
//! Without replicas nothing is marked and no cookie is set.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::store::replicas::primary_only;

pub const COOKIE_NAME: &str = "soko_rw";

/// Bearer tokens (their SHA-256) that wrote recently, and until when their reads go to the
/// primary.
static API_WRITERS: LazyLock<Mutex<HashMap<String, Instant>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
/// Past this many marks, the expired ones are swept out on the next insert.
const SWEEP_AT: usize = 4096;

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

fn bearer_key(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let token = v.strip_prefix("Bearer ").or(v.strip_prefix("bearer "))?;
    Some(super::session::hash_token(token.trim()))
}

fn api_fresh(key: &str) -> bool {
    API_WRITERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(key)
        .is_some_and(|until| *until > Instant::now())
}

fn mark_api(key: String, window: Duration) {
    let mut m = API_WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    if m.len() >= SWEEP_AT {
        let now = Instant::now();
        m.retain(|_, until| *until > now);
    }
    m.insert(key, Instant::now() + window);
}

/// Middleware around pages and the API.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.reads.has_replicas() {
        return next.run(req).await;
    }
    let window = state.reads.read_your_writes_window();
    let now = crate::clock::now_unix();
    let write = writes(req.method());
    let bearer = bearer_key(req.headers());
    let recent =
        cookie_fresh(req.headers(), now, window) || bearer.as_deref().is_some_and(api_fresh);
    let mut resp = primary_only(write || recent, next.run(req)).await;
    let status = resp.status();
    if write && (status.is_success() || status.is_redirection()) {
        match bearer {
            Some(key) => mark_api(key, window),
            None => {
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
    fn only_gets_and_heads_are_reads() {
        assert!(!writes(&Method::GET));
        assert!(!writes(&Method::HEAD));
        assert!(writes(&Method::POST));
        assert!(writes(&Method::DELETE));
        assert!(writes(&Method::PATCH));
    }
}
