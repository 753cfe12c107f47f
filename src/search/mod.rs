//! Text search: an embedded tantivy index of the public catalogue at
//! `<data_dir>/search/<database>/`, kept current from MySQL's `search_changes` log.
//!
//! The index answers with ranked product ids; the cards come from MySQL by id with the public
//! condition, so a product hidden or deleted a moment ago never shows even if the index lags.
//! The indexer follows the change log by cursor (stored in each commit's payload), so a
//! restart resumes where it stopped and several nodes can each keep their own index; an index
//! that is missing, corrupt, of another schema version, or older than the pruned log is rebuilt
//! from MySQL. Until it is ready, or while it is broken, search answers from SQL
//! (`store::catalogue::search`), and `soko status` says so.

mod indexer;
pub mod query;
pub mod schema;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde::Serialize;
use sqlx::MySqlPool;
use tantivy::IndexReader;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::catalogue::{self, Card, SearchFilter};
use crate::store::{self, search as changes};

pub use query::Facets;

/// How long a search waits for the indexer to apply changes committed before it (so a seller
/// who saves a product and then searches finds it); after that it answers from what it has.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// Searches wait for the indexer only when it is this few changes behind (a seller's save, an
/// admin's decision); further behind, it is applying a bulk load and they answer at once.
const WAIT_AT_MOST_BEHIND: u64 = 2_000;

/// The newest change id read from MySQL is reused for this long while the catalogue generation
/// of this process has not moved (no write here since): under load that saves a query per
/// search; a write made on another node is seen this much later.
const LATEST_REUSE: Duration = Duration::from_millis(250);

/// What the index needs from the config.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub writer_heap_bytes: usize,
    pub change_log_days: u32,
}

impl Options {
    pub fn from_config(cfg: &Config) -> Options {
        Options {
            dir: cfg.data_dir.join("search").join(&cfg.database.name),
            writer_heap_bytes: cfg.search.writer_heap_mb.get() as usize * 1024 * 1024,
            change_log_days: cfg.search.change_log_days.get(),
        }
    }
}

/// The index as searches see it: replaced whole on a rebuild.
struct Live {
    reader: IndexReader,
    fields: schema::Fields,
}

/// The state `soko status` shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    Opening,
    Rebuilding { done: u64 },
    Ready { docs: u64, cursor: u64 },
    Broken { error: String },
}

impl State {
    /// One line for `soko status`.
    pub fn line(&self) -> String {
        match self {
            State::Opening => "opening the index; answering from SQL meanwhile".into(),
            State::Rebuilding { done } => {
                format!(
                    "rebuilding from MySQL ({done} products so far); answering from SQL meanwhile"
                )
            }
            State::Ready { docs, cursor } => format!("ready: {docs} products, change {cursor}"),
            State::Broken { error } => format!("broken, answering from SQL: {error}"),
        }
    }
}

struct Inner {
    db: MySqlPool,
    opts: Options,
    live: ArcSwapOption<Live>,
    state: Mutex<State>,
    /// The last change id the index has applied (and committed).
    applied: watch::Sender<u64>,
    wake: Notify,
    rebuild: std::sync::atomic::AtomicBool,
    /// This database's catalogue generation (`store::generation`), and the newest change id
    /// last read: (generation then, when, id).
    generation: Arc<std::sync::atomic::AtomicU64>,
    latest: Mutex<Option<(u64, std::time::Instant, u64)>>,
}

/// The handle every search goes through (cheap to clone).
#[derive(Clone)]
pub struct Search {
    inner: Arc<Inner>,
}

/// A page of results.
pub struct Results {
    pub cards: Vec<Card>,
    /// Matches in all (`None` from the SQL fallback, which does not count).
    pub total: Option<usize>,
    /// Matches per category and city (empty from the SQL fallback).
    pub facets: Facets,
    /// The change the index had applied when it was searched (0 from the SQL fallback): the
    /// results hold at least every change up to it.
    pub applied: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub id: u64,
    pub name: String,
}

impl Search {
    /// Open (or build) the index in the background and follow the change log until `stop`.
    pub fn start(db: MySqlPool, opts: Options, stop: CancellationToken) -> Search {
        let (applied, _) = watch::channel(0);
        let s = Search {
            inner: Arc::new(Inner {
                generation: store::generation::counter(&db),
                latest: Mutex::new(None),
                db,
                opts,
                live: ArcSwapOption::empty(),
                state: Mutex::new(State::Opening),
                applied,
                wake: Notify::new(),
                rebuild: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        tokio::spawn(indexer::run(s.inner.clone(), stop));
        s
    }

    pub fn state(&self) -> State {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Ask the indexer to rebuild from MySQL (the admin's "rebuild" action).
    pub fn request_rebuild(&self) {
        self.inner
            .rebuild
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    /// The index, once every change committed before this call has been applied (waiting at
    /// most [`FRESHNESS_WAIT`]); `None` while there is no index.
    async fn fresh(&self) -> Result<Option<Arc<Live>>, store::Error> {
        if self.inner.live.load().is_none() {
            return Ok(None);
        }
        let latest = self.latest_change().await?;
        let mut rx = self.inner.applied.subscribe();
        let applied = *rx.borrow();
        if applied < latest {
            self.inner.wake.notify_one();
            if latest - applied > WAIT_AT_MOST_BEHIND {
                // A bulk load or a restore being applied: answer now from what the index has
                // (the cards are still read with the public condition) rather than queue
                // every search behind it.
                return Ok(self.inner.live.load_full());
            }
            let caught_up = tokio::time::timeout(FRESHNESS_WAIT, rx.wait_for(|a| *a >= latest));
            if caught_up.await.is_err() {
                tracing::warn!(
                    latest,
                    "search index behind the change log; answering with what it has"
                );
            }
        }
        Ok(self.inner.live.load_full())
    }

    /// The newest change id: from MySQL, or the one read less than [`LATEST_REUSE`] ago when
    /// nothing was written through this process since.
    async fn latest_change(&self) -> Result<u64, store::Error> {
        use std::sync::atomic::Ordering::Acquire;
        let generation = self.inner.generation.load(Acquire);
        let lock = || self.inner.latest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, at, id)) = *lock()
            && g == generation
            && at.elapsed() < LATEST_REUSE
        {
            return Ok(id);
        }
        let id = changes::latest_change(&self.inner.db).await?;
        *lock() = Some((generation, std::time::Instant::now(), id));
        Ok(id)
    }

    /// Ranked ids from the index, `None` when there is no index or it failed (logged).
    async fn ranked(
        &self,
        text: &str,
        filter: &SearchFilter,
        offset: usize,
        limit: usize,
        prefix: bool,
    ) -> Result<Option<(query::Page, u64)>, store::Error> {
        let Some(live) = self.fresh().await? else {
            return Ok(None);
        };
        // Read before the searcher: the reader is reloaded before `applied` moves on, so the
        // search sees at least this change.
        let applied = self.applied();
        let (text, filter) = (text.to_owned(), filter.clone());
        let page = tokio::task::spawn_blocking(move || -> tantivy::Result<Option<query::Page>> {
            let searcher = live.reader.searcher();
            let Some(q) = query::build(&searcher, &live.fields, &text, &filter, prefix) else {
                return Ok(Some(query::Page {
                    ids: Vec::new(),
                    total: 0,
                    facets: Facets::default(),
                }));
            };
            query::run(&searcher, q.as_ref(), offset, limit, !prefix).map(Some)
        })
        .await;
        match page {
            Ok(Ok(p)) => Ok(p.map(|p| (p, applied))),
            Ok(Err(e)) => {
                tracing::error!("search index failed, answering from SQL: {e}");
                self.broken(e.to_string());
                Ok(None)
            }
            Err(e) => {
                tracing::error!("search index task failed, answering from SQL: {e}");
                Ok(None)
            }
        }
    }

    /// The last change id the index has applied: a search page cached under it is what a
    /// fresh search would answer until it moves (see `web::storefront::search`).
    pub fn applied(&self) -> u64 {
        *self.inner.applied.borrow()
    }

    fn broken(&self, error: String) {
        self.inner.live.store(None);
        *self.inner.state.lock().unwrap_or_else(|e| e.into_inner()) = State::Broken { error };
        self.request_rebuild();
    }

    /// Products matching `text` with the filters, best first: `limit` after `offset`. From the
    /// index when it is there, else from SQL (first page only).
    pub async fn search(
        &self,
        text: &str,
        filter: &SearchFilter,
        offset: usize,
        limit: u32,
    ) -> Result<Results, store::Error> {
        self.search_on(&self.inner.db, text, filter, offset, limit)
            .await
    }

    /// [`search`](Self::search) with the cards (and the SQL search) read from `db` (a read
    /// replica, see `store::replicas`).
    pub async fn search_on(
        &self,
        db: &MySqlPool,
        text: &str,
        filter: &SearchFilter,
        offset: usize,
        limit: u32,
    ) -> Result<Results, store::Error> {
        match self
            .ranked(text, filter, offset, limit as usize, false)
            .await?
        {
            Some((page, applied)) => Ok(Results {
                cards: changes::cards_in_order(db, &page.ids).await?,
                total: Some(page.total),
                facets: page.facets,
                applied,
            }),
            None => {
                let cards = if offset == 0 {
                    catalogue::search(db, text, filter, limit).await?
                } else {
                    Vec::new()
                };
                Ok(Results {
                    cards,
                    total: None,
                    facets: Facets::default(),
                    applied: 0,
                })
            }
        }
    }

    /// Names for the search box: products whose words start with what was typed (the last word
    /// may be unfinished, typos forgiven). Empty while there is no index.
    pub async fn suggest(&self, text: &str, limit: u32) -> Result<Vec<Suggestion>, store::Error> {
        self.suggest_on(&self.inner.db, text, limit).await
    }

    /// [`suggest`](Self::suggest) with the names read from `db`.
    pub async fn suggest_on(
        &self,
        db: &MySqlPool,
        text: &str,
        limit: u32,
    ) -> Result<Vec<Suggestion>, store::Error> {
        let page = self
            .ranked(text, &SearchFilter::default(), 0, limit as usize, true)
            .await?;
        let Some((page, _)) = page else {
            return Ok(Vec::new());
        };
        Ok(changes::cards_in_order(db, &page.ids)
            .await?
            .into_iter()
            .map(|c| Suggestion {
                id: c.id,
                name: c.name,
            })
            .collect())
    }
}
