//! One supervised service: start, wait for readiness, watch, restart with back-off, detect a
//! crash loop, stop on request. Its state is published on a `watch` channel that the status
//! snapshot, readiness waits and tests read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::pidfile::PidFile;
use super::runtime::{BoxFuture, Exit, Launch, Runtime};
use crate::config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Starting,
    Running,
    Backoff,
    CrashLoop,
    Stopping,
    Stopped,
    /// Run by someone else (`mode: external`); only probed.
    External,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub name: String,
    pub runtime: String,
    pub state: State,
    pub ready: bool,
    pub pid: Option<u32>,
    /// Unix seconds of the current state's start.
    pub since: u64,
    pub restarts: u32,
    pub consecutive_failures: u32,
    pub last_exit: Option<String>,
    pub last_error: Option<String>,
    pub endpoint: String,
    /// Why this runtime runs the service (`supervisor.runtime` and what was found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_reason: Option<String>,
    /// The current container (short id), in the container runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Where connections from this host reach the service from (container gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_host: Option<String>,
    /// The container engine's memory and CPU figures for the current container, sampled every
    /// few seconds while it runs (container runtime only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<super::runtime::Usage>,
}

impl Status {
    pub fn new(name: &str, runtime: &str, state: State, endpoint: String) -> Self {
        Status {
            name: name.into(),
            runtime: runtime.into(),
            state,
            ready: false,
            pid: None,
            since: now_unix(),
            restarts: 0,
            consecutive_failures: 0,
            last_exit: None,
            last_error: None,
            endpoint,
            runtime_reason: None,
            container_id: None,
            peer_host: None,
            usage: None,
        }
    }

    /// Resident memory: the engine's figure for a container (the whole container, not only
    /// its main process), else the process's RSS from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.usage
            .map(|u| u.memory_bytes)
            .or_else(|| self.pid.and_then(super::pidfile::rss_bytes))
    }
}

/// How often a running container's statistics are read from the engine.
const USAGE_EVERY: Duration = Duration::from_secs(5);

/// Keeps `usage` of the status current while one container runs; aborted when the run ends.
async fn sample_usage(runtime: Arc<dyn Runtime>, id: String, tx: watch::Sender<Status>) {
    loop {
        let usage = runtime.usage(&id).await;
        if usage.is_some() {
            tx.send_modify(|s| s.usage = usage);
        }
        tokio::time::sleep(USAGE_EVERY).await;
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub use crate::clock::now_unix;

/// Readiness check: `Ok` once the service answers its protocol.
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;
/// Work before each start (e.g. initialising MariaDB's data directory on the first one).
pub type Prepare = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

pub struct ServiceSpec {
    pub name: &'static str,
    pub launch: Launch,
    /// Loopback port the service listens on (checked free before each start).
    pub port: u16,
    pub probe: Probe,
    pub prepare: Option<Prepare>,
}

/// Restart delay after `failures` failed runs in a row: doubling from `initial`, capped.
pub fn backoff(policy: &config::Supervisor, failures: u32) -> Duration {
    let max = Duration::from_secs(policy.backoff_max_secs);
    if failures >= policy.crash_loop_after {
        return max;
    }
    let exp = failures.saturating_sub(1).min(20);
    Duration::from_millis(policy.backoff_initial_ms.saturating_mul(1 << exp)).min(max)
}

/// Handle to a running supervision task.
pub struct Handle {
    pub status: watch::Receiver<Status>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    stop: CancellationToken,
    restart: Arc<tokio::sync::Notify>,
}

impl Handle {
    /// Wait until ready, until `timeout`, or until the service is in a crash loop (no point
    /// waiting longer); `Err` carries the last error seen.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let mut rx = self.status.clone();
        let waited = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| s.ready || s.state == State::CrashLoop),
        )
        .await;
        match waited {
            Ok(Ok(s)) if s.ready => Ok(()),
            _ => Err(self
                .status
                .borrow()
                .last_error
                .clone()
                .unwrap_or_else(|| format!("not ready after {}s", timeout.as_secs()))),
        }
    }

    /// Ask for a restart (stop then start again, no back-off).
    pub fn restart(&self) {
        self.restart.notify_one();
    }

    /// Graceful stop; returns when the service has exited. Later calls return at once.
    pub async fn stop(&self) {
        self.stop.cancel();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

pub fn spawn(
    spec: ServiceSpec,
    runtime: Arc<dyn Runtime>,
    policy: config::Supervisor,
    pidfile: PidFile,
) -> Handle {
    let endpoint = format!("127.0.0.1:{}", spec.port);
    let mut initial = Status::new(spec.name, runtime.kind(), State::Starting, endpoint);
    initial.runtime_reason = runtime.reason();
    let (tx, rx) = watch::channel(initial);
    let stop = CancellationToken::new();
    let restart = Arc::new(tokio::sync::Notify::new());
    let task = tokio::spawn(supervise(
        spec,
        runtime,
        policy,
        pidfile,
        tx,
        stop.clone(),
        restart.clone(),
    ));
    Handle {
        status: rx,
        task: tokio::sync::Mutex::new(Some(task)),
        stop,
        restart,
    }
}

fn set(tx: &watch::Sender<Status>, f: impl FnOnce(&mut Status)) {
    tx.send_modify(|s| {
        let before = s.state;
        f(s);
        if s.state != before {
            s.since = now_unix();
        }
    });
}

async fn supervise(
    spec: ServiceSpec,
    runtime: Arc<dyn Runtime>,
    policy: config::Supervisor,
    pidfile: PidFile,
    tx: watch::Sender<Status>,
    stop: CancellationToken,
    restart: Arc<tokio::sync::Notify>,
) {
    let name = spec.name;
    let grace = Duration::from_secs(policy.stop_timeout_secs);
    let stable = Duration::from_secs(policy.stable_after_secs);
    let start_timeout = Duration::from_secs(policy.start_timeout_secs);
    let mut first = true;
    loop {
        set(&tx, |s| {
            s.state = State::Starting;
            s.ready = false;
            s.pid = None;
            s.usage = None;
        });
        match start_once(&spec, runtime.as_ref(), &pidfile, grace).await {
            Err(e) => {
                tracing::error!(service = name, "could not start: {e}");
                set(&tx, |s| s.last_error = Some(e));
            }
            Ok(mut running) => {
                let pid = running.pid();
                let started = Instant::now();
                let (container_id, peer_host) = (running.container_id(), running.peer_host());
                let _sampler = container_id.clone().map(|id| {
                    AbortOnDrop(tokio::spawn(sample_usage(runtime.clone(), id, tx.clone())))
                });
                set(&tx, |s| {
                    s.state = State::Running;
                    s.pid = pid;
                    s.container_id = container_id;
                    s.peer_host = peer_host;
                    if !first {
                        s.restarts += 1;
                    }
                });
                tracing::info!(service = name, pid, "started");
                // Readiness: probe until it answers, while watching for death, stop, restart.
                let event = {
                    let lifetime = async {
                        let early = {
                            let ready = wait_probe(&spec, start_timeout, &tx);
                            tokio::pin!(ready);
                            tokio::select! {
                                exit = running.wait() => Some(exit),
                                () = &mut ready => None,
                            }
                        };
                        match early {
                            Some(exit) => exit,
                            None => {
                                // A run that has stayed up for `stable` ends the failure streak
                                // now, not at its next death: the status must not show old
                                // failures against a healthy service.
                                let wait = running.wait();
                                tokio::pin!(wait);
                                let left = stable.saturating_sub(started.elapsed());
                                tokio::select! {
                                    exit = &mut wait => exit,
                                    () = tokio::time::sleep(left) => {
                                        set(&tx, |s| s.consecutive_failures = 0);
                                        wait.await
                                    }
                                }
                            }
                        }
                    };
                    tokio::select! {
                        exit = lifetime => Event::Exited(exit),
                        () = stop.cancelled() => Event::Stop,
                        () = restart.notified() => Event::Restart,
                    }
                };
                let exit = match event {
                    Event::Exited(exit) => exit,
                    Event::Restart => {
                        tracing::info!(service = name, "restart requested");
                        set(&tx, |s| {
                            s.state = State::Stopping;
                            s.ready = false;
                        });
                        let exit = running.stop(grace).await;
                        pidfile.remove();
                        set(&tx, |s| {
                            s.last_exit = Some(format!("{exit} (restart requested)"));
                            s.consecutive_failures = 0;
                        });
                        first = false;
                        continue;
                    }
                    Event::Stop => {
                        set(&tx, |s| {
                            s.state = State::Stopping;
                            s.ready = false;
                        });
                        let exit = running.stop(grace).await;
                        pidfile.remove();
                        tracing::info!(service = name, "stopped: {exit}");
                        set(&tx, |s| {
                            s.state = State::Stopped;
                            s.pid = None;
                            s.usage = None;
                            s.last_exit = Some(exit.to_string());
                        });
                        return;
                    }
                };
                pidfile.remove();
                let ran = started.elapsed();
                tracing::error!(service = name, ?ran, "died: {exit}");
                set(&tx, |s| {
                    s.ready = false;
                    s.pid = None;
                    s.usage = None;
                    s.last_exit = Some(exit.to_string());
                    if ran >= stable {
                        s.consecutive_failures = 0;
                    }
                    if !matches!(exit, Exit::Code(0)) || s.last_error.is_none() {
                        s.last_error = Some(format!("{exit} after {}s", ran.as_secs()));
                    }
                });
            }
        }
        first = false;
        let failures = tx.borrow().consecutive_failures + 1;
        let delay = backoff(&policy, failures);
        let crash_loop = failures >= policy.crash_loop_after;
        set(&tx, |s| {
            s.consecutive_failures = failures;
            s.state = if crash_loop {
                State::CrashLoop
            } else {
                State::Backoff
            };
        });
        if crash_loop {
            tracing::error!(
                service = name,
                failures,
                "crash loop: retrying every {}s",
                delay.as_secs()
            );
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = restart.notified() => {}
            () = stop.cancelled() => {
                set(&tx, |s| s.state = State::Stopped);
                return;
            }
        }
    }
}

enum Event {
    Exited(Exit),
    Stop,
    Restart,
}

/// Orphan clean-up, port check, prepare hook, then the runtime's start.
async fn start_once(
    spec: &ServiceSpec,
    runtime: &dyn Runtime,
    pidfile: &PidFile,
    grace: Duration,
) -> Result<Box<dyn super::runtime::Running>, String> {
    pidfile.reap_orphan(&spec.launch.dir, grace).await;
    super::ports::ensure_free(spec.port, spec.name).map_err(|e| e.to_string())?;
    if let Some(prepare) = &spec.prepare {
        prepare().await?;
    }
    let running = runtime
        .start(spec.name, &spec.launch)
        .await
        .map_err(|e| e.to_string())?;
    // Pid files serve the process runtime's orphan clean-up; containers are found by label.
    if let (Some(pid), "process") = (running.pid(), runtime.kind()) {
        pidfile.write(pid);
    }
    Ok(running)
}

/// Probe every 200 ms until ready (sets `ready`), or give up after `timeout` (records why).
async fn wait_probe(spec: &ServiceSpec, timeout: Duration, tx: &watch::Sender<Status>) {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match (spec.probe)().await {
            Ok(()) => {
                tracing::info!(service = spec.name, "ready");
                set(tx, |s| {
                    s.ready = true;
                    s.last_error = None;
                });
                return;
            }
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            tracing::error!(
                service = spec.name,
                "not ready after {}s: {last}",
                timeout.as_secs()
            );
            set(tx, |s| {
                s.last_error = Some(format!("not ready after {}s: {last}", timeout.as_secs()))
            });
            // Keep watching the process; a late readiness still counts.
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if (spec.probe)().await.is_ok() {
                    set(tx, |s| {
                        s.ready = true;
                        s.last_error = None;
                    });
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps_and_crash_loop_waits_longest() {
        let p = config::Supervisor {
            backoff_initial_ms: 500,
            backoff_max_secs: 60,
            crash_loop_after: 5,
            ..Default::default()
        };
        assert_eq!(backoff(&p, 1), Duration::from_millis(500));
        assert_eq!(backoff(&p, 2), Duration::from_secs(1));
        assert_eq!(backoff(&p, 4), Duration::from_secs(4));
        assert_eq!(backoff(&p, 5), Duration::from_secs(60));
        let tight = config::Supervisor {
            backoff_max_secs: 2,
            crash_loop_after: 50,
            ..p
        };
        assert_eq!(backoff(&tight, 30), Duration::from_secs(2));
    }

    /// A real child that fails twice, then stays up: once it has been up `stable_after_secs`,
    /// the failure streak is over in the status, while the restart count keeps its history.
    #[tokio::test]
    async fn a_stable_run_ends_the_failure_streak_while_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let script = "n=$(cat tries 2>/dev/null || echo 0); echo $((n+1)) > tries; \
                      [ \"$n\" -ge 2 ] && exec sleep 60; exit 3";
        let spec = ServiceSpec {
            name: "flaky",
            launch: Launch {
                program: "/bin/sh".into(),
                args: vec!["-c".into(), script.into()],
                env: vec![],
                dir: dir.path().to_owned(),
                container: None,
            },
            port: 0,
            probe: Arc::new(|| Box::pin(async { Ok(()) })),
            prepare: None,
        };
        let policy = config::Supervisor {
            backoff_initial_ms: 50,
            backoff_max_secs: 1,
            crash_loop_after: 10,
            stable_after_secs: 1,
            ..Default::default()
        };
        let handle = spawn(
            spec,
            Arc::new(super::super::runtime::ProcessRuntime),
            policy,
            PidFile::new(dir.path(), "flaky"),
        );
        let mut rx = handle.status.clone();
        let up = tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|s| s.restarts == 2 && s.ready),
        )
        .await
        .is_ok();
        assert!(up, "{:?}", *handle.status.borrow());
        assert_eq!(handle.status.borrow().consecutive_failures, 2);
        let healed = tokio::time::timeout(
            Duration::from_secs(5),
            rx.wait_for(|s| s.consecutive_failures == 0),
        )
        .await
        .is_ok();
        let now = handle.status.borrow().clone();
        assert!(healed, "{now:?}");
        assert_eq!((now.restarts, now.state), (2, State::Running));
        handle.stop().await;
    }
}
