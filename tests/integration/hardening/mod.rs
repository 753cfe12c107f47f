//! Attacks on a running `soko up` over real sockets: parallel password hashing (`passwords`),
//! slow, half-sent and stuck connections on every listener (`connections`), HTTP/2 rapid
//! reset (`rapid_reset`), and the backup tools' environment (`child_env`). The appliance
//! runs on the run's shared MariaDB and milvus-lite (external mode), so that the process
//! measured (RSS, file descriptors, stop time) is soko alone.

mod child_env;
mod connections;
mod doctor_posture;
mod passwords;
mod rapid_reset;
mod small_ones;
mod vector_breaker;

use std::time::Duration;

use soko::config::{Config, Mode};
use sqlx::MySqlPool;

use crate::common::{Appliance, random_suffix, shared, test_db};

/// A started, ready `soko up` with `edit` applied, on a fresh database and collection of the
/// shared services; and the app user's pool on that database.
pub async fn external_appliance(
    name: &str,
    edit: impl FnOnce(&mut Config),
) -> (Appliance, MySqlPool) {
    let (pool, db_cfg) = test_db().await;
    let shared = shared();
    let mut app = Appliance::prepare(name, |c| {
        c.database.mode = Mode::External;
        c.database.url = format!(
            "mysql://{}@127.0.0.1:{}/{}",
            db_cfg.database.user, db_cfg.database.embedded.port, db_cfg.database.name
        );
        c.vectors.mode = Mode::External;
        c.vectors.url = format!("http://127.0.0.1:{}", shared.cfg.vectors.embedded.port);
        c.vectors.collection = format!("h_{}", random_suffix());
        edit(c);
    });
    app.start_on_shared_database();
    app.wait_ready(&reqwest::Client::new(), Duration::from_secs(90))
        .await;
    (app, pool)
}

/// Wait until the appliance has loaded its embedding models (or given up on them): about
/// 100 MiB that would otherwise land in the middle of a memory measurement.
pub async fn models_settled(app: &Appliance) {
    let start = std::time::Instant::now();
    while !app.log_text().contains("embedding models") {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "models never loaded:\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resident memory of `pid`, in MiB (VmRSS in /proc/<pid>/status).
pub fn rss_mib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// Open file descriptors of `pid` (entries of /proc/<pid>/fd).
pub fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The largest value `probe` returned, sampled every 20 ms until the returned sender is
/// dropped or sent to; the result comes out of the join handle.
pub fn sample_max(
    probe: impl Fn() -> u64 + Send + 'static,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<u64>,
) {
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut max = probe();
        loop {
            tokio::select! {
                _ = &mut rx => return max.max(probe()),
                () = tokio::time::sleep(Duration::from_millis(20)) => max = max.max(probe()),
            }
        }
    });
    (tx, task)
}
