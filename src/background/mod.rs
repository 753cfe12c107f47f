//! Background work never starves the shop. Three parts, at the bottom of the layers (beside
//! `metrics`) so that `web`, `workers`, `embed` and `ops` can all use them:
//!
//! - [`priority`]: lower the calling thread's CPU priority (SCHED_BATCH + nice 19, or
//!   SCHED_IDLE), a rayon pool whose threads are lowered as they start ([`pool`]), and the
//!   same for child processes (`Command`s of backups, image builds);
//! - [`pressure`]: the recent request latency (fed by `web::timing`) and the [`Pacer`] batch
//!   loops ask before each batch: above `background.pace_latency_ms` they sleep and shrink
//!   their batches, below it they grow back;
//! - [`counters`]: what the view writer (`web::view_writer`) queued, wrote and dropped, for
//!   `/metrics` and `soko status`.

pub mod counters;
pub mod pressure;
pub mod priority;

pub use pressure::Pacer;
pub use priority::{Priority, pool};

use crate::config::background::Background;

/// The background pool of this process, built once from the config (`soko up` builds it in
/// `app::build`; tests that never do get one from the defaults).
pub fn shared_pool(cfg: &Background) -> std::sync::Arc<rayon::ThreadPool> {
    use std::sync::{Arc, OnceLock};
    static POOL: OnceLock<Arc<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        priority::set_configured(cfg.priority.into());
        pressure::set_threshold(std::time::Duration::from_millis(u64::from(
            cfg.pace_latency_ms.get(),
        )));
        pressure::set_busy(cfg.busy_requests_per_sec, cfg.busy_share_pct.get());
        Arc::new(pool(cfg.effective_threads(), cfg.priority.into()))
    })
    .clone()
}

/// The process's background pool: the one `soko up` built from its config, or one from the
/// defaults when nothing built it yet.
pub fn current_pool() -> std::sync::Arc<rayon::ThreadPool> {
    shared_pool(&Background::default())
}

/// `program` from a clean environment (`process_env::command`), started at the configured
/// background priority (nice 19 and idle disk priority unless `background.priority: normal`).
pub fn child_command(program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
    let mut cmd = crate::process_env::command(program);
    priority::lower_child(&mut cmd, priority::configured());
    cmd
}

/// What `soko status` shows of the background settings and the view writer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct BackgroundView {
    /// Threads of the background pool and their priority (`background.threads`, `.priority`).
    pub threads: usize,
    pub priority: String,
    /// Background loops back off while the mean request latency is above this.
    pub pace_latency_ms: u64,
    /// The shop is slow now (background loops are backing off).
    pub hot: bool,
    /// From this many requests a second the shop is busy (0: never) ...
    pub busy_requests_per_sec: u64,
    /// ... and background loops keep to this share of the time (percent).
    pub busy_share_pct: u64,
    /// The shop is busy now.
    pub busy: bool,
    pub views: counters::Views,
}

impl BackgroundView {
    pub fn now(cfg: &Background) -> BackgroundView {
        BackgroundView {
            threads: cfg.effective_threads(),
            priority: cfg.priority.to_string(),
            pace_latency_ms: pressure::threshold().as_millis() as u64,
            hot: pressure::hot(),
            busy_requests_per_sec: pressure::busy_settings().0,
            busy_share_pct: pressure::busy_settings().1,
            busy: pressure::busy(),
            views: counters::views(),
        }
    }
}
