//! The vector-sync worker (the seed's "heartbeat sync worker"): drains `vector_outbox`, which
//! every product write fills in its own transaction. For each claimed product it reads the
//! current state from MySQL (not the row's `op`: the latest state wins), embeds it when its
//! inputs changed (stored in `product_embeddings`, the durable source of the index), and
//! upserts it into Milvus, or deletes it there when the product is no longer public. Rows are
//! deleted only after Milvus accepted the batch, so a crash anywhere repeats work, never loses
//! it; every step is idempotent. Failures count an attempt and back off (2 s doubling to 60 s:
//! a Milvus outage drains within a minute of its end). A heartbeat row says it is alive.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use super::run_loop::{Job, Outcome, Pace, run_loop};
use crate::background::Pacer;
use crate::config::background::Background;
use crate::embed::Embedder;
use crate::imaging::codec;
use crate::objects::images::ImageStore;
use crate::store;
use crate::store::vector_sync::{self as outbox, NewEmbedding, SyncRow};
use crate::vectors::{self, Point, VectorStore};

/// The name in `worker_heartbeats`.
pub const WORKER: &str = "vector-sync";
/// Outbox rows claimed at a time: one Milvus upsert per batch.
pub const BATCH: u32 = 64;
/// How long claimed rows stay out of reach (a batch that embeds 64 photos takes a few seconds).
const LEASE: Duration = Duration::from_secs(60);
const IDLE: Duration = Duration::from_millis(500);
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Reconciliation: at start, then this often.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(600);
/// During a profile change: how often an idle worker checks whether the new collection is full.
const SWITCH_CHECK: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Vectors(#[from] vectors::Error),
}

/// Wait before attempt `attempts + 1`: 2 s, doubling, at most 60 s.
pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs((2u64 << attempts.min(5)).min(60))
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchStats {
    /// Outbox rows claimed.
    pub claimed: usize,
    pub upserted: usize,
    pub deleted: usize,
    /// Products whose vectors were computed (the others reused their stored vector).
    pub embedded: usize,
    pub failed: usize,
}

/// The worker's parts: MySQL, the profile's collection, the models, the photo files.
#[derive(Clone)]
pub struct Syncer {
    pub db: MySqlPool,
    pub vectors: Arc<VectorStore>,
    pub embedder: Arc<Embedder>,
    /// Where the photos are (`images.store`).
    pub files: ImageStore,
}

/// SHA-256 of everything the vector depends on: the profile, the photo's content address,
/// the title and the description. Unchanged inputs are not embedded again.
pub fn inputs_sha256(profile: &str, image: Option<&str>, name: &str, description: &str) -> String {
    let mut h = Sha256::new();
    for part in [profile, image.unwrap_or(""), name, description] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The text side of a product's vector.
pub fn product_text(name: &str, description: &str) -> String {
    let description: String = description.chars().take(1000).collect();
    format!("{name}. {description}")
}

impl Syncer {
    /// Claim one batch and sync it. Tests and benchmarks drive the worker with this.
    pub async fn run_batch(&self) -> Result<BatchStats, Error> {
        self.run_batch_of(BATCH).await
    }

    /// Claim at most `limit` rows and sync them (the worker's pacer picks `limit`).
    pub async fn run_batch_of(&self, limit: u32) -> Result<BatchStats, Error> {
        let rows = outbox::claim(&self.db, limit, LEASE).await?;
        let mut stats = BatchStats {
            claimed: rows.len(),
            ..BatchStats::default()
        };
        if rows.is_empty() {
            return Ok(stats);
        }
        // Outbox rows by product: one product's several rows are settled together.
        let mut by_product: BTreeMap<u64, Vec<&outbox::OutboxRow>> = BTreeMap::new();
        for r in &rows {
            by_product.entry(r.product_id).or_default().push(r);
        }
        let ids: Vec<u64> = by_product.keys().copied().collect();
        let found: HashMap<u64, SyncRow> = outbox::sync_rows(&self.db, &ids)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let (public, gone): (Vec<u64>, Vec<u64>) = ids
            .iter()
            .partition(|id| found.get(id).is_some_and(|r| r.public));
        let (points, failed) = self.vectors_for(&public, &found, &mut stats).await?;
        let result = async {
            self.vectors.upsert(&points).await?;
            self.vectors.delete(&gone).await
        }
        .await;
        if let Err(e) = result {
            let message = e.to_string();
            for r in &rows {
                outbox::fail(&self.db, r.id, backoff(r.attempts), &message).await?;
            }
            return Err(e.into());
        }
        let mut done = Vec::new();
        for (product, product_rows) in &by_product {
            if let Some(message) = failed.get(product) {
                for r in product_rows {
                    tracing::warn!(
                        product,
                        attempt = r.attempts + 1,
                        "vector sync failed: {message}"
                    );
                    outbox::fail(&self.db, r.id, backoff(r.attempts), message).await?;
                }
                stats.failed += 1;
            } else {
                done.extend(product_rows.iter().map(|r| r.id));
            }
        }
        outbox::complete(&self.db, &done).await?;
        stats.upserted = points.len();
        stats.deleted = gone.len();
        Ok(stats)
    }

    /// The Milvus points of the public products: stored vectors where the inputs are unchanged,
    /// freshly embedded (and stored) ones otherwise. Products that could not be embedded are
    /// returned with the reason.
    async fn vectors_for(
        &self,
        public: &[u64],
        found: &HashMap<u64, SyncRow>,
        stats: &mut BatchStats,
    ) -> Result<(Vec<Point>, HashMap<u64, String>), Error> {
        let profile = self.embedder.profile().name;
        let stored = outbox::embeddings(&self.db, profile, public).await?;
        let mut vectors: HashMap<u64, Vec<f32>> = HashMap::new();
        let mut todo = Vec::new();
        for id in public {
            let row = &found[id];
            let sha = inputs_sha256(profile, row.image.as_deref(), &row.name, &row.description);
            match stored.get(id) {
                Some((s, v)) if *s == sha && v.len() == self.vectors.dimension as usize => {
                    vectors.insert(*id, v.clone());
                }
                _ => todo.push((row.clone(), sha)),
            }
        }
        let mut failed = HashMap::new();
        if !todo.is_empty() {
            let embedder = self.embedder.clone();
            // The photos first, from the image store (disk or bucket); then the models.
            let mut jobs = Vec::with_capacity(todo.len());
            for (row, _) in &todo {
                let photo = match row.image.as_deref() {
                    Some(sha) => Some(read_photo(&self.files, sha).await),
                    None => None,
                };
                jobs.push((row.clone(), photo));
            }
            let started = Instant::now();
            let results = tokio::task::spawn_blocking(move || {
                jobs.iter()
                    .map(|(row, photo)| embed_product(&embedder, photo.as_ref(), row))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_else(|e| vec![Err(format!("embedding panicked: {e}")); todo.len()]);
            let mut new_rows = Vec::new();
            for ((row, sha), result) in todo.iter().zip(results) {
                match result {
                    Ok(v) => new_rows.push((row.id, sha.clone(), v)),
                    Err(e) => {
                        failed.insert(row.id, e);
                    }
                }
            }
            let embeddings: Vec<NewEmbedding> = new_rows
                .iter()
                .map(|(id, sha, v)| NewEmbedding {
                    product_id: *id,
                    inputs_sha256: sha,
                    vector: v,
                })
                .collect();
            outbox::put_embeddings(&self.db, profile, &embeddings).await?;
            stats.embedded = new_rows.len();
            tracing::debug!(
                products = new_rows.len(),
                ms = started.elapsed().as_millis() as u64,
                "embedded"
            );
            vectors.extend(new_rows.into_iter().map(|(id, _, v)| (id, v)));
        }
        let points = public
            .iter()
            .filter_map(|id| {
                let row = &found[id];
                vectors.remove(id).map(|vector| Point {
                    id: *id,
                    vector,
                    seller_id: row.seller_id,
                    category_id: row.category_id.unwrap_or(0),
                    price_minor: row.price_minor.unwrap_or(-1),
                    name: row.name.clone(),
                    city: row.city.clone(),
                })
            })
            .collect();
        Ok((points, failed))
    }
}

/// A product's photo from the image store: its bytes, or why there are none.
async fn read_photo(files: &ImageStore, sha: &str) -> Result<bytes::Bytes, String> {
    match files.original(sha).await {
        Ok(Some((bytes, _))) => Ok(bytes),
        Ok(None) => Err(format!("photo {sha} is missing")),
        Err(e) => Err(format!("photo {sha}: {e}")),
    }
}

/// Embed one product (blocking). A photo that is missing or no longer decodes does not stop
/// the product from being found by its text: it is embedded without the image part.
fn embed_product(
    embedder: &Embedder,
    photo: Option<&Result<bytes::Bytes, String>>,
    row: &SyncRow,
) -> Result<Vec<f32>, String> {
    let image = photo.and_then(|photo| {
        match photo
            .clone()
            .and_then(|b| codec::decode(&b).map_err(|e| e.to_string()))
        {
            Ok(d) => Some(d.image.to_rgb8()),
            Err(e) => {
                tracing::warn!(product = row.id, "photo unusable ({e}); text only");
                None
            }
        }
    });
    let started = std::time::Instant::now();
    let vector = embedder
        .product(image.as_ref(), &product_text(&row.name, &row.description))
        .map_err(|e| e.to_string());
    crate::metrics::observe_with(
        "embed",
        r#"what="product""#,
        started.elapsed(),
        vector.is_err(),
    );
    vector
}

/// The heartbeat's detail (JSON, read back by `soko status`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Detail {
    pub profile: String,
    pub collection: String,
    /// The collection answering searches: another one while a profile change fills this one.
    pub serving: String,
    pub synced_since_start: u64,
    pub embedded_since_start: u64,
    pub last_batch: BatchStats,
    pub last_error: Option<String>,
    pub reconcile: Option<super::reconcile::Report>,
    /// The pace kept by the shop's request latency, and the background threads' priority.
    pub pace: crate::background::pressure::PaceView,
}

/// Run until `stop`: batches while rows are due, a look every half second otherwise, a heartbeat
/// every 10 s, a reconciliation at start and every 10 minutes. While Milvus is unreachable no
/// rows are claimed (the outbox waits, no attempts are burnt); MySQL errors back off to 30 s.
pub async fn run(syncer: Syncer, stop: CancellationToken) {
    run_paced(syncer, Background::default(), stop).await
}

/// [`run`] with the `background:` settings: batches of at most [`BATCH`], smaller and spaced
/// while the shop's requests are slow (see `background::pressure`).
pub async fn run_paced(syncer: Syncer, bg: Background, stop: CancellationToken) {
    let pace = Pace {
        name: WORKER,
        label: "vector sync",
        idle: IDLE,
        max_backoff: Duration::from_secs(30),
        heartbeat: HEARTBEAT,
        beat_when_failing: true,
        log_recovery: false,
    };
    let db = syncer.db.clone();
    let job = Rounds {
        detail: Detail {
            profile: syncer.embedder.profile().name.to_owned(),
            collection: syncer.vectors.collection.clone(),
            ..Detail::default()
        },
        syncer,
        last_reconcile: None,
        vectors_down: false,
        last_switch_check: None,
        last_flush: Instant::now(),
        pacer: Pacer::new(BATCH),
        limit: BATCH,
        threads: bg.effective_threads(),
        priority: bg.priority.to_string(),
    };
    run_loop(pace, db, job, stop).await;
}

/// The worker's rounds: reconcile when due, one batch, then flush and the profile change.
struct Rounds {
    syncer: Syncer,
    detail: Detail,
    last_reconcile: Option<Instant>,
    /// Milvus did not answer: no rows are claimed until it does.
    vectors_down: bool,
    last_switch_check: Option<Instant>,
    last_flush: Instant,
    pacer: Pacer,
    /// The batch size the pacer chose for this round.
    limit: u32,
    threads: usize,
    priority: String,
}

impl Job for Rounds {
    type Error = Error;

    async fn claim_and_run(&mut self) -> Result<Outcome, Error> {
        let syncer = &self.syncer;
        if self.vectors_down {
            // Still down: the outbox waits (the error was logged when it went down).
            syncer.vectors.ensure_collection().await?;
            self.vectors_down = false;
            // Back after an outage: what it lost (unflushed writes of a killed server) is
            // found by reconciling now rather than in ten minutes.
            tracing::info!("vector store reachable again: reconciling");
            self.last_reconcile = None;
        }
        if self
            .last_reconcile
            .is_none_or(|t| t.elapsed() >= RECONCILE_EVERY)
        {
            match super::reconcile::run_once(&syncer.db, &syncer.vectors).await {
                Ok(report) => {
                    self.detail.reconcile = Some(report);
                    self.last_reconcile = Some(Instant::now());
                }
                Err(e) => tracing::warn!("reconciliation failed: {e}"),
            }
        }
        // Slow requests: a smaller batch (after the pause `yield_first` kept).
        let started = Instant::now();
        match syncer.run_batch_of(self.limit).await {
            Ok(stats) if stats.claimed > 0 => {
                self.pacer.finished(started.elapsed());
                self.detail.last_batch = stats;
                self.detail.synced_since_start += (stats.upserted + stats.deleted) as u64;
                self.detail.embedded_since_start += stats.embedded as u64;
                self.detail.last_error = None;
                Ok(Outcome::Worked)
            }
            Ok(_) => Ok(Outcome::Idle),
            Err(e) => {
                self.vectors_down = matches!(e, Error::Vectors(_));
                self.detail.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn activity(&self, outcome: Outcome) -> Option<String> {
        (outcome == Outcome::Worked).then(|| {
            format!(
                "{} vectors synced since start",
                self.detail.synced_since_start
            )
        })
    }

    fn heartbeat(&mut self) -> String {
        self.detail.serving = self.syncer.vectors.serving().collection.clone();
        self.detail.pace = self.pacer.view(self.threads, &self.priority);
        serde_json::to_string(&self.detail).unwrap_or_default()
    }

    async fn after_round(&mut self, worked: bool) {
        let vectors = &self.syncer.vectors;
        // Drained, or a long burst: seal the writes so searches stop paying for them.
        if !self.vectors_down && (!worked || self.last_flush.elapsed() >= vectors::FLUSH_EVERY) {
            match vectors.flush_if_dirty().await {
                Ok(true) => self.last_flush = Instant::now(),
                Ok(false) => {}
                Err(e) => tracing::warn!("vector store flush: {e}"),
            }
        }
        if !worked
            && vectors.previous().is_some()
            && self
                .last_switch_check
                .is_none_or(|t| t.elapsed() >= SWITCH_CHECK)
        {
            self.last_switch_check = Some(Instant::now());
            if let Err(e) = super::profile_switch::try_switch(&self.syncer.db, vectors).await {
                tracing::warn!("profile change: {e}");
            }
        }
    }

    fn yield_first(&mut self) -> Duration {
        let (limit, wait) = self.pacer.next_batch();
        self.limit = limit;
        wait
    }

    fn wait(&self, delay: Duration) -> Duration {
        if self.vectors_down {
            Duration::from_secs(2)
        } else {
            delay
        }
    }
}

/// Load the profile's models (seconds, on a blocking thread) and hand them to `vectors` for
/// query vectors, once per store: photo search and similar items need them on every node,
/// whichever node holds the vector-sync lease (`app` calls this at start on every node, the
/// worker again when it starts; the second call finds them loaded). `None`, said once in the
/// log, when they cannot be loaded: visual search stays 503, everything else runs.
pub async fn load_models(
    cfg: &crate::config::embed::Embed,
    bg: &Background,
    vectors: &VectorStore,
) -> Option<Arc<Embedder>> {
    // One load at a time in this process: the start-up's and the worker's would race.
    static LOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = LOADING.lock().await;
    if let Some(e) = vectors.embedder() {
        return Some(e);
    }
    let started = Instant::now();
    let pool = crate::background::shared_pool(bg);
    let loaded = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || Embedder::load(&cfg).map(|e| e.with_background(pool))
    })
    .await;
    let embedder = match loaded {
        Ok(Ok(e)) => Arc::new(e),
        Ok(Err(e)) => {
            tracing::error!("embedding models not loaded, visual search is off: {e}");
            return None;
        }
        Err(e) => {
            tracing::error!("loading the embedding models panicked: {e}");
            return None;
        }
    };
    tracing::info!(
        profile = embedder.profile().name,
        collection = %vectors.collection,
        ms = started.elapsed().as_millis() as u64,
        "embedding models loaded"
    );
    vectors.set_embedder(embedder.clone());
    Some(embedder)
}

/// Load the profile's models (or take those [`load_models`] loaded already), then run the
/// worker until `stop`.
pub async fn start(
    cfg: crate::config::embed::Embed,
    bg: Background,
    db: MySqlPool,
    vectors: Arc<VectorStore>,
    files: ImageStore,
    stop: CancellationToken,
) {
    // The switch exists from the start, so the worker can be paused (and shows in the status)
    // while its models load; the loop picks the same switch up.
    super::control::switches()
        .register(WORKER)
        .active("loading the embedding models");
    let Some(embedder) = load_models(&cfg, &bg, &vectors).await else {
        return;
    };
    if let Err(e) = super::profile_switch::prepare(&cfg, &db, &vectors).await {
        tracing::warn!("profile change check failed: {e}");
    }
    run_paced(
        Syncer {
            db,
            vectors,
            embedder,
            files,
        },
        bg,
        stop,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute() {
        assert_eq!(backoff(0), Duration::from_secs(2));
        assert_eq!(backoff(1), Duration::from_secs(4));
        assert_eq!(backoff(4), Duration::from_secs(32));
        assert_eq!(backoff(5), Duration::from_secs(60));
        assert_eq!(backoff(40), Duration::from_secs(60));
    }

    #[test]
    fn inputs_hash_separates_fields() {
        let a = inputs_sha256("p", Some("ab"), "c", "d");
        assert_eq!(a.len(), 64);
        assert_ne!(a, inputs_sha256("p", Some("a"), "bc", "d"));
        assert_ne!(a, inputs_sha256("q", Some("ab"), "c", "d"));
        assert_eq!(a, inputs_sha256("p", Some("ab"), "c", "d"));
    }
}
