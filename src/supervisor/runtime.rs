//! How a service runs: as a native child process ([`ProcessRuntime`]) or a container
//! ([`super::container::ContainerRuntime`]). The supervisor only sees [`Runtime`] and
//! [`Running`], so restart, back-off and ordered stop are shared by both.

use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use super::Error;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What to run for one service, independent of how it is run.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// The service's private directory; also its working directory.
    pub dir: PathBuf,
    /// How the same service runs in a container (`None`: process runtime only).
    pub container: Option<super::container::ContainerSpec>,
}

/// A container's memory and CPU as its engine reports them (the process runtime reads
/// /proc instead).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// In use, without the reclaimable page cache where the engine tells it apart.
    pub memory_bytes: u64,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
}

/// Why a service stopped running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exit {
    Code(i32),
    Signal(String),
    /// Could not be observed (the runtime lost track of it).
    Unknown(String),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with code {c}"),
            Exit::Signal(s) => write!(f, "killed by {s}"),
            Exit::Unknown(why) => write!(f, "lost: {why}"),
        }
    }
}

pub trait Runtime: Send + Sync {
    /// `process` or `container`, for status output.
    fn kind(&self) -> &'static str;
    /// Why this runtime runs the services (the resolved `supervisor.runtime`), for status.
    fn reason(&self) -> Option<String> {
        None
    }
    /// Start the service; its output lines go to the log tagged with `service`.
    fn start<'a>(
        &'a self,
        service: &'static str,
        launch: &'a Launch,
    ) -> BoxFuture<'a, Result<Box<dyn Running>, Error>>;
    /// The engine's figures for a running container (`None` outside the container runtime).
    fn usage<'a>(&'a self, _container_id: &'a str) -> BoxFuture<'a, Option<Usage>> {
        Box::pin(async { None })
    }
}

pub trait Running: Send {
    fn pid(&self) -> Option<u32>;
    /// The container's id (short form), in the container runtime.
    fn container_id(&self) -> Option<String> {
        None
    }
    /// The address the service sees connections from this host arrive from: the container
    /// network's gateway in the container runtime (grants are made for it), else loopback.
    fn peer_host(&self) -> Option<String> {
        None
    }
    /// Resolves when the service exits by itself (or is killed from outside).
    fn wait(&mut self) -> BoxFuture<'_, Exit>;
    /// SIGTERM, then SIGKILL after `grace`. Returns how it ended.
    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, Exit>;
}

/// A runtime with the reason it was chosen (shown by `soko status` and the console).
pub struct Reasoned {
    pub inner: std::sync::Arc<dyn Runtime>,
    pub reason: String,
}

impl Runtime for Reasoned {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn reason(&self) -> Option<String> {
        Some(self.reason.clone())
    }

    fn start<'a>(
        &'a self,
        service: &'static str,
        launch: &'a Launch,
    ) -> BoxFuture<'a, Result<Box<dyn Running>, Error>> {
        self.inner.start(service, launch)
    }

    fn usage<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Option<Usage>> {
        self.inner.usage(container_id)
    }
}

/// Native child processes: each in its own process group (a terminal's Ctrl-C reaches only
/// `soko`, which then stops the children in order), with the parent-death signal set so that a
/// `kill -9` of `soko` still takes its children down.
pub struct ProcessRuntime;

impl Runtime for ProcessRuntime {
    fn kind(&self) -> &'static str {
        "process"
    }

    fn start<'a>(
        &'a self,
        service: &'static str,
        launch: &'a Launch,
    ) -> BoxFuture<'a, Result<Box<dyn Running>, Error>> {
        Box::pin(async move {
            let mut cmd = Command::new(&launch.program);
            crate::process_env::clean(&mut cmd)
                .args(&launch.args)
                .envs(launch.env.iter().map(|(k, v)| (k, v)))
                .current_dir(&launch.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(false);
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
                });
            }
            let mut child = cmd.spawn().map_err(|source| Error::Spawn {
                service,
                program: launch.program.clone(),
                source,
            })?;
            if let Some(out) = child.stdout.take() {
                tokio::spawn(forward_lines(service, out));
            }
            if let Some(err) = child.stderr.take() {
                tokio::spawn(forward_lines(service, err));
            }
            Ok(Box::new(ChildProcess { child }) as Box<dyn Running>)
        })
    }
}

struct ChildProcess {
    child: Child,
}

impl ChildProcess {
    fn signal_group(&self, signal: Signal) {
        if let Some(pid) = self.child.id() {
            let _ = killpg(Pid::from_raw(pid as i32), signal);
        }
    }
}

fn exit_of(status: std::io::Result<std::process::ExitStatus>) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(
                Signal::try_from(sig)
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_else(|_| format!("signal {sig}")),
            ),
            (None, None) => Exit::Unknown(s.to_string()),
        },
        Err(e) => Exit::Unknown(e.to_string()),
    }
}

impl Running for ChildProcess {
    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn wait(&mut self) -> BoxFuture<'_, Exit> {
        Box::pin(async move { exit_of(self.child.wait().await) })
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, Exit> {
        Box::pin(async move {
            if let Ok(Some(status)) = self.child.try_wait() {
                return exit_of(Ok(status));
            }
            self.signal_group(Signal::SIGTERM);
            match tokio::time::timeout(grace, self.child.wait()).await {
                Ok(status) => {
                    // Helpers the service left behind in its group go too.
                    self.signal_group(Signal::SIGKILL);
                    exit_of(status)
                }
                Err(_) => {
                    tracing::warn!(?grace, "did not stop in time; sending SIGKILL");
                    self.signal_group(Signal::SIGKILL);
                    exit_of(self.child.wait().await)
                }
            }
        })
    }
}

/// Child output into the appliance log, one event a line, tagged by service. MariaDB's own
/// `[ERROR]` / `[Warning]` markers keep their level.
async fn forward_lines(service: &'static str, stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log_line(service, &line);
    }
}

/// One line of a service's output (process or container) into the log, at its level.
pub fn log_line(service: &'static str, line: &str) {
    if line.trim().is_empty() {
        return;
    }
    if line.contains("[ERROR]") || line.contains("Traceback") || line.contains("[error]") {
        tracing::error!(target: "soko::child", service, "{line}");
    } else if line.contains("[Warning]") || line.contains("WARNING") || line.contains("[WARN]") {
        tracing::warn!(target: "soko::child", service, "{line}");
    } else {
        tracing::info!(target: "soko::child", service, "{line}");
    }
}

#[cfg(test)]
mod env_tests {
    use crate::config::Config;

    /// Whatever soko's own environment holds, a service gets only its spec's variables:
    /// processes the allow-list plus `Launch::env`, containers their `ContainerSpec::env`
    /// (the engine passes nothing of soko's). Neither names a secret.
    #[test]
    fn services_get_only_their_own_variables() {
        let cfg = Config::default();
        for spec in [
            // `spec_with`: `spec` would draw a server id under the default data directory.
            super::super::mysql::spec_with(&cfg, true, 1),
            super::super::milvus::spec(&cfg, true),
        ] {
            let launch = &spec.launch;
            for (k, _) in &launch.env {
                let k = k.to_string_lossy();
                assert!(!k.starts_with("SOKO_"), "{}: {k}", spec.name);
            }
            let container = launch.container.as_ref().expect("a container spec");
            let body = container.create_body(spec.name, &cfg.data_dir);
            let env = body.env.unwrap_or_default();
            assert_eq!(env, container.env, "{}", spec.name);
            for v in &env {
                let key = v.split('=').next().unwrap_or_default();
                assert!(
                    !key.starts_with("SOKO_")
                        && !key.contains("PASSWORD")
                        && !key.contains("SECRET")
                        && !key.contains("TOKEN"),
                    "{}: {v}",
                    spec.name
                );
            }
        }
        for name in crate::process_env::ALLOW {
            assert!(!name.starts_with("SOKO_"));
        }
    }
}
