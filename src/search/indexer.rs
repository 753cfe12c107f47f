//! The indexer: opens the index (or rebuilds it from MySQL), then applies `search_changes` by
//! cursor, woken by searches that find it behind and by a one-second poll (other nodes'
//! writes). The cursor is each commit's payload, so a restart resumes from it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tantivy::schema::Term;
use tantivy::{Index, IndexWriter, ReloadPolicy};

use super::schema::{self, Fields};
use super::{Inner, Live, State};
use crate::store::search::{self as changes, Scope};

const POLL: Duration = Duration::from_secs(1);
/// Changes applied per commit at most.
const BATCH: u32 = 2_000;
/// Products read per query while rebuilding.
const REBUILD_PAGE: u32 = 2_000;
/// A skipped change id (a transaction that had not committed when the cursor passed it) is
/// looked for again this long, then taken for a rollback.
const GAP_WAIT: Duration = Duration::from_secs(60);
const MAX_GAPS: usize = 10_000;
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What each commit records.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    version: u32,
    /// Every change up to here is applied.
    cursor: u64,
}

type Writer = Arc<Mutex<IndexWriter>>;

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("database: {0}")]
    Store(#[from] crate::store::Error),
    #[error("{0}")]
    Other(String),
    #[error("the catalogue was restored or the log pruned past this index: rebuilding")]
    Rebuild,
}

fn set_state(inner: &Inner, s: State) {
    *inner.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
}

pub(super) async fn run(inner: Arc<Inner>, stop: tokio_util::sync::CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    while !stop.is_cancelled() {
        let result = tokio::select! {
            r = open_and_follow(&inner) => r,
            _ = stop.cancelled() => break,
        };
        inner.live.store(None);
        match result {
            Err(Error::Rebuild) => {
                tracing::info!("search index: rebuilding");
                backoff = Duration::from_secs(1);
                inner.rebuild.store(true, Ordering::SeqCst);
                continue;
            }
            Err(e) => {
                tracing::error!("search index unavailable, answering from SQL: {e}");
                set_state(
                    &inner,
                    State::Broken {
                        error: e.to_string(),
                    },
                );
            }
            Ok(()) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => break,
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// The index at `dir` with its cursor, if it is whole and of this version (`Err`: to be
/// rebuilt); `Ok(Err)` when another writer holds it (a process not yet gone: try again later,
/// never rebuild under it).
type Opened = Result<(Index, Writer, u64), String>;

fn open(dir: &Path, heap: usize) -> Result<Opened, String> {
    let index = Index::open_in_dir(dir).map_err(|e| e.to_string())?;
    let meta = index.load_metas().map_err(|e| e.to_string())?;
    let payload: Payload = meta
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or("no cursor in the index")?;
    if payload.version != schema::VERSION {
        return Err(format!(
            "index version {} (now {})",
            payload.version,
            schema::VERSION
        ));
    }
    if index.schema() != schema::schema().0 {
        return Err("index schema differs".into());
    }
    schema::register(&index);
    // Open every segment now: a corrupt file shows here, not in the first search.
    let reader = index.reader().map_err(|e| e.to_string())?;
    let searcher = reader.searcher();
    for seg in searcher.segment_readers() {
        seg.fast_fields().u64("id").map_err(|e| e.to_string())?;
    }
    let writer = match index.writer_with_num_threads(1, heap) {
        Ok(w) => w,
        Err(e @ tantivy::TantivyError::LockFailure(..)) => return Ok(Err(e.to_string())),
        Err(e) => return Err(e.to_string()),
    };
    Ok(Ok((index, Arc::new(Mutex::new(writer)), payload.cursor)))
}

async fn open_and_follow(inner: &Arc<Inner>) -> Result<(), Error> {
    set_state(inner, State::Opening);
    let dir = inner.opts.dir.clone();
    let heap = inner.opts.writer_heap_bytes;
    let wanted = inner.rebuild.swap(false, Ordering::SeqCst);
    let opened = if wanted {
        Err("rebuild requested".to_owned())
    } else {
        let d = dir.clone();
        tokio::task::spawn_blocking(move || open(&d, heap))
            .await
            .map_err(|e| Error::Other(e.to_string()))?
    };
    let horizon = changes::horizon(&inner.db).await?;
    let latest = changes::latest_change(&inner.db).await?;
    let opened = match opened {
        Ok(Err(busy)) => return Err(Error::Other(format!("index in use: {busy}"))),
        Ok(Ok(o)) => Ok(o),
        Err(e) => Err(e),
    };
    let (index, writer, cursor) = match opened {
        // Behind the pruned log, or ahead of it (a restore brought back an older log).
        Ok((_, _, cursor)) if cursor < horizon || cursor > latest => {
            tracing::info!(
                cursor,
                horizon,
                latest,
                "search index out of step with the change log"
            );
            rebuild(inner, &dir, heap).await?
        }
        Ok(o) => o,
        Err(why) => {
            if dir.exists() {
                tracing::info!(dir = %dir.display(), "search index not usable ({why}): rebuilding");
            }
            rebuild(inner, &dir, heap).await?
        }
    };
    let fields = fields_of(&index)?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?;
    inner.live.store(Some(Arc::new(Live { reader, fields })));
    follow(inner, writer, fields, cursor).await
}

fn fields_of(index: &Index) -> Result<Fields, Error> {
    let s = index.schema();
    let f = |name: &str| s.get_field(name).map_err(Error::from);
    Ok(Fields {
        id: f("id")?,
        name: f("name")?,
        name_en: f("name_en")?,
        body: f("body")?,
        body_en: f("body_en")?,
        cat: f("cat")?,
        cat_en: f("cat_en")?,
        seller: f("seller")?,
        category: f("category")?,
        price: f("price")?,
        city_key: f("city_key")?,
        city: f("city")?,
    })
}

/// A fresh index of every public product, committed with the cursor read before the first
/// product: changes made during the rebuild are applied again afterwards.
async fn rebuild(inner: &Inner, dir: &Path, heap: usize) -> Result<(Index, Writer, u64), Error> {
    set_state(inner, State::Rebuilding { done: 0 });
    let started = Instant::now();
    // Never below the pruned horizon (an empty log after pruning reads as 0).
    let cursor = changes::latest_change(&inner.db)
        .await?
        .max(changes::horizon(&inner.db).await?);
    let d = dir.to_owned();
    let (index, writer) =
        tokio::task::spawn_blocking(move || -> Result<(Index, IndexWriter), Error> {
            if d.exists() {
                std::fs::remove_dir_all(&d)
                    .map_err(|e| Error::Other(format!("{}: {e}", d.display())))?;
            }
            std::fs::create_dir_all(&d)
                .map_err(|e| Error::Other(format!("{}: {e}", d.display())))?;
            let index = Index::create_in_dir(&d, schema::schema().0)?;
            schema::register(&index);
            let writer = index.writer_with_num_threads(1, heap)?;
            Ok((index, writer))
        })
        .await
        .map_err(|e| Error::Other(e.to_string()))??;
    let fields = fields_of(&index)?;
    let writer: Writer = Arc::new(Mutex::new(writer));
    let mut after = 0;
    let mut done = 0u64;
    loop {
        let docs = changes::docs_after(&inner.db, after, REBUILD_PAGE).await?;
        let Some(last) = docs.last() else { break };
        after = last.id;
        done += docs.len() as u64;
        let w = writer.clone();
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            let w = w.lock().unwrap_or_else(|e| e.into_inner());
            for d in &docs {
                w.add_document(schema::document(&fields, d))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Other(e.to_string()))??;
        set_state(inner, State::Rebuilding { done });
    }
    commit(&writer, cursor).await?;
    tracing::info!(
        products = done,
        cursor,
        ms = started.elapsed().as_millis() as u64,
        "search index rebuilt"
    );
    Ok((index, writer, cursor))
}

async fn commit(writer: &Writer, cursor: u64) -> Result<(), Error> {
    let w = writer.clone();
    tokio::task::spawn_blocking(move || -> Result<(), Error> {
        let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
        let mut prepared = w.prepare_commit()?;
        let payload = Payload {
            version: schema::VERSION,
            cursor,
        };
        prepared.set_payload(&serde_json::to_string(&payload).unwrap_or_default());
        prepared.commit()?;
        Ok(())
    })
    .await
    .map_err(|e| Error::Other(e.to_string()))?
}

/// Apply changes until an error (or a rebuild is due).
async fn follow(
    inner: &Arc<Inner>,
    writer: Writer,
    fields: Fields,
    mut cursor: u64,
) -> Result<(), Error> {
    // Ids the cursor passed that did not exist yet: a transaction still open (ids are handed
    // out at insert, rows seen at commit) or rolled back. Looked for again until GAP_WAIT.
    let mut gaps: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut pruned = Instant::now() - PRUNE_EVERY + Duration::from_secs(60);
    publish(inner, cursor);
    loop {
        if inner.rebuild.load(Ordering::SeqCst) {
            return Err(Error::Rebuild);
        }
        let mut batch = changes::changes_after(&inner.db, cursor, BATCH).await?;
        let full = batch.len() as u32 == BATCH;
        gaps.retain(|_, since| since.elapsed() < GAP_WAIT);
        if !gaps.is_empty() {
            let wanted: Vec<u64> = gaps.keys().copied().collect();
            for c in changes::changes_in(&inner.db, &wanted).await? {
                gaps.remove(&c.id);
                batch.push(c);
            }
        }
        let mut next = cursor;
        for c in &batch {
            if c.id > next {
                // A long run of missing ids is a pruned or rolled-back stretch, not open
                // transactions (each holds a few ids at most).
                let from = (next + 1).max(c.id.saturating_sub(100));
                for missing in from..c.id {
                    if gaps.len() < MAX_GAPS {
                        gaps.insert(missing, Instant::now());
                    }
                }
                next = c.id;
            }
        }
        if batch.iter().any(|c| c.scope == Scope::All) {
            return Err(Error::Rebuild);
        }
        if !batch.is_empty() {
            apply(inner, &writer, &fields, &batch).await?;
            // Stored cursor: below every gap still open, so a restart looks for them again.
            let stored = gaps.keys().next().map_or(next, |g| g - 1).min(next);
            commit(&writer, stored).await?;
            if let Some(live) = inner.live.load_full() {
                live.reader.reload()?;
            }
            cursor = next;
            publish(inner, cursor);
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            match changes::prune(&inner.db, inner.opts.change_log_days).await {
                Ok(n) if n > 0 => tracing::info!(rows = n, "search change log pruned"),
                Ok(_) => {}
                Err(e) => tracing::warn!("pruning the search change log: {e}"),
            }
        }
        if !full {
            let wait = if gaps.is_empty() {
                POLL
            } else {
                POLL.min(Duration::from_millis(200))
            };
            tokio::select! {
                _ = inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

fn publish(inner: &Inner, cursor: u64) {
    let docs = inner
        .live
        .load()
        .as_ref()
        .map_or(0, |l| l.reader.searcher().num_docs());
    set_state(inner, State::Ready { docs, cursor });
    inner.applied.send_replace(cursor);
}

async fn apply(
    inner: &Inner,
    writer: &Writer,
    fields: &Fields,
    batch: &[changes::Change],
) -> Result<(), Error> {
    let mut ids: Vec<u64> = Vec::new();
    for c in batch {
        match c.scope {
            Scope::Product => ids.push(c.ref_id),
            Scope::Seller | Scope::Category => {
                ids.extend(changes::product_ids_of(&inner.db, c.scope, c.ref_id).await?)
            }
            Scope::All => {}
        }
    }
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(REBUILD_PAGE as usize) {
        let docs = changes::docs_of(&inner.db, chunk).await?;
        let (w, f, chunk) = (writer.clone(), *fields, chunk.to_vec());
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            let w = w.lock().unwrap_or_else(|e| e.into_inner());
            for id in &chunk {
                w.delete_term(Term::from_field_u64(f.id, *id));
            }
            for d in &docs {
                w.add_document(schema::document(&f, d))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Other(e.to_string()))??;
    }
    Ok(())
}
