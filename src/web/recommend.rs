//! Serving recommendations, for the pages and the JSON API: reads of the precomputed tables
//! (`store::recommend`) and the cheap part of the maths (the "for you" vote over at most 50
//! history items x 20 neighbours). Nothing here touches `events`.

use std::time::Instant;

use sqlx::MySqlPool;

use crate::market::recommend::{self as maths, Params, Scored, Seen, Source};
use crate::store::catalogue::Card;
use crate::store::{self, recommend as db};

/// Items shown in a strip.
pub const STRIP: u32 = 8;
/// History items a "for you" list is built from.
const HISTORY: u32 = 50;

/// A recommended product with why.
pub struct Pick {
    pub card: Card,
    pub score: f64,
    pub source: Source,
}

fn picks(cards: Vec<Card>, scored: &[Scored]) -> Vec<Pick> {
    cards
        .into_iter()
        .filter_map(|card| {
            let s = scored.iter().find(|s| s.id == card.id)?;
            Some(Pick {
                score: s.score,
                source: s.source,
                card,
            })
        })
        .collect()
}

fn log_serve(what: &'static str, started: Instant, n: usize) {
    let labels = format!(r#"what="serve_{what}""#);
    crate::metrics::observe_with("recommend", &labels, started.elapsed(), false);
    tracing::debug!(
        recommend.serve_ms = started.elapsed().as_secs_f64() * 1000.0,
        what,
        items = n,
        "recommendations served"
    );
}

/// Trending lists are reused this long while the catalogue generation stands (every write a
/// page shows bumps it, the trending refresh too): a product page whose own neighbours are few
/// fills its strip from them, and the feed shows one, so without this each page asked MySQL
/// for the same lists. Writes made on another node show this much later.
const TRENDING_REUSE: std::time::Duration = std::time::Duration::from_secs(5);

type TrendingKey = (usize, Option<u64>, u32);
type TrendingList = std::sync::Arc<Vec<(u64, f64)>>;
/// (generation, when read, the list).
type TrendingEntry = (u64, Instant, TrendingList);

/// `db::trending`, through a cache keyed by database, category and limit.
async fn trending_list(
    db: &MySqlPool,
    category: Option<u64>,
    limit: u32,
) -> Result<TrendingList, store::Error> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static CACHE: LazyLock<Mutex<HashMap<TrendingKey, TrendingEntry>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    let counter = store::generation::counter(db);
    let generation = counter.load(std::sync::atomic::Ordering::Acquire);
    let key = (std::sync::Arc::as_ptr(&counter) as usize, category, limit);
    let lock = || CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((g, at, list)) = lock().get(&key)
        && *g == generation
        && at.elapsed() < TRENDING_REUSE
    {
        return Ok(list.clone());
    }
    let list = std::sync::Arc::new(db::trending(db, category, limit).await?);
    let mut cache = lock();
    if cache.len() >= 4096 {
        cache.clear();
    }
    cache.insert(key, (generation, Instant::now(), list.clone()));
    Ok(list)
}

/// Trending public products (in a category, when given).
pub async fn trending(
    db: &MySqlPool,
    category: Option<u64>,
    limit: u32,
) -> Result<Vec<Pick>, store::Error> {
    let started = Instant::now();
    let scored: Vec<Scored> = trending_list(db, category, limit)
        .await?
        .iter()
        .map(|&(id, score)| Scored {
            id,
            score,
            source: Source::Popular,
        })
        .collect();
    let ids: Vec<u64> = scored.iter().map(|s| s.id).collect();
    let out = picks(db::public_cards(db, &ids).await?, &scored);
    log_serve("trending", started, out.len());
    Ok(out)
}

/// "Buyers also viewed" for a product: its precomputed neighbours (co-engagement blended with
/// visual similarity); cold start tops up with its category's trending products, then
/// everything trending.
pub async fn for_product(
    db: &MySqlPool,
    product_id: u64,
    category: Option<u64>,
    limit: u32,
) -> Result<Vec<Pick>, store::Error> {
    let started = Instant::now();
    let primary: Vec<Scored> = db::neighbours(db, product_id, limit)
        .await?
        .into_iter()
        .map(|(id, score, source)| Scored {
            id,
            score,
            source: Source::parse(&source).unwrap_or(Source::Collab),
        })
        .collect();
    let mut scored = primary;
    if scored.len() < limit as usize {
        let mut fallback: Vec<u64> = Vec::new();
        if category.is_some() {
            fallback.extend(
                trending_list(db, category, limit)
                    .await?
                    .iter()
                    .map(|t| t.0),
            );
        }
        fallback.extend(trending_list(db, None, limit).await?.iter().map(|t| t.0));
        scored = maths::fill(scored, &fallback, &[product_id], limit as usize);
    }
    let ids: Vec<u64> = scored.iter().map(|s| s.id).collect();
    let out = picks(db::public_cards(db, &ids).await?, &scored);
    log_serve("product", started, out.len());
    Ok(out)
}

/// "Recommended for you" from the history of `actors` (the account and the browser's visitor
/// cookie: after login both count); a visitor with no usable history gets trending.
pub async fn for_actors(
    db: &MySqlPool,
    user_id: Option<u64>,
    visitor: Option<&str>,
    limit: u32,
) -> Result<Vec<Pick>, store::Error> {
    let started = Instant::now();
    let mut actors = Vec::new();
    if let Some(u) = user_id {
        actors.extend(db::actor_key(Some(u), ""));
    }
    if let Some(v) = visitor.filter(|v| !v.is_empty()) {
        actors.extend(db::actor_key(None, v));
    }
    let history: Vec<Seen> = db::history(db, &actors, HISTORY)
        .await?
        .into_iter()
        .map(|h| Seen {
            item: h.product_id,
            weight: h.weight,
            age_secs: h.age_secs,
            contacted: h.contacted,
        })
        .collect();
    let contacted: Vec<u64> = history
        .iter()
        .filter(|h| h.contacted)
        .map(|h| h.item)
        .collect();
    let items: Vec<u64> = history.iter().map(|h| h.item).collect();
    let lists = db::neighbour_lists(db, &items).await?;
    // Ask for extra: some may have turned private since the lists were computed.
    let voted = maths::for_you(&history, &lists, limit as usize * 2, &Params::default());
    let scored: Vec<Scored> = voted
        .into_iter()
        .map(|(id, score)| Scored {
            id,
            score,
            source: Source::Collab,
        })
        .collect();
    let ids: Vec<u64> = scored.iter().map(|s| s.id).collect();
    let mut out = picks(db::public_cards(db, &ids).await?, &scored);
    out.truncate(limit as usize);
    if out.is_empty() {
        out = trending(db, None, limit * 2)
            .await?
            .into_iter()
            .filter(|p| !contacted.contains(&p.card.id))
            .take(limit as usize)
            .collect();
    }
    log_serve("for_you", started, out.len());
    Ok(out)
}
