//! The recommendations worker: folds new `events` into the visitor x item matrix and recomputes
//! the neighbour lists of the products they touched, in one transaction with the watermark (the
//! last event id processed). A crash before the commit leaves nothing behind and the batch is
//! simply done again, so the worker is idempotent and resumes where it stopped. Trending is
//! refreshed whole every few minutes; every neighbour list is refreshed on a longer period, so
//! lists of products that merely co-occur with changed ones catch up too.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use sqlx::{MySqlConnection, MySqlPool};
use tokio_util::sync::CancellationToken;

use super::run_loop::{Job, Outcome, Pace, run_loop};
use crate::market::recommend::{self as maths, EventKind, Matrix, Params};
use crate::store::{self, recommend as db};

/// The name in `worker_heartbeats`.
pub const WORKER: &str = "recommendations";
const HEARTBEAT: Duration = Duration::from_secs(30);
/// Collaborative candidates kept per product before the blend picks the best.
const CANDIDATES: usize = 50;
/// Size of the cold-start pool searched for visual neighbours.
const VISUAL_POOL: u32 = 500;
/// Products per transaction in the full refresh.
const FULL_CHUNK: u32 = 2000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("the batch was aborted before its commit")]
    Aborted,
    #[error("{0}")]
    Compute(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Store(e.into())
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub params: Params,
    /// Events per incremental batch (one transaction).
    pub batch: u32,
    /// How often an idle worker looks for new events.
    pub interval: Duration,
    pub trending_every: Duration,
    pub full_every: Duration,
    /// Actors with more items than this are ignored (crawlers that escaped the bot filter).
    pub max_row: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            params: Params::default(),
            batch: 20_000,
            interval: Duration::from_secs(10),
            trending_every: Duration::from_secs(300),
            full_every: Duration::from_secs(24 * 3600),
            max_row: 1000,
        }
    }
}

impl Settings {
    pub fn from_config(c: &crate::config::recommend::Recommendations) -> Self {
        let d = Settings::default();
        Settings {
            params: Params {
                trending_half_life_secs: f64::from(c.trending_half_life_hours.get()) * 3600.0,
                neighbours: c.neighbours.get() as usize,
                min_support: c.min_support.get(),
                ..d.params
            },
            interval: Duration::from_secs(c.interval_secs.get()),
            trending_every: Duration::from_secs(c.trending_refresh_secs.get()),
            full_every: Duration::from_secs(c.full_refresh_hours.get().saturating_mul(3600)),
            ..d
        }
    }
}

/// One incremental batch; how many events it folded in (0: nothing new).
pub async fn step(pool: &MySqlPool, s: &Settings) -> Result<usize, Error> {
    step_inner(pool, s, false).await
}

/// A batch that does all its work and then rolls back instead of committing, as a crash would:
/// for the resume tests.
pub async fn step_then_abort(pool: &MySqlPool, s: &Settings) -> Result<usize, Error> {
    step_inner(pool, s, true).await
}

async fn step_inner(pool: &MySqlPool, s: &Settings, abort: bool) -> Result<usize, Error> {
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    let last = db::lock_state(&mut tx, "events").await?;
    let events = db::events_after(&mut tx, last, s.batch).await?;
    let Some(max_id) = events.last().map(|e| e.id) else {
        return Ok(0);
    };
    // (actor, product) -> (added weight, contacted, latest time)
    let mut deltas: BTreeMap<(String, u64), (f64, bool, i64)> = BTreeMap::new();
    for e in &events {
        let (Some(kind), Some(actor)) = (
            EventKind::parse(&e.kind),
            db::actor_key(e.user_id, &e.visitor),
        ) else {
            continue;
        };
        let d = deltas
            .entry((actor, e.product_id))
            .or_insert((0.0, false, 0));
        d.0 += kind.weight();
        d.1 |= kind == EventKind::WhatsappStart;
        d.2 = d.2.max(e.at_ms);
    }
    let mut actors: Vec<String> = deltas.keys().map(|(a, _)| a.clone()).collect();
    actors.dedup();
    let old: HashMap<(String, u64), f64> = db::rows_of(&mut tx, &actors)
        .await?
        .into_iter()
        .map(|c| ((c.actor, c.product_id), c.weight))
        .collect();
    let mut norm_deltas: BTreeMap<u64, (f64, u32)> = BTreeMap::new();
    let mut cells = Vec::with_capacity(deltas.len());
    for ((actor, product), (add, contacted, at)) in deltas {
        let before = old.get(&(actor.clone(), product)).copied();
        let after = before.unwrap_or(0.0) + add;
        let p = &s.params;
        let n = norm_deltas.entry(product).or_default();
        n.0 += p.cell(after).powi(2) - p.cell(before.unwrap_or(0.0)).powi(2);
        n.1 += u32::from(before.is_none());
        cells.push(db::CellDelta {
            actor,
            product_id: product,
            add,
            contacted,
            at_ms: at,
        });
    }
    db::add_cells(&mut tx, &cells).await?;
    let norms: Vec<(u64, f64, u32)> = norm_deltas.iter().map(|(k, v)| (*k, v.0, v.1)).collect();
    db::add_norms(&mut tx, &norms).await?;
    let items: Vec<u64> = norm_deltas.keys().copied().collect();
    recompute(&mut tx, &items, s).await?;
    db::set_state(&mut tx, "events", max_id).await?;
    // Under a lease, only while it is still this tenure's (the check holds until the commit).
    if let Some(fence) = super::lease::current() {
        store::leases::check(&mut tx, &fence).await?;
    }
    if abort {
        drop(tx);
        return Err(Error::Aborted);
    }
    tx.commit().await?;
    crate::store::generation::bump(pool);
    crate::metrics::observe_with("recommend", r#"what="compute""#, started.elapsed(), false);
    tracing::info!(
        recommend.compute_ms = started.elapsed().as_millis() as u64,
        events = events.len(),
        products = items.len(),
        watermark = max_id,
        "recommendations updated"
    );
    Ok(events.len())
}

/// Recompute and replace the neighbour lists of `items` from the matrix in the database.
pub async fn recompute(
    conn: &mut MySqlConnection,
    items: &[u64],
    s: &Settings,
) -> Result<(), Error> {
    let actors = db::actors_of(conn, items).await?;
    let cells = db::rows_of(conn, &actors).await?;
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut m = Matrix::new();
    for c in cells {
        let next = ids.len() as u32;
        let a = *ids.entry(c.actor).or_insert(next);
        m.add(a, c.product_id, c.weight);
    }
    let all: Vec<u64> = m.items().collect();
    let norms = db::norms(conn, &all).await?;
    let wide = Params {
        neighbours: CANDIDATES.max(s.params.neighbours),
        ..s.params.clone()
    };
    // The maths on the background pool (lowered threads, `background:`), off the runtime.
    let (todo, max_row) = (items.to_vec(), s.max_row);
    let collab: HashMap<u64, Vec<(u64, f64)>> = on_background(move || {
        todo.iter()
            .map(|i| {
                let n = m.neighbours(
                    *i,
                    |j| norms.get(&j).copied().unwrap_or(0.0),
                    max_row,
                    &wide,
                );
                (*i, n)
            })
            .collect()
    })
    .await?;
    let visual = visual_neighbours(conn, items, &collab, s.params.neighbours).await?;
    let mut rows = Vec::new();
    for i in items {
        let c = collab.get(i).map(Vec::as_slice).unwrap_or(&[]);
        let v = visual.get(i).map(Vec::as_slice).unwrap_or(&[]);
        for b in maths::blend(c, v, &s.params) {
            rows.push(db::Neighbour {
                product_id: *i,
                neighbour_id: b.id,
                score: b.score,
                source: b.source.as_str(),
            });
        }
    }
    db::replace_neighbours(conn, items, &rows).await?;
    Ok(())
}

/// Visual neighbours from `product_embeddings` by brute-force cosine: over an item's
/// collaborative candidates when it has some (the blend re-ranks them), else over a cold-start
/// pool (trending products and the item's category). No embeddings: empty, and the blend is
/// collaborative alone. Kept small so Milvus's ANN search can take its place.
async fn visual_neighbours(
    conn: &mut MySqlConnection,
    items: &[u64],
    collab: &HashMap<u64, Vec<(u64, f64)>>,
    k: usize,
) -> Result<HashMap<u64, Vec<(u64, f64)>>, Error> {
    let Some(profile) = db::embedding_profile(conn).await? else {
        return Ok(HashMap::new());
    };
    let cold: Vec<u64> = items
        .iter()
        .copied()
        .filter(|i| collab.get(i).is_none_or(Vec::is_empty))
        .collect();
    let pool = if cold.is_empty() {
        Vec::new()
    } else {
        db::visual_pool(conn, &cold, VISUAL_POOL).await?
    };
    let mut needed: Vec<u64> = items.to_vec();
    needed.extend(collab.values().flatten().map(|(id, _)| *id));
    needed.extend(&pool);
    needed.sort_unstable();
    needed.dedup();
    let vectors = db::embeddings(conn, &profile, &needed).await?;
    let (items, collab) = (items.to_vec(), collab.clone());
    on_background(move || visual_from(&items, &collab, &pool, &vectors, k)).await
}

/// Run `work` on the background pool and wait for it.
async fn on_background<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    let pool = crate::background::current_pool();
    tokio::task::spawn_blocking(move || pool.install(work))
        .await
        .map_err(|e| Error::Compute(format!("recommendation maths panicked: {e}")))
}

/// The brute-force cosine part of [`visual_neighbours`].
fn visual_from(
    items: &[u64],
    collab: &HashMap<u64, Vec<(u64, f64)>>,
    pool: &[u64],
    vectors: &HashMap<u64, Vec<f32>>,
    k: usize,
) -> HashMap<u64, Vec<(u64, f64)>> {
    let mut out = HashMap::new();
    for i in items {
        let Some(target) = vectors.get(i) else {
            continue;
        };
        let ids: Vec<u64> = match collab.get(i) {
            Some(c) if !c.is_empty() => c.iter().map(|(id, _)| *id).collect(),
            _ => pool.to_vec(),
        };
        let candidates: Vec<(u64, &[f32])> = ids
            .iter()
            .filter(|id| *id != i)
            .filter_map(|id| vectors.get(id).map(|v| (*id, v.as_slice())))
            .collect();
        out.insert(*i, maths::visual_neighbours(target, &candidates, k));
    }
    out
}

/// Recompute trending from the events of the last ten half-lives; how many products scored.
pub async fn refresh_trending(pool: &MySqlPool, s: &Settings) -> Result<usize, Error> {
    let started = Instant::now();
    let hl = s.params.trending_half_life_secs;
    let buckets = db::trending_buckets(pool, (hl * 10.0) as u64).await?;
    let mut scores: BTreeMap<u64, f64> = BTreeMap::new();
    for (product, kind, age, count) in buckets {
        if let Some(k) = EventKind::parse(&kind) {
            *scores.entry(product).or_default() +=
                count as f64 * maths::trending_score(&[(k, age)], hl);
        }
    }
    let rows: Vec<(u64, f64)> = scores.into_iter().collect();
    db::replace_trending(pool, &rows, super::lease::current().as_ref()).await?;
    tracing::info!(
        recommend.compute_ms = started.elapsed().as_millis() as u64,
        products = rows.len(),
        "trending refreshed"
    );
    Ok(rows.len())
}

/// Recompute every engaged product's neighbour list, a chunk per transaction.
pub async fn full_refresh(pool: &MySqlPool, s: &Settings) -> Result<usize, Error> {
    let started = Instant::now();
    let (mut after, mut done) = (0u64, 0usize);
    loop {
        let chunk = db::engaged_items(pool, after, FULL_CHUNK).await?;
        let Some(last) = chunk.last().copied() else {
            break;
        };
        let mut tx = pool.begin().await?;
        recompute(&mut tx, &chunk, s).await?;
        if let Some(fence) = super::lease::current() {
            store::leases::check(&mut tx, &fence).await?;
        }
        tx.commit().await?;
        crate::store::generation::bump(pool);
        (after, done) = (last, done + chunk.len());
    }
    let mut tx = pool.begin().await?;
    let last = db::lock_state(&mut tx, "full").await?;
    db::set_state(&mut tx, "full", last).await?;
    tx.commit().await?;
    tracing::info!(
        recommend.compute_ms = started.elapsed().as_millis() as u64,
        products = done,
        "all neighbour lists refreshed"
    );
    Ok(done)
}

/// Drain the new events, then trending and the full refresh when due. What a loop turn did.
pub async fn tick(pool: &MySqlPool, s: &Settings) -> Result<String, Error> {
    let mut events = 0;
    loop {
        let n = step(pool, s).await?;
        events += n;
        if n < s.batch as usize {
            break;
        }
    }
    let states = db::states(pool).await?;
    let due = |name: &str, every: Duration| {
        states
            .iter()
            .find(|(n, _, _)| n == name)
            .is_none_or(|(_, _, age)| age.is_none_or(|a| a < 0 || a as u64 >= every.as_secs()))
    };
    let mut detail = format!("{events} events folded in");
    if due("trending", s.trending_every) {
        let n = refresh_trending(pool, s).await?;
        detail.push_str(&format!("; trending over {n} products"));
    }
    if due("full", s.full_every) {
        let n = full_refresh(pool, s).await?;
        detail.push_str(&format!("; {n} neighbour lists refreshed"));
    }
    Ok(detail)
}

/// Run until `stop`. Database errors (MySQL down, migrations not run yet) back off up to 60 s.
pub async fn run(pool: MySqlPool, s: Settings, stop: CancellationToken) {
    let pace = Pace {
        name: WORKER,
        label: "recommendations worker",
        idle: s.interval,
        max_backoff: Duration::from_secs(60),
        heartbeat: HEARTBEAT,
        beat_when_failing: false,
        log_recovery: true,
    };
    let job = Ticks {
        pool: pool.clone(),
        settings: s,
        detail: String::new(),
    };
    run_loop(pace, pool, job, stop).await;
}

/// The worker's rounds: one [`tick`] each.
struct Ticks {
    pool: MySqlPool,
    settings: Settings,
    /// What the last tick did.
    detail: String,
}

impl Job for Ticks {
    type Error = Error;

    async fn claim_and_run(&mut self) -> Result<Outcome, Error> {
        self.detail = tick(&self.pool, &self.settings).await?;
        Ok(Outcome::Idle)
    }

    fn activity(&self, _: Outcome) -> Option<String> {
        Some(self.detail.clone())
    }

    fn heartbeat(&mut self) -> String {
        self.detail.clone()
    }
}
