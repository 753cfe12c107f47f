//! Work done once: anonymous storefront pages (feed, category feed, product page, seller page)
//! rendered once and kept in memory, and the HTTP caching headers a CDN reads.
//!
//! A cached page holds nothing of one visitor: it is rendered for "no one" (no account, no
//! CSRF token; the feed's "recommended for you" strip is a placeholder that `app.js` fills
//! from `/fragment/for-you`). Keyed by language and a canonical path built from the parsed
//! request (so junk query parameters do not multiply entries); bounded in bytes (`cache.page_mb`,
//! oldest out first); kept only while the catalogue generation it was rendered at is current
//! (`store::generation`, bumped by every catalogue write on this node to the database) and for at most
//! `cache.page_ttl_secs` (writes made elsewhere).
//!
//! Every anonymous page answers with a strong `ETag` (SHA-256 of the body), `304` to a
//! matching `If-None-Match`, `Cache-Control: public, max-age=0, s-maxage=…` and `Vary: Cookie`
//! (the language, the account and the visitor come from cookies; the compression layer adds
//! `Accept-Encoding`). The handler marks the answer [`Shared`]; `session::identify` then hands
//! out no CSRF cookie on it (and the visitor cookie only where a view was recorded), and turns
//! any answer that carries a `Set-Cookie` or belongs to a session into `private, no-store`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::market::i18n::Lang;

/// Per-entry bookkeeping counted against the budget besides the body and key.
const OVERHEAD: usize = 128;

/// Put in a response's extensions by a handler whose page is the same for every anonymous
/// visitor (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Shared {
    /// The page recorded a view under the visitor id: a new visitor gets the cookie (and the
    /// answer becomes private).
    pub needs_visitor: bool,
}

/// One rendered page.
pub struct Page {
    pub body: Bytes,
    /// The quoted strong validator.
    pub etag: HeaderValue,
    /// What the handler needs again on a hit (the product page's seller, to count the view).
    pub seller_id: u64,
    generation: u64,
    at: Instant,
}

impl Page {
    /// A page rendered at `generation` (read before the page's queries ran).
    pub fn new(html: String, seller_id: u64, generation: u64) -> Self {
        let digest = Sha256::digest(html.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Page {
            etag: HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a header value"),
            body: Bytes::from(html),
            seller_id,
            generation,
            at: Instant::now(),
        }
    }

    fn cost(&self, key: &str) -> usize {
        self.body.len() + key.len() + OVERHEAD
    }
}

struct Entry {
    page: Arc<Page>,
    seq: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    /// Insertion order (key, seq); an old seq of a replaced key is skipped when it comes up.
    order: VecDeque<(String, u64)>,
    bytes: usize,
    seq: u64,
}

/// The in-memory cache of anonymous pages, and the `s-maxage` they are served with.
pub struct PageCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
    ttl: Duration,
    cache_control: HeaderValue,
}

impl std::fmt::Debug for PageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageCache")
            .field("max_bytes", &self.max_bytes)
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl PageCache {
    pub fn new(c: &crate::config::cache::Cache) -> Self {
        PageCache {
            inner: Mutex::new(Inner::default()),
            max_bytes: c.page_bytes(),
            ttl: Duration::from_secs(c.page_ttl_secs),
            cache_control: HeaderValue::from_str(&format!(
                "public, max-age=0, s-maxage={}",
                c.s_maxage_secs
            ))
            .expect("digits"),
        }
    }

    /// The cache key of an anonymous page: language and canonical path.
    pub fn key(lang: Lang, path: &str) -> String {
        format!("{}|{path}", lang.code())
    }

    /// Bytes held (bodies, keys and bookkeeping).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh page for `key`: rendered at the `current` generation and within the TTL.
    pub fn get(&self, key: &str, current: u64) -> Option<Arc<Page>> {
        let inner = self.lock();
        let e = inner.map.get(key)?;
        (e.page.generation == current && e.page.at.elapsed() < self.ttl).then(|| e.page.clone())
    }

    /// Keep `page` (unless it alone is over the budget); the oldest pages go to make room.
    pub fn put(&self, key: String, page: Arc<Page>) {
        let cost = page.cost(&key);
        if cost > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.map.remove(&key) {
            inner.bytes -= old.page.cost(&key);
        }
        while inner.bytes + cost > self.max_bytes {
            let Some((k, seq)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&k).is_some_and(|e| e.seq == seq)
                && let Some(e) = inner.map.remove(&k)
            {
                inner.bytes -= e.page.cost(&k);
            }
        }
        inner.seq += 1;
        let seq = inner.seq;
        inner.bytes += cost;
        inner.order.push_back((key.clone(), seq));
        inner.map.insert(key, Entry { page, seq });
        // Replaced keys leave stale order entries: compact when they dominate.
        if inner.order.len() > 2 * inner.map.len() + 64 {
            let Inner { map, order, .. } = &mut *inner;
            order.retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    /// The answer for an anonymous page: `304` when the client (or CDN) holds this version,
    /// else the page; `hit` says whether it came from memory (`x-soko-cache`).
    pub fn respond(&self, page: &Page, request: &HeaderMap, hit: bool, shared: Shared) -> Response {
        let matches = request
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|t| t == "*" || t.as_bytes() == page.etag.as_bytes());
        let mut resp = if matches {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut r = page.body.clone().into_response();
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        };
        let h = resp.headers_mut();
        h.insert(ETAG, page.etag.clone());
        h.insert(CACHE_CONTROL, self.cache_control.clone());
        h.append(VARY, HeaderValue::from_static("cookie"));
        h.insert(
            "x-soko-cache",
            HeaderValue::from_static(if hit { "hit" } else { "miss" }),
        );
        resp.extensions_mut().insert(shared);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(mb_bytes: usize) -> PageCache {
        let mut c = PageCache::new(&crate::config::cache::Cache::default());
        c.max_bytes = mb_bytes;
        c
    }

    fn page(n: usize) -> Arc<Page> {
        Arc::new(Page::new("x".repeat(n), 0, 7))
    }

    #[test]
    fn stays_within_its_budget_and_drops_the_oldest_first() {
        let c = cache(3 * (1000 + 3 + OVERHEAD));
        for k in ["a|1", "b|2", "c|3", "d|4"] {
            c.put(k.into(), page(1000));
            assert!(c.bytes() <= c.max_bytes);
        }
        assert!(!c.lock().map.contains_key("a|1"));
        assert!(c.lock().map.contains_key("d|4"));
        // Replacing a key does not count it twice.
        for _ in 0..100 {
            c.put("d|4".into(), page(1000));
        }
        assert!(c.bytes() <= c.max_bytes);
        assert!(c.lock().order.len() < 100);
        // A page over the whole budget is not kept.
        c.put("e|5".into(), page(10_000));
        assert!(!c.lock().map.contains_key("e|5"));
    }

    #[test]
    fn a_page_of_an_older_generation_is_not_served() {
        let c = cache(1 << 20);
        c.put("a|1".into(), page(10));
        assert!(c.get("a|1", 7).is_some());
        assert!(c.get("a|1", 8).is_none());
        // ... nor one older than the TTL.
        let mut c = cache(1 << 20);
        c.ttl = Duration::ZERO;
        c.put("a|1".into(), page(10));
        assert!(c.get("a|1", 7).is_none());
    }
}
