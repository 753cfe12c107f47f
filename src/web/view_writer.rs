//! Views never block a page. Product views (page and API) are handed to one writer task
//! through a bounded channel ([`ViewWriter::record`] never waits); the task writes them in
//! groups, one transaction per group (`store::leads::record_group`: the once-per-visitor,
//! product and day rule and the per-address cap as before), every `background.view_flush_ms`
//! or as soon as `background.view_batch` are waiting, and once more when the appliance stops
//! ([`ViewWriter::close`], in `App::serve`'s ordered stop, before the pool closes). A full
//! buffer drops the view and counts it (`background::counters`, in `/metrics` and
//! `soko status`). Repeats the writer already saw today are skipped without a query (`Known`).
//! Leads (WhatsApp taps), wishlists and orders stay synchronous.
//!
//! What a crash can lose: the views of the last flush interval (1 s by default) and those
//! still waiting in the buffer; a clean stop loses none.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::MySqlPool;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::background::counters;
use crate::config::background::Background;
use crate::store::leads::{self, Buffered, Mark};

pub struct ViewWriter {
    /// The buffer itself: `background.view_buffer` views; the writer drains it when due.
    tx: mpsc::Sender<Buffered>,
    /// Woken when `batch` views are waiting.
    due: Arc<Notify>,
    batch: usize,
    closing: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ViewWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ViewWriter")
    }
}

impl ViewWriter {
    /// Start the writer task on `db` (needs a Tokio runtime). `per_address`: the cap of
    /// `limits.events_per_address`.
    pub fn spawn(db: MySqlPool, cfg: &Background, per_address: u32) -> ViewWriter {
        let (tx, rx) = mpsc::channel(cfg.view_buffer.get() as usize);
        let closing = CancellationToken::new();
        let due = Arc::new(Notify::new());
        let batch = cfg.view_batch.get() as usize;
        let task = tokio::spawn(write_loop(
            Writer {
                db,
                rx,
                batch,
                per_address,
                known: Known::default(),
            },
            Duration::from_millis(u64::from(cfg.view_flush_ms.get())),
            due.clone(),
            closing.clone(),
        ));
        ViewWriter {
            tx,
            due,
            batch,
            closing,
            task: Mutex::new(Some(task)),
        }
    }

    /// Queue a view; when the buffer is full (or the writer stopped) it is dropped and
    /// counted. Never waits.
    pub fn record(&self, view: Buffered) {
        match self.tx.try_send(view) {
            Ok(()) => {
                counters::queued();
                if self.tx.max_capacity() - self.tx.capacity() >= self.batch {
                    self.due.notify_one();
                }
            }
            Err(_) => counters::dropped(),
        }
    }

    /// Write everything buffered and stop the task (views recorded after this are dropped).
    pub async fn close(&self) {
        self.closing.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

struct Writer {
    db: MySqlPool,
    rx: mpsc::Receiver<Buffered>,
    batch: usize,
    per_address: u32,
    known: Known,
}

/// What today's groups found, so that a repeat of a visitor already counted today, or a new
/// visitor of an address that has used up its visitors, costs no query: only views the
/// database would refuse anyway are skipped (marks are only added during a day).
#[derive(Default)]
struct Known {
    /// The UTC day (days since 1970) the sets are of.
    day: u64,
    /// (kind, product, mark visitor) with today's mark.
    marked: HashSet<(&'static str, u64, String)>,
    /// (kind, product, address) whose visitors are used up today.
    capped: HashSet<(&'static str, u64, String)>,
}

/// Entries kept at most (a few tens of MB at worst); then the sets start again.
const KNOWN_MAX: usize = 200_000;

impl Known {
    fn refresh(&mut self) {
        let today = crate::clock::now_unix() / 86_400;
        if self.day != today || self.marked.len() + self.capped.len() > KNOWN_MAX {
            *self = Known {
                day: today,
                ..Known::default()
            };
        }
    }

    fn refused(&self, v: &Buffered) -> bool {
        let kind = v.kind.as_str();
        self.marked
            .contains(&(kind, v.product_id, v.mark_visitor()))
            || self
                .capped
                .contains(&(kind, v.product_id, v.address.clone()))
    }

    fn learn(&mut self, v: &Buffered, mark: Mark) {
        let kind = v.kind.as_str();
        match mark {
            Mark::Taken | Mark::Repeat => {
                self.marked.insert((kind, v.product_id, v.mark_visitor()));
            }
            Mark::Capped => {
                self.capped.insert((kind, v.product_id, v.address.clone()));
            }
        }
    }
}

impl Writer {
    /// Write what is waiting now, in groups of at most `batch`.
    async fn drain(&mut self) {
        let mut group = Vec::with_capacity(self.batch.min(1024));
        while let Ok(v) = self.rx.try_recv() {
            group.push(v);
            if group.len() >= self.batch {
                self.write(&mut group).await;
            }
        }
        if !group.is_empty() {
            self.write(&mut group).await;
        }
    }

    async fn write(&mut self, group: &mut Vec<Buffered>) {
        self.known.refresh();
        let before = group.len();
        group.retain(|v| !self.known.refused(v));
        counters::skipped((before - group.len()) as u64);
        if group.is_empty() {
            return;
        }
        match leads::record_group(&self.db, group, self.per_address).await {
            Ok(g) => {
                for (v, mark) in group.iter().zip(&g.marks) {
                    self.known.learn(v, *mark);
                }
                counters::flushed(g.written, g.repeats);
            }
            Err(e) => {
                tracing::warn!(views = group.len(), "views not written: {e}");
                counters::lost(group.len() as u64);
            }
        }
        group.clear();
    }
}

async fn write_loop(mut w: Writer, every: Duration, due: Arc<Notify>, closing: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = due.notified() => {}
            () = closing.cancelled() => break,
        }
        w.drain().await;
    }
    // Stopping: nothing new gets in; what is queued is written.
    w.rx.close();
    w.drain().await;
    tracing::debug!("view writer stopped");
}
