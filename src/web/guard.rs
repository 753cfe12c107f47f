//! What one client may cost on the anonymous pages that do real work, and the state the
//! exhaustion defences share: the per-client budget of `/search`, `/search/photo`, `/p/{id}`
//! and `/p/{id}/whatsapp` (the API's GCRA [`Limiter`] keyed by the API's `client_ip()`), the
//! photo-search slots (taken with `try_acquire`: a search that finds none answers 503 +
//! Retry-After at once, nothing waits in a queue; and before that, room to receive the query
//! photo at all, four uploads per slot, so parallel uploads cannot pile up in memory), the query-photo pixel cap, the per-seller
//! quotas and the per-address cap on recorded events (see `limits:` in `appliance.yaml`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppState;
use super::api::limit::{Limiter, client_key};
use crate::config::limits::Limits as LimitsConfig;
use crate::market::quota::Quotas;

/// Query photos received at once per photo-search slot.
const UPLOADS_PER_SLOT: usize = 4;

pub struct Guard {
    browse: Limiter,
    photo_slots: Arc<Semaphore>,
    /// Query photos being received (each up to 8 MB in memory): four per slot.
    photo_uploads: Arc<Semaphore>,
    /// Largest query photo for search by photo, in pixels.
    pub query_pixels: u64,
    pub quotas: Quotas,
    /// Distinct visitors whose views and leads are recorded per address, product and day.
    pub events_per_address: u32,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Guard")
    }
}

impl Guard {
    pub fn new(c: &LimitsConfig) -> Self {
        Guard {
            browse: Limiter::new(
                c.browse_requests,
                Duration::from_secs(c.browse_window_secs.get()),
            ),
            photo_slots: Arc::new(Semaphore::new(c.photo_search_concurrent.get() as usize)),
            photo_uploads: Arc::new(Semaphore::new(
                UPLOADS_PER_SLOT * c.photo_search_concurrent.get() as usize,
            )),
            query_pixels: c.photo_query_pixels(),
            quotas: c.quotas(),
            events_per_address: c.events_per_address.get(),
        }
    }

    /// The dedupe of recorded views and leads for a client.
    pub fn once<'a>(&self, address: &'a str) -> crate::store::leads::Once<'a> {
        crate::store::leads::Once {
            address,
            per_address: self.events_per_address,
        }
    }

    /// Room to receive one query photo, taken before its body is read (so parallel uploads
    /// cannot pile up in memory), or `None` at once when all is taken.
    pub fn photo_upload(&self) -> Option<OwnedSemaphorePermit> {
        self.photo_uploads.clone().try_acquire_owned().ok()
    }

    /// A photo-search slot, or `None` at once when all are taken.
    pub fn photo_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.photo_slots.clone().try_acquire_owned().ok()
    }
}

/// The client a browser request comes from, as the rate limits count it (the address, its /64
/// for IPv6, or behind a trusted proxy the forwarded address). Set by [`browse`] on every
/// browser route.
#[derive(Debug, Clone)]
pub struct ClientKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientKey {
    type Rejection = super::Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, super::Error> {
        parts
            .extensions
            .get::<ClientKey>()
            .cloned()
            .ok_or_else(|| super::Error::Internal("guard middleware missing".into()))
    }
}

/// The metered pages: `/search`, `/search/photo`, `/p/{id}`, `/p/{id}/whatsapp`.
fn metered(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(
        parts.as_slice(),
        ["search"] | ["search", "photo"] | ["p", _] | ["p", _, "whatsapp"]
    )
}

/// Middleware on the browser routes: resolve the client (for handlers too) and meter the
/// expensive anonymous pages. Over the budget: 429, Retry-After and a page saying how long.
pub async fn browse(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let key = client_key(s.settings.limits.0.client_ip(peer, req.headers()));
    if metered(req.uri().path())
        && let Err(wait) = s.settings.guard.browse.check(&key)
    {
        return too_fast(wait);
    }
    req.extensions_mut().insert(ClientKey(key));
    next.run(req).await
}

fn too_fast(wait: Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        Html(format!(
            "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
             <link rel=stylesheet href=\"/static/app.css\"><main class=page>\
             <h1>Slow down a little</h1><p>This connection has opened a lot of pages in a short \
             time, so the shop is pausing it to stay quick for everyone. Please wait {} and try \
             again.</p><p><a href=\"/\">Back to the shop</a></p></main>",
            crate::ops::status::human_duration(secs)
        )),
    )
        .into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_expensive_pages_are_metered() {
        for p in ["/search", "/search/photo", "/p/12", "/p/12/whatsapp"] {
            assert!(super::metered(p), "{p}");
        }
        for p in [
            "/",
            "/login",
            "/p/12/reviews",
            "/search/x",
            "/static/app.css",
            "/sell",
        ] {
            assert!(!super::metered(p), "{p}");
        }
    }
}
