//! Visual discovery shared by the pages and the API: search by photo and similar items. Both
//! rank in Milvus (filters evaluated there) and then read the cards from MySQL, keeping only
//! products that are public *now* (the index may lag a hide by a second). When Milvus or the
//! models are unavailable they answer `Unavailable` (503 + Retry-After); nothing else on the
//! storefront depends on them.

use std::time::{Duration, Instant};

use crate::imaging::codec;
use crate::store::catalogue::Card;
use crate::store::{self, vector_sync};
use crate::vectors::{Filter, Hit, VectorStore};

use super::AppState;

/// Seconds a client should wait before trying a visual endpoint again.
pub const RETRY_AFTER_SECS: u64 = 10;
/// A search may not hold a page longer than this (Milvus restarting, a reconnect timing out).
const SEARCH_TIMEOUT: Duration = Duration::from_secs(4);
/// Seconds to wait when every photo-search slot was taken (a slot frees in ~100 ms).
pub const BUSY_RETRY_AFTER_SECS: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum VisualError {
    #[error("visual search is unavailable right now: {0}")]
    Unavailable(String),
    /// Every photo-search slot is taken (`limits.photo_search_concurrent`): refused at once.
    #[error("every photo-search slot is busy; try again in a moment")]
    Busy,
    #[error("{0}")]
    BadImage(String),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// A result: the card, the raw inner-product score and a similarity in percent.
#[derive(Debug, Clone)]
pub struct Scored {
    pub card: Card,
    pub score: f32,
    pub similarity: u8,
}

/// Time spent, for the response (and the latency log).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    pub embed_ms: u64,
    pub search_ms: u64,
}

fn percent(x: f32) -> u8 {
    (x.clamp(0.0, 1.0) * 100.0).round() as u8
}

/// Cards for the hits, in rank order, public only; `similarity` maps a score to [0, 1].
async fn cards(
    s: &AppState,
    hits: &[Hit],
    similarity: impl Fn(f32) -> f32,
) -> Result<Vec<Scored>, VisualError> {
    let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
    let cards = vector_sync::public_cards(&s.db, &ids).await?;
    Ok(cards
        .into_iter()
        .filter_map(|card| {
            let hit = hits.iter().find(|h| h.id == card.id)?;
            Some(Scored {
                similarity: percent(similarity(hit.score)),
                score: hit.score,
                card,
            })
        })
        .collect())
}

/// After a failure the index is skipped this long (503 at once, no connection timeout each).
const DOWN_FOR: Duration = Duration::from_secs(3);

async fn search(
    store: &VectorStore,
    vector: &[f32],
    filter: &Filter,
    limit: u32,
) -> Result<Vec<Hit>, VisualError> {
    guarded_search(store, vector, &filter.expr(), limit).await
}

/// A search behind the breaker: skipped while the index is marked down; a timeout or an error
/// of the server (unreachable, unavailable) marks it down for [`DOWN_FOR`]; an error of this
/// request (a bad expression, a wrong parameter: `vectors::Error::trips_breaker`) fails this
/// request alone. `expr`: a Milvus expression as [`Filter::expr`] writes them.
pub async fn guarded_search(
    store: &VectorStore,
    vector: &[f32],
    expr: &str,
    limit: u32,
) -> Result<Vec<Hit>, VisualError> {
    if store.marked_down() {
        return Err(VisualError::Unavailable("the vector index is down".into()));
    }
    let failed = |message: &str| {
        store.mark_down(DOWN_FOR);
        Err(VisualError::Unavailable(message.into()))
    };
    let search = store.search_expr(vector, expr, limit, store.nprobe);
    match tokio::time::timeout(SEARCH_TIMEOUT, search).await {
        Ok(Ok(hits)) => Ok(hits),
        Ok(Err(e)) if !e.trips_breaker() => {
            tracing::warn!("visual search refused (the breaker stays closed): {e}");
            Err(VisualError::Unavailable(
                "the vector index refused this search".into(),
            ))
        }
        Ok(Err(e)) => {
            tracing::warn!("visual search: {e}");
            failed("the vector index is not answering")
        }
        Err(_) => failed("the vector index is slow to answer"),
    }
}

/// Products that look like the photo in `bytes` (JPEG, PNG or WebP), best first. The query
/// vector is [unit(image), 0], so a product's score is sqrt(0.6) cos(image); the similarity shown
/// is that cosine.
pub async fn by_photo(
    s: &AppState,
    bytes: Vec<u8>,
    filter: &Filter,
    limit: u32,
) -> Result<(Vec<Scored>, Timing), VisualError> {
    // During a profile change the previous, complete collection answers, with its own model.
    let store = s.vectors.serving();
    let started = Instant::now();
    // A slot or 503 at once: a queue of waiting searches would hold every upload in memory.
    let permit = s.settings.guard.photo_slot().ok_or(VisualError::Busy)?;
    let max_pixels = s.settings.guard.query_pixels;
    let models = store.clone();
    let vector = tokio::task::spawn_blocking(move || {
        // The slot is held until the decode and the embedding are done, even if the client
        // has gone away meanwhile.
        let _permit = permit;
        // A bad photo is the client's error (422) whether or not the models are loaded yet.
        let decoded = codec::decode_within(&bytes, max_pixels)
            .map_err(|e| VisualError::BadImage(e.to_string()))?;
        let embedder = models
            .embedder()
            .ok_or_else(|| VisualError::Unavailable("the image model is still loading".into()))?;
        embedder
            .query_image(&decoded.image.to_rgb8())
            .map_err(|e| VisualError::BadImage(e.to_string()))
    })
    .await
    .map_err(|e| VisualError::Unavailable(format!("embedding failed: {e}")))??;
    crate::metrics::observe_with("embed", r#"what="query_image""#, started.elapsed(), false);
    let embed_ms = started.elapsed().as_millis() as u64;
    let started = Instant::now();
    let hits = search(&store, &vector, filter, limit).await;
    crate::metrics::observe_with(
        "vector_search",
        r#"what="photo""#,
        started.elapsed(),
        hits.is_err(),
    );
    let hits = hits?;
    let search_ms = started.elapsed().as_millis() as u64;
    let image_weight = crate::embed::IMAGE_WEIGHT.sqrt();
    let results = cards(s, &hits, |score| score / image_weight).await?;
    tracing::info!(
        embed_ms,
        search_ms,
        results = results.len(),
        "visual.search_by_photo"
    );
    Ok((
        results,
        Timing {
            embed_ms,
            search_ms,
        },
    ))
}

/// The nearest public neighbours of a public product by its stored hybrid vector (itself
/// excluded). The score is 0.6 cos(image) + 0.4 cos(text), shown as the similarity.
/// The neighbours of a product already known to be public, only when a recent answer is
/// cached (no vector search): `None` otherwise.
pub async fn similar_cached(
    s: &AppState,
    id: u64,
    limit: u32,
) -> Result<Option<Vec<Scored>>, VisualError> {
    let Some(hits) = s.vectors.serving().neighbours.get(id, limit) else {
        return Ok(None);
    };
    Ok(Some(cards(s, &hits, |score| score).await?))
}

pub async fn similar(
    s: &AppState,
    id: u64,
    limit: u32,
) -> Result<(Vec<Scored>, Timing), VisualError> {
    if crate::store::catalogue::public_product(&s.db, id)
        .await?
        .is_none()
    {
        return Err(VisualError::NotFound);
    }
    let store = s.vectors.serving();
    // Neighbour lists change slowly: a recent answer serves (see `vectors::neighbours`).
    let looked_up = Instant::now();
    if let Some(hits) = store.neighbours.get(id, limit) {
        crate::metrics::observe_with(
            "vector_search",
            r#"what="similar_cached""#,
            looked_up.elapsed(),
            false,
        );
        let results = cards(s, &hits, |score| score).await?;
        return Ok((results, Timing::default()));
    }
    let profile = store
        .embedder()
        .map(|e| e.profile().name)
        .ok_or_else(|| VisualError::Unavailable("the image model is still loading".into()))?;
    let Some(vector) = vector_sync::embedding(&s.db, profile, id).await? else {
        // Not embedded yet (just created): no neighbours to show for now.
        return Ok((Vec::new(), Timing::default()));
    };
    let started = Instant::now();
    let filter = Filter {
        exclude: Some(id),
        ..Filter::default()
    };
    let hits = search(&store, &vector, &filter, limit).await;
    crate::metrics::observe_with(
        "vector_search",
        r#"what="similar""#,
        started.elapsed(),
        hits.is_err(),
    );
    let hits = hits?;
    store.neighbours.put(id, limit, &hits);
    let search_ms = started.elapsed().as_millis() as u64;
    let results = cards(s, &hits, |score| score).await?;
    tracing::info!(search_ms, results = results.len(), "visual.similar_items");
    Ok((
        results,
        Timing {
            embed_ms: 0,
            search_ms,
        },
    ))
}
