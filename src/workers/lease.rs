//! Singleton work under a lease (`store::leases`): when several nodes share the database, a job
//! that must run on one node at a time (see ARCHITECTURE.md, "Singleton work") runs only where
//! its lease is held. [`keep`] is one task per singleton: it takes the lease when it is free,
//! renews it every third of its time to live, and runs the job while it holds it. When a
//! renewal finds the lease lost (it ran out, or another node took it), or renewals keep failing
//! until the lease would have run out by this node's own count, the job's token is cancelled at
//! once; the job is given the lease time to stop and is dropped after that. The job's writes
//! that matter are fenced: [`current`] is the tenure the job runs under (a task-local set around
//! the job's future), and the store checks it in the write's own transaction
//! (`store::leases::check`), so a holder that was paused past its lease writes nothing after
//! the takeover.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use crate::store::leases::{self, Acquire, Fence};

tokio::task_local! {
    static FENCE: Fence;
}

/// The tenure the calling job runs under; `None` outside a lease (a manual backup, a test, a
/// worker that runs on every node).
pub fn current() -> Option<Fence> {
    FENCE.try_with(Clone::clone).ok()
}

/// Run `fut` as the job of `fence`'s tenure (what [`current`] answers inside it).
pub async fn scope<F: Future>(fence: Fence, fut: F) -> F::Output {
    FENCE.scope(fence, fut).await
}

/// The leases this process keeps and whether it holds each (`soko_lease_held{name}`).
static HELD: Mutex<BTreeMap<&'static str, bool>> = Mutex::new(BTreeMap::new());

/// Every lease this process keeps, and whether it holds it now.
pub fn held() -> Vec<(&'static str, bool)> {
    HELD.lock()
        .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
        .unwrap_or_default()
}

fn set_held(name: &'static str, on: bool) {
    if let Ok(mut m) = HELD.lock() {
        m.insert(name, on);
    }
}

/// Who keeps leases, and for how long each tenure lasts without a renewal.
#[derive(Debug, Clone)]
pub struct Keeper {
    pub db: MySqlPool,
    pub node: String,
    pub ttl: Duration,
}

impl Keeper {
    /// [`keep`] `name` on a task of its own.
    pub fn spawn<F, Fut>(&self, name: &'static str, stop: &CancellationToken, job: F)
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(keep(self.clone(), name, stop.clone(), job));
    }
}

/// Hold `name` whenever it is free and run `job` while it is held, until `stop`. `job` gets a
/// token cancelled when the lease is lost or at `stop`; each tenure calls it again. At `stop`
/// the lease is released, so another node takes over at once.
pub async fn keep<F, Fut>(k: Keeper, name: &'static str, stop: CancellationToken, mut job: F)
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let renew_every = k.ttl / 3;
    // While the database does not answer (or is not migrated yet): from 250 ms, doubling.
    let mut backoff = Duration::from_millis(250);
    let mut failing = false;
    set_held(name, false);
    while !stop.is_cancelled() {
        let asked = Instant::now();
        let wait = match leases::try_acquire(&k.db, name, &k.node, k.ttl).await {
            Ok(Acquire::Held(fence)) => {
                (failing, backoff) = (false, Duration::from_millis(250));
                let ended = hold(&k, name, fence, asked, &stop, &mut job).await;
                if ended == Ended::JobReturned && !stop.is_cancelled() {
                    tracing::warn!(lease = name, "the job ended on its own; lease released");
                    return;
                }
                continue;
            }
            // Just after it runs out (the database's clock decides; a few ms later suffice).
            Ok(Acquire::Busy { expires_in, .. }) => (expires_in + Duration::from_millis(20))
                .clamp(Duration::from_millis(20), renew_every),
            Err(e) => {
                if !failing {
                    tracing::warn!(lease = name, "cannot take the lease: {e}; retrying");
                }
                failing = true;
                let wait = backoff;
                backoff = (backoff * 2).min(renew_every);
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => {}
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The job returned while the lease was held (at `stop`, or on its own).
    JobReturned,
    /// The lease was lost and the job was stopped.
    Lost,
}

/// One tenure: run the job, renew, stop the job when the lease is lost; release at the end.
async fn hold<F, Fut>(
    k: &Keeper,
    name: &'static str,
    fence: Fence,
    asked: Instant,
    stop: &CancellationToken,
    job: &mut F,
) -> Ended
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tracing::info!(lease = name, node = %k.node, token = fence.token, "lease taken; starting the job");
    set_held(name, true);
    // By this node's own count the tenure lasts until here at most (counted from before the
    // statement was sent, so never later than the database's expiry).
    let mut valid_until = asked + k.ttl;
    let child = stop.child_token();
    // On a task of its own: a job waiting for the database (its fenced write holds the lease
    // row share-locked until its commit) must go on while this task renews.
    // Dropped with this task (it never is but at the process's end): the job goes with it.
    let mut guard = AbortOnDrop(tokio::spawn(scope(fence.clone(), job(child.clone()))));
    let run = &mut guard.0;
    let mut next_renew = Instant::now() + k.ttl / 3;
    let ended = loop {
        let deadline = tokio::time::Instant::from_std(next_renew.min(valid_until));
        tokio::select! {
            _ = &mut *run => break Ended::JobReturned,
            () = tokio::time::sleep_until(deadline) => {}
        }
        if Instant::now() >= valid_until {
            tracing::warn!(
                lease = name,
                token = fence.token,
                "lease not renewed in time; stopping the job"
            );
            break Ended::Lost;
        }
        let sent = Instant::now();
        match leases::renew(&k.db, &fence, k.ttl).await {
            Ok(true) => {
                valid_until = sent + k.ttl;
                next_renew = sent + k.ttl / 3;
            }
            Ok(false) => {
                tracing::warn!(
                    lease = name,
                    token = fence.token,
                    "lease lost to another node; stopping the job"
                );
                break Ended::Lost;
            }
            Err(e) => {
                tracing::warn!(lease = name, "cannot renew the lease: {e}; retrying");
                next_renew = Instant::now() + Duration::from_millis(500);
            }
        }
    };
    set_held(name, false);
    if ended == Ended::Lost {
        child.cancel();
        // The job's fenced writes are refused from now on; give it the lease time to stop.
        if tokio::time::timeout(k.ttl, &mut *run).await.is_err() {
            tracing::error!(
                lease = name,
                "the job did not stop after losing its lease; dropped"
            );
            run.abort();
        }
        return Ended::Lost;
    }
    // The job has returned (at `stop`, its token being a child of it): release the lease.
    if let Err(e) = leases::release(&k.db, &fence).await {
        tracing::warn!(
            lease = name,
            "releasing the lease: {e} (it runs out on its own)"
        );
    }
    tracing::info!(lease = name, token = fence.token, "lease released");
    Ended::JobReturned
}

/// A job's task, aborted when its keeper goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One piece of work under a lease taken once, not kept (an ACME order: `tls`): the lease is
/// taken if it is free, renewed every third of its time to live on a task of its own while the
/// value lives (so the work may last longer than one ttl), and released by [`Tenure::release`].
/// Dropped without it, the renewals stop and the lease runs out within its ttl. The work runs
/// through [`Tenure::run`], under the tenure's fence ([`current`]), and is stopped when the
/// lease is lost.
pub struct Tenure {
    name: &'static str,
    db: MySqlPool,
    fence: Fence,
    lost: CancellationToken,
    renewals: AbortOnDrop,
}

impl Tenure {
    /// Take `name` for `k.node` for `k.ttl` when it is free; `Ok(None)` while another node (or
    /// another tenure of this one) holds it.
    pub async fn take(
        k: &Keeper,
        name: &'static str,
    ) -> Result<Option<Tenure>, crate::store::Error> {
        let asked = Instant::now();
        let fence = match leases::try_acquire(&k.db, name, &k.node, k.ttl).await? {
            Acquire::Held(fence) => fence,
            Acquire::Busy { .. } => return Ok(None),
        };
        set_held(name, true);
        let lost = CancellationToken::new();
        let renewals = AbortOnDrop(tokio::spawn(renew_until_lost(
            k.db.clone(),
            name,
            fence.clone(),
            k.ttl,
            asked,
            lost.clone(),
        )));
        Ok(Some(Tenure {
            name,
            db: k.db.clone(),
            fence,
            lost,
            renewals,
        }))
    }

    /// The tenure: what fenced writes check.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// The lease was lost (ran out unrenewed, or another node took it).
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Run `work` under this tenure ([`current`] answers its fence inside it); `None` when the
    /// lease is lost first (the work is dropped: its fenced writes would be refused anyway).
    pub async fn run<F: Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            out = scope(self.fence.clone(), work) => Some(out),
            () = self.lost.cancelled() => None,
        }
    }

    /// Stop renewing and give the lease up (another node may take it at once).
    pub async fn release(self) {
        self.renewals.0.abort();
        if !self.lost.is_cancelled() {
            match leases::release(&self.db, &self.fence).await {
                Ok(_) => tracing::debug!(
                    lease = self.name,
                    token = self.fence.token,
                    "lease released"
                ),
                Err(e) => tracing::warn!(
                    lease = self.name,
                    "releasing the lease: {e} (it runs out on its own)"
                ),
            }
        }
    }
}

impl Drop for Tenure {
    fn drop(&mut self) {
        self.renewals.0.abort();
        set_held(self.name, false);
    }
}

/// A [`Tenure`]'s renewals: every third of `ttl`, until the lease is lost (a renewal finds it
/// gone, or renewals fail until it would have run out by this node's count); then `lost`.
async fn renew_until_lost(
    db: MySqlPool,
    name: &'static str,
    fence: Fence,
    ttl: Duration,
    asked: Instant,
    lost: CancellationToken,
) {
    let mut valid_until = asked + ttl;
    let mut next_renew = Instant::now() + ttl / 3;
    loop {
        tokio::time::sleep_until(tokio::time::Instant::from_std(next_renew.min(valid_until))).await;
        if Instant::now() >= valid_until {
            tracing::warn!(
                lease = name,
                token = fence.token,
                "lease not renewed in time"
            );
            break;
        }
        let sent = Instant::now();
        match leases::renew(&db, &fence, ttl).await {
            Ok(true) => {
                valid_until = sent + ttl;
                next_renew = sent + ttl / 3;
            }
            Ok(false) => {
                tracing::warn!(
                    lease = name,
                    token = fence.token,
                    "lease lost to another node"
                );
                break;
            }
            Err(e) => {
                tracing::warn!(lease = name, "cannot renew the lease: {e}; retrying");
                next_renew = Instant::now() + Duration::from_millis(500);
            }
        }
    }
    set_held(name, false);
    lost.cancel();
}

/// Name a lease this process may take (`soko_lease_held{name}` shows 0 until it does).
pub fn note(name: &'static str) {
    if let Ok(mut m) = HELD.lock() {
        m.entry(name).or_insert(false);
    }
}
