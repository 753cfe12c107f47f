//! The catalogue generation: a counter every write that changes what an anonymous storefront
//! page shows bumps (products, photos, sellers, categories, reviews, moderation, restores and
//! bulk loads, recommendation runs) — the same places that feed `vector_outbox`. The page
//! cache (`web::page_cache`) keeps a page only while the generation it was rendered at is
//! current, so an edit shows at once on this node.
//!
//! One counter per database (host, port and name), so that anything in the process writing
//! through any pool to the same database (a worker, a CLI command in-process, a test) counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use sqlx::MySqlPool;

static COUNTERS: LazyLock<Mutex<HashMap<String, Arc<AtomicU64>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The counter of `db`'s database (the same one for every pool to it); the web state keeps
/// it, so pages read it without this lookup.
pub fn counter(db: &MySqlPool) -> Arc<AtomicU64> {
    let o = db.connect_options();
    let key = format!(
        "{}:{}:{:?}/{}",
        o.get_host(),
        o.get_port(),
        o.get_socket(),
        o.get_database().unwrap_or_default()
    );
    COUNTERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_insert_with(|| Arc::new(AtomicU64::new(1)))
        .clone()
}

/// Something an anonymous page shows has changed (call after the write, or its commit).
pub fn bump(db: &MySqlPool) {
    counter(db).fetch_add(1, Ordering::AcqRel);
}
