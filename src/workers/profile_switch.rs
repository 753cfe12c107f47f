//! Changing the embedding profile (another model, another dimension) without a visual-search
//! outage. The new profile has a collection of its own (`<base>_<profile>`), empty at first:
//! reconciliation queues every public product and the worker embeds them into it. Meanwhile the
//! previous profile's collection, if it is complete and its models load, keeps answering
//! searches (with its own model for photo queries); once the new collection holds every public
//! product and nothing is queued, searches switch over. The old collection is kept, so switching
//! back is a restart with the old profile (its stored vectors are still in MySQL).

use std::sync::Arc;

use sqlx::MySqlPool;

use super::reconcile;
use super::vector_sync::Error;
use crate::config::embed::{Embed, ProfileName};
use crate::embed::Embedder;
use crate::store::vector_sync as outbox;
use crate::vectors::VectorStore;

/// At start, with `current`'s models loaded: if `current`'s collection is incomplete and a
/// previous profile's is usable, serve from that one until the switch. Returns whether it does.
pub async fn prepare(cfg: &Embed, db: &MySqlPool, current: &VectorStore) -> Result<bool, Error> {
    let Some(name) = current.embedder().map(|e| e.profile().name) else {
        return Ok(false);
    };
    let report = reconcile::run_once(db, current).await?;
    if report.in_index >= report.public_products {
        return Ok(false);
    }
    let Some(old) = outbox::profiles(db)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p != name)
        .find_map(|p| serde_json::from_value::<ProfileName>(serde_json::Value::String(p)).ok())
    else {
        return Ok(false);
    };
    let profile = old.profile();
    let previous = current.sibling(profile.name, profile.dim() as u32);
    match previous.health().await {
        Ok(h) if h.loaded => {}
        _ => return Ok(false),
    }
    let old_cfg = Embed {
        profile: old,
        ..cfg.clone()
    };
    let loaded = tokio::task::spawn_blocking(move || Embedder::load(&old_cfg)).await;
    let Ok(Ok(embedder)) = loaded else {
        tracing::warn!(
            previous = profile.name,
            "the previous profile's models do not load: visual search covers only what is re-embedded until the new collection is full"
        );
        return Ok(false);
    };
    previous.set_embedder(Arc::new(embedder));
    tracing::info!(
        from = %previous.collection,
        to = %current.collection,
        missing = report.public_products - report.in_index,
        "profile change: serving from the previous collection while the new one fills"
    );
    current.serve_previous(Arc::new(previous));
    Ok(true)
}

/// Switch over once the new collection holds every public product and nothing is queued.
/// Returns whether searches are now served by `current`.
pub async fn try_switch(db: &MySqlPool, current: &VectorStore) -> Result<bool, Error> {
    let Some(previous) = current.previous() else {
        return Ok(true);
    };
    if outbox::backlog(db).await?.rows > 0 {
        return Ok(false);
    }
    let report = reconcile::run_once(db, current).await?;
    if report.requeued == 0 && report.pending == 0 && report.in_index == report.public_products {
        current.switch_over();
        tracing::info!(from = %previous.collection, to = %current.collection, products = report.in_index, "profile change complete: searches switched to the new collection");
        return Ok(true);
    }
    Ok(false)
}
