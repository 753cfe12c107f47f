//! Read replicas (`database.replicas`): a pool per replica, a probe that measures each one's
//! lag every second, and [`Reads`], which hands read-only work a healthy replica (round-robin)
//! or the primary.
//!
//! Lag comes from a heartbeat, not `SHOW SLAVE STATUS` (which needs REPLICATION CLIENT / SLAVE
//! MONITOR, a privilege the app user does not have and should not get): every
//! [`BEAT_EVERY`] the primary's `NOW(6)` is written into `replica_heartbeat`, and every
//! [`PROBE_EVERY`] the row is read back on each replica. A replica showing the newest beat is up
//! to date (lag 0); one showing an older beat has not applied the next beat this process wrote,
//! so it is behind by at least the primary's time now minus that beat's (and by less than one
//! beat interval more). Both times are the primary's clock: no skew between hosts enters.
//!
//! A replica is *healthy* while it answers and its lag is within `database.replica_max_lag_secs`;
//! *lagging* when it answers but is further behind (or has no heartbeat yet); *down* when it
//! does not answer. Reads that fail on a replica for want of a connection are run again on the
//! primary at once, and the replica is taken out until the next probe finds it well.
//!
//! Read-your-writes: work inside [`primary_only`]`(true, ..)` (the web layer's
//! `read_your_writes` middleware, for a session that wrote within the last few seconds, and
//! every non-GET request) always reads the primary.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use sqlx::mysql::MySqlConnectOptions;
use tokio_util::sync::CancellationToken;

use super::{Error, Timed};

/// How often the primary's time is written into the heartbeat row.
pub const BEAT_EVERY: Duration = Duration::from_millis(250);
/// How often each replica's heartbeat is read.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// The beats this process remembers having written (a few seconds' worth).
const BEATS_KEPT: usize = 64;
/// How long one probe of one server may take before it counts as down.
const PROBE_WAIT: Duration = Duration::from_millis(1500);

tokio::task_local! {
    static PRIMARY_ONLY: bool;
}

/// Run `f` with its reads on the primary (`yes`), or routed as usual.
pub async fn primary_only<F: Future>(yes: bool, f: F) -> F::Output {
    PRIMARY_ONLY.scope(yes, f).await
}

fn forced_primary() -> bool {
    PRIMARY_ONLY.try_with(|p| *p).unwrap_or(false)
}

/// What a replica is doing, as the probe last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaState {
    /// Answers, and is within the lag bound: gets reads.
    Healthy,
    /// Answers, but further behind than the bound (or no heartbeat has reached it yet).
    Lagging,
    /// Does not answer (or not probed yet).
    #[default]
    Down,
}

impl ReplicaState {
    pub fn word(self) -> &'static str {
        match self {
            ReplicaState::Healthy => "healthy",
            ReplicaState::Lagging => "lagging",
            ReplicaState::Down => "down",
        }
    }
}

/// One replica in `soko status`, the console and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicaView {
    /// `host:port` of its URL (never the user or password).
    pub name: String,
    pub state: ReplicaState,
    /// Seconds behind the primary; `None` while not measurable (down, no heartbeat yet, or
    /// the primary does not answer).
    pub lag_secs: Option<f64>,
    /// Why it is down or lagging.
    pub error: Option<String>,
    /// Reads it answered since the start.
    pub reads: u64,
}

impl ReplicaView {
    /// `10.0.0.7:3306: healthy · 0.3 s behind · 1200 reads` (`soko status`, the console).
    pub fn line(&self) -> String {
        let lag = self
            .lag_secs
            .map(|l| format!("{l:.1} s behind"))
            .unwrap_or_else(|| "lag unknown".into());
        let why = self
            .error
            .as_deref()
            .map(|e| format!(" · {e}"))
            .unwrap_or_default();
        format!(
            "{}: {} · {lag} · {} reads{why}",
            self.name,
            self.state.word(),
            self.reads
        )
    }
}

struct Replica {
    pool: MySqlPool,
    view: Mutex<ReplicaView>,
    reads: AtomicU64,
}

impl Replica {
    fn healthy(&self) -> bool {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).state == ReplicaState::Healthy
    }

    fn set(&self, state: ReplicaState, lag_secs: Option<f64>, error: Option<String>) {
        let mut v = self.view.lock().unwrap_or_else(|e| e.into_inner());
        v.state = state;
        v.lag_secs = lag_secs;
        v.error = error;
    }
}

/// Where reads go: the primary alone (no replicas configured: one pool, as on a single box),
/// or the replicas the probe finds healthy.
pub struct Reads {
    primary: MySqlPool,
    replicas: Vec<Replica>,
    next: AtomicUsize,
    max_lag: Duration,
    primary_reads: AtomicU64,
    /// The beats this process wrote, oldest first (the primary's clock, microseconds).
    beats: Mutex<std::collections::VecDeque<i64>>,
    /// The catalogue generation last seen by [`for_page`](Self::for_page), and when it changed.
    generation: Mutex<(u64, Option<Instant>)>,
}

/// Where one piece of read-only work goes (see [`Reads::choose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice(Option<usize>);

impl Choice {
    pub fn is_replica(self) -> bool {
        self.0.is_some()
    }
}

/// Run read-only work on a healthy read replica, or the primary; when the replica cannot be
/// reached, run it again on the primary (the caller sees no error):
/// `read_on!(state.reads, |db| catalogue::feed(db, ..).await)`. The body names the pool it
/// is given and is an expression of type `Result<_, E>` with `E:`[`Unreachable`]; it may
/// run twice. (A macro rather than a method taking an async closure: handlers' futures
/// must be `Send`, which the compiler cannot yet prove through `AsyncFn` bounds.)
#[macro_export]
macro_rules! read_on {
    ($reads:expr, |$db:ident| $body:expr) => {
        $crate::read_on!(@with $reads, $reads.choose(), |$db| $body)
    };
    ($reads:expr, page $generation:expr, |$db:ident| $body:expr) => {
        $crate::read_on!(@with $reads, $reads.choose_for_page($generation), |$db| $body)
    };
    (@with $reads:expr, $choice:expr, |$db:ident| $body:expr) => {{
        let reads: &$crate::store::replicas::Reads = &$reads;
        let choice = $choice;
        let result = {
            let $db = reads.pool_of(choice);
            $body
        };
        match result {
            Err(e) if reads.failed(choice, &e) => {
                let $db = reads.primary();
                $body
            }
            other => other,
        }
    }};
}

/// A query failed for want of the server (not for anything in the query): run it elsewhere.
pub trait Unreachable {
    fn unreachable(&self) -> bool;
}

impl Unreachable for Error {
    fn unreachable(&self) -> bool {
        match self {
            Error::Sqlx(e) => sqlx_unreachable(e),
            _ => false,
        }
    }
}

pub fn sqlx_unreachable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
    )
}

/// `host:port` of a replica's URL.
pub fn replica_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority.rsplit('@').next().unwrap_or_default().to_owned()
}

/// Connection options of each of `database.replicas`: the URL's user, host, port and database,
/// `database_replica_password` (else `database_password`), and the primary's session settings.
pub fn replica_options(
    cfg: &crate::config::Config,
    secrets: &crate::config::secrets::Secrets,
) -> Result<Vec<(String, MySqlConnectOptions)>, Error> {
    use std::str::FromStr;
    let password = secrets
        .database_replica_password
        .as_ref()
        .or(secrets.database_password.as_ref());
    cfg.database
        .replicas
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let opts = MySqlConnectOptions::from_str(&url.replacen("mariadb://", "mysql://", 1))
                .map_err(|e| Error::Settings(format!("database.replicas[{i}]: {e}")))?;
            let opts = match password {
                Some(p) => opts.password(p.expose()),
                None => opts,
            };
            Ok((
                replica_name(url),
                opts.charset("utf8mb4")
                    .timezone(Some("+00:00".into()))
                    .statement_cache_capacity(256),
            ))
        })
        .collect()
}

impl Reads {
    /// Everything on `primary` (no replicas).
    pub fn single(primary: MySqlPool) -> Reads {
        Reads::new(primary, Vec::new(), Duration::from_secs(2))
    }

    /// Reads over `replicas` (name, pool), none used until the probe has found it healthy.
    pub fn new(primary: MySqlPool, replicas: Vec<(String, MySqlPool)>, max_lag: Duration) -> Reads {
        Reads {
            primary,
            replicas: replicas
                .into_iter()
                .map(|(name, pool)| Replica {
                    pool,
                    view: Mutex::new(ReplicaView {
                        name,
                        error: Some("not checked yet".into()),
                        ..ReplicaView::default()
                    }),
                    reads: AtomicU64::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
            max_lag,
            primary_reads: AtomicU64::new(0),
            beats: Mutex::new(std::collections::VecDeque::new()),
            generation: Mutex::new((0, None)),
        }
    }

    /// The reads of the app's config: pools for `database.replicas` (lazy, as the primary's).
    pub fn from_config(
        cfg: &crate::config::Config,
        secrets: &crate::config::secrets::Secrets,
        primary: MySqlPool,
    ) -> Result<Reads, Error> {
        let replicas = replica_options(cfg, secrets)?
            .into_iter()
            .map(|(name, opts)| (name, super::pool(opts, cfg.database.max_connections)))
            .collect();
        Ok(Reads::new(
            primary,
            replicas,
            Duration::from_secs(cfg.database.replica_max_lag_secs),
        ))
    }

    pub fn has_replicas(&self) -> bool {
        !self.replicas.is_empty()
    }

    pub fn primary(&self) -> &MySqlPool {
        &self.primary
    }

    pub fn max_lag(&self) -> Duration {
        self.max_lag
    }

    /// How long after a write a session reads from the primary: a replica more than
    /// `max_lag` behind gets no reads, and the probe may be one interval late in seeing it,
    /// with the heartbeat's own interval on top; then a margin.
    pub fn read_your_writes_window(&self) -> Duration {
        self.max_lag + PROBE_EVERY * 2 + Duration::from_secs(3)
    }

    /// The index of a healthy replica (round-robin), unless this task reads the primary.
    fn pick(&self) -> Option<usize> {
        if self.replicas.is_empty() || forced_primary() {
            return None;
        }
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.replicas[i].healthy())
    }

    /// Where the next read-only work goes: a healthy replica, or the primary (see
    /// [`read_on!`](crate::read_on), which runs it there and again on the primary if the
    /// replica cannot be reached).
    pub fn choose(&self) -> Choice {
        let c = Choice(self.pick());
        match c.0 {
            Some(i) => self.replicas[i].reads.fetch_add(1, Ordering::Relaxed),
            None => self.primary_reads.fetch_add(1, Ordering::Relaxed),
        };
        c
    }

    /// [`choose`](Self::choose) for a page the page cache keeps while catalogue generation
    /// `generation` is current: for a while after the generation changed, the primary, so that
    /// a replica that has not yet applied the change cannot put the old page back in the cache
    /// under the new generation.
    pub fn choose_for_page(&self, generation: u64) -> Choice {
        let recent = {
            let mut g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
            if g.0 != generation {
                // Seen changed now (it may have changed earlier: later is the safe side).
                *g = (generation, Some(Instant::now()));
            }
            g.1.is_some_and(|at| at.elapsed() < self.read_your_writes_window())
        };
        if recent && self.has_replicas() {
            self.primary_reads.fetch_add(1, Ordering::Relaxed);
            return Choice(None);
        }
        self.choose()
    }

    /// The pool of `c`.
    pub fn pool_of(&self, c: Choice) -> &MySqlPool {
        match c.0 {
            Some(i) => &self.replicas[i].pool,
            None => &self.primary,
        }
    }

    /// Work on `c` failed with `e`: whether to run it again on the primary (a replica that
    /// could not be reached, now taken out of the reads until the probe finds it well).
    pub fn failed<E: Unreachable>(&self, c: Choice, e: &E) -> bool {
        let Some(i) = c.0 else {
            return false;
        };
        if !e.unreachable() {
            return false;
        }
        let r = &self.replicas[i];
        let name = r.view.lock().map(|v| v.name.clone()).unwrap_or_default();
        tracing::warn!(replica = %name, "read replica unreachable; reading the primary");
        r.set(
            ReplicaState::Down,
            None,
            Some("a read could not reach it".into()),
        );
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Each replica as the probe last saw it.
    pub fn views(&self) -> Vec<ReplicaView> {
        self.replicas
            .iter()
            .map(|r| {
                let mut v = r.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
                v.reads = r.reads.load(Ordering::Relaxed);
                v
            })
            .collect()
    }

    /// Reads routed to the primary since the start (replicas configured, none healthy, or the
    /// session had just written).
    pub fn primary_reads(&self) -> u64 {
        self.primary_reads.load(Ordering::Relaxed)
    }

    /// Write one beat on the primary and remember it.
    pub async fn beat(&self) {
        match tokio::time::timeout(PROBE_WAIT, beat(&self.primary)).await {
            Ok(Ok(at)) => {
                let mut b = self.beats.lock().unwrap_or_else(|e| e.into_inner());
                if b.len() >= BEATS_KEPT {
                    b.pop_front();
                }
                b.push_back(at);
            }
            // A read-only primary (a standby) keeps its replicated row; a primary that does
            // not answer shows in the replicas' state (lag unknown).
            Ok(Err(e)) => tracing::debug!("replica heartbeat not written: {e}"),
            Err(_) => tracing::debug!("replica heartbeat: the primary did not answer in time"),
        }
    }

    /// Read the primary's newest beat and time, then every replica's heartbeat, and set each
    /// replica's state.
    pub async fn probe(&self) {
        let primary = tokio::time::timeout(PROBE_WAIT, primary_time(&self.primary)).await;
        let primary = match primary {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the primary did not answer in time".to_owned()),
        };
        let reads = self.replicas.iter().map(|r| async move {
            let seen = tokio::time::timeout(PROBE_WAIT, seen(&r.pool)).await;
            (r, seen)
        });
        for (r, seen) in futures_util::future::join_all(reads).await {
            match (seen, &primary) {
                (Err(_), _) => r.set(
                    ReplicaState::Down,
                    None,
                    Some("did not answer in time".into()),
                ),
                (Ok(Err(e)), _) => r.set(ReplicaState::Down, None, Some(e.to_string())),
                (Ok(Ok(None)), _) => r.set(
                    ReplicaState::Lagging,
                    None,
                    Some("no heartbeat from the primary has reached it yet".into()),
                ),
                (Ok(Ok(Some(_))), Err(e)) => r.set(
                    ReplicaState::Lagging,
                    None,
                    Some(format!("lag unknown: {e}")),
                ),
                (Ok(Ok(Some(at))), Ok(p)) => {
                    let written: Vec<i64> = self
                        .beats
                        .lock()
                        .map(|b| b.iter().copied().collect())
                        .unwrap_or_default();
                    let lag = lag_secs(*p, &written, at);
                    if lag <= self.max_lag.as_secs_f64() {
                        r.set(ReplicaState::Healthy, Some(lag), None);
                    } else {
                        r.set(
                            ReplicaState::Lagging,
                            Some(lag),
                            Some(format!(
                                "{lag:.1} s behind (more than {} s)",
                                self.max_lag.as_secs()
                            )),
                        );
                    }
                }
            }
        }
    }

    /// Probe every [`PROBE_EVERY`] until `cancel` (nothing to do without replicas).
    pub fn spawn_probe(self: &Arc<Self>, cancel: CancellationToken) {
        if self.replicas.is_empty() {
            return;
        }
        let (reads, stop) = (self.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(BEAT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => reads.beat().await,
                }
            }
        });
        let reads = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROBE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => reads.probe().await,
                }
            }
        });
    }
}

/// The primary's heartbeat: its newest beat and its time now (microseconds, its clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beat {
    pub newest_us: i64,
    pub now_us: i64,
}

/// Seconds a replica showing beat `seen_us` is behind: 0 when it has the newest beat; else the
/// age of the first beat after it that this process wrote (`written`), which the replica has
/// not applied yet; without one (another node beat), the age of the beat it shows.
pub fn lag_secs(primary: Beat, written: &[i64], seen_us: i64) -> f64 {
    if seen_us >= primary.newest_us {
        return 0.0;
    }
    let missed = written
        .iter()
        .copied()
        .filter(|&b| b > seen_us)
        .min()
        .unwrap_or(seen_us);
    (primary.now_us - missed).max(0) as f64 / 1e6
}

/// Write the primary's time now into the heartbeat row; that time (microseconds, its clock).
pub async fn beat(primary: &MySqlPool) -> Result<i64, Error> {
    let now_us: i64 = sqlx::query_scalar("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
        .fetch_one(primary)
        .timed()
        .await?;
    sqlx::query(
        "INSERT INTO replica_heartbeat (id, beat_us) VALUES (1, ?) \
         ON DUPLICATE KEY UPDATE beat_us = GREATEST(beat_us, VALUES(beat_us))",
    )
    .bind(now_us)
    .execute(primary)
    .timed()
    .await?;
    Ok(now_us)
}

/// The primary's newest beat and its time now.
pub async fn primary_time(primary: &MySqlPool) -> Result<Beat, Error> {
    let (newest_us, now_us): (Option<i64>, i64) = sqlx::query_as(
        "SELECT (SELECT beat_us FROM replica_heartbeat WHERE id = 1), \
         CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)",
    )
    .fetch_one(primary)
    .timed()
    .await?;
    Ok(Beat {
        newest_us: newest_us.unwrap_or(now_us),
        now_us,
    })
}

/// The primary's beat as this replica has it.
pub async fn seen(replica: &MySqlPool) -> Result<Option<i64>, Error> {
    Ok(
        sqlx::query_scalar("SELECT beat_us FROM replica_heartbeat WHERE id = 1")
            .fetch_optional(replica)
            .timed()
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_zero_with_the_newest_beat_and_the_primary_time_since_an_older_one() {
        let p = Beat {
            newest_us: 10_000_000,
            now_us: 10_400_000,
        };
        let written = [9_500_000, 9_750_000, 10_000_000];
        assert_eq!(lag_secs(p, &written, 10_000_000), 0.0);
        // It has the 9.5 s beat, not the 9.75 s one: behind by at least 10.4 - 9.75.
        assert_eq!(lag_secs(p, &written, 9_500_000), 0.65);
        // Older than anything remembered: the first remembered beat it lacks.
        assert_eq!(lag_secs(p, &written, 7_000_000), 0.9);
        // Beats of another node only: the age of the one it shows.
        assert_eq!(lag_secs(p, &[], 7_000_000), 3.4);
        // A replica ahead of what this primary read (another node beat since): up to date.
        assert_eq!(lag_secs(p, &written, 11_000_000), 0.0);
    }

    #[test]
    fn a_replica_is_named_by_host_and_port_only() {
        assert_eq!(
            replica_name("mysql://soko@10.0.0.7:3306/soko?ssl-mode=required"),
            "10.0.0.7:3306"
        );
        assert_eq!(replica_name("mariadb://db-2/soko"), "db-2");
    }
}
