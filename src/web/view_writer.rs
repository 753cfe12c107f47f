//! Views never block a page. Product views (page and API) are handed to one writer task
//! through a bounded channel ([`ViewWriter::record`] never waits); the task writes them in
//! groups, one transaction per group (`store::leads::record_group`: the once-per-visitor,
//! product and day rule and the per-address cap as before), every `background.view_flush_ms`
//! or as soon as `background.view_batch` are waiting, and once more when the appliance stops
//! ([`ViewWriter::close`], in `App::serve`'s ordered stop, before the pool closes). A full
//! buffer drops the view and counts it (`background::counters`, in `/metrics` and
//! `soko status`). Leads (WhatsApp taps), wishlists and orders stay synchronous.
//!
//! What a crash can lose: the views of the last flush interval (1 s by default) and those
//! still waiting in the buffer; a clean stop loses none.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::MySqlPool;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::background::counters;
use crate::config::background::Background;
use crate::store::leads::{self, Buffered};

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

    async fn write(&self, group: &mut Vec<Buffered>) {
        match leads::record_group(&self.db, group, self.per_address).await {
            Ok(g) => counters::flushed(g.written, g.repeats),
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
