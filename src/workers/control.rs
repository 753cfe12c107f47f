//! Pause and resume for background workers: a registry of named switches that worker loops
//! consult between batches. Pausing lets the batch in hand finish, then the worker claims
//! nothing until resumed (its jobs wait, durable, in their table). The operator flips a switch
//! over the admin socket (`POST /v1/workers/{name}/pause|resume`, the console's `p`).
//!
//! In a worker:
//! ```ignore
//! let switch = control::switches().register("images");
//! loop {
//!     if !switch.wait_if_paused(&stop).await { return; }   // false: stopping
//!     let n = do_a_batch().await;
//!     switch.active(format!("{n} jobs"));
//! }
//! ```
//! A paused flag lives in memory: `soko up` starts every worker running.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One worker as the snapshot shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerView {
    pub name: String,
    pub paused: bool,
    /// `running`, `paused` (waiting for resume) or `pausing` (finishing its batch).
    pub state: String,
    /// Unix seconds of the last batch (or idle poll) the worker reported.
    pub last_activity: Option<u64>,
    /// What the worker last said about itself (e.g. "12 image jobs since start").
    pub detail: String,
}

#[derive(Debug)]
struct Inner {
    paused: watch::Sender<bool>,
    /// True while the worker sits in `wait_if_paused`.
    parked: Mutex<bool>,
    last: Mutex<(Option<u64>, String)>,
}

/// A worker's handle on its switch (cheap to clone).
#[derive(Debug, Clone)]
pub struct Switch(Arc<Inner>);

#[derive(Debug, Default)]
pub struct Switches {
    by_name: Mutex<BTreeMap<String, Switch>>,
}

/// The process's registry (what `soko up`'s admin socket pauses and resumes).
pub fn switches() -> &'static Switches {
    static ALL: OnceLock<Switches> = OnceLock::new();
    ALL.get_or_init(Switches::default)
}

impl Switches {
    /// The switch named `name`, created running on first use (a restarted worker loop gets the
    /// same switch back, paused or not).
    pub fn register(&self, name: &str) -> Switch {
        let mut all = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(name.to_owned())
            .or_insert_with(|| {
                Switch(Arc::new(Inner {
                    paused: watch::Sender::new(false),
                    parked: Mutex::new(false),
                    last: Mutex::new((None, String::new())),
                }))
            })
            .clone()
    }

    /// Pause (`true`) or resume a worker; false if no worker has that name.
    pub fn set_paused(&self, name: &str, paused: bool) -> bool {
        let all = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        match all.get(name) {
            Some(s) => {
                s.0.paused.send_replace(paused);
                true
            }
            None => false,
        }
    }

    pub fn views(&self) -> Vec<WorkerView> {
        let all = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        all.iter().map(|(name, s)| s.view(name)).collect()
    }
}

impl Switch {
    pub fn is_paused(&self) -> bool {
        *self.0.paused.borrow()
    }

    /// Return at once when running; while paused, wait for resume. False when `stop` fired
    /// (the worker should return).
    pub async fn wait_if_paused(&self, stop: &CancellationToken) -> bool {
        if !self.is_paused() {
            return !stop.is_cancelled();
        }
        let mut rx = self.0.paused.subscribe();
        *self.0.parked.lock().unwrap_or_else(|e| e.into_inner()) = true;
        tracing::info!("worker paused");
        let resumed = tokio::select! {
            r = rx.wait_for(|p| !*p) => r.is_ok(),
            () = stop.cancelled() => false,
        };
        *self.0.parked.lock().unwrap_or_else(|e| e.into_inner()) = false;
        if resumed {
            tracing::info!("worker resumed");
        }
        resumed && !stop.is_cancelled()
    }

    /// Note activity (a batch done, an idle poll) with a short description.
    pub fn active(&self, detail: impl Into<String>) {
        let mut last = self.0.last.lock().unwrap_or_else(|e| e.into_inner());
        *last = (Some(crate::clock::now_unix()), detail.into());
    }

    fn view(&self, name: &str) -> WorkerView {
        let paused = self.is_paused();
        let parked = *self.0.parked.lock().unwrap_or_else(|e| e.into_inner());
        let (last_activity, detail) = self
            .0
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        WorkerView {
            name: name.to_owned(),
            paused,
            state: match (paused, parked) {
                (false, _) => "running",
                (true, true) => "paused",
                (true, false) => "pausing",
            }
            .into(),
            last_activity,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_paused_worker_waits_until_resumed_or_stopped() {
        let all = Switches::default();
        let s = all.register("images");
        let stop = CancellationToken::new();
        assert!(s.wait_if_paused(&stop).await, "running: no wait");
        assert!(all.set_paused("images", true));
        assert!(!all.set_paused("nobody", true));
        assert_eq!(all.views()[0].state, "pausing");
        let (s2, stop2) = (s.clone(), stop.clone());
        let waiter = tokio::spawn(async move { s2.wait_if_paused(&stop2).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a paused worker waits");
        assert_eq!(all.views()[0].state, "paused");
        all.set_paused("images", false);
        assert!(waiter.await.unwrap(), "resumed");
        assert_eq!(all.views()[0].state, "running");
        s.active("3 jobs");
        let v = &all.views()[0];
        assert_eq!(v.detail, "3 jobs");
        assert!(v.last_activity.is_some());
        // Stopping while paused returns false.
        all.set_paused("images", true);
        let (s3, stop3) = (s.clone(), stop.clone());
        let waiter = tokio::spawn(async move { s3.wait_if_paused(&stop3).await });
        stop.cancel();
        assert!(!waiter.await.unwrap());
        // Registering again gives the same switch.
        assert!(all.register("images").is_paused());
    }
}
