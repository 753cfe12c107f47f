//! One run of a service's container: watched through the engine (it survives an engine
//! restart), stopped and removed through it, its exit told the way the supervisor reports
//! exits, and its memory and CPU read from the engine's statistics.

use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as ApiError;
use bollard::models::{ContainerState, ContainerStatsResponse};
use bollard::query_parameters::{
    InspectContainerOptions, RemoveContainerOptions, StatsOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use nix::sys::signal::Signal;

use super::super::runtime::{BoxFuture, Exit, Running, Usage};
use super::short;

/// One run of a service's container.
pub(super) struct ContainerRun {
    pub(super) docker: Docker,
    pub(super) id: String,
    pub(super) pid: Option<u32>,
    pub(super) gateway: Option<String>,
    pub(super) service: &'static str,
    pub(super) stop_limit: Option<Duration>,
}

impl Running for ContainerRun {
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn container_id(&self) -> Option<String> {
        Some(short(&self.id).to_owned())
    }

    fn peer_host(&self) -> Option<String> {
        self.gateway.clone()
    }

    /// Polls the engine (twice a second): a wait call would die with the engine's service,
    /// while the container itself survives an engine restart (podman's conmon, Docker's
    /// containerd-shim keep it). While the engine is unreachable the container is taken to be
    /// running; it is judged again when the engine answers.
    fn wait(&mut self) -> BoxFuture<'_, Exit> {
        Box::pin(async move {
            let mut unreachable = false;
            loop {
                match self
                    .docker
                    .inspect_container(&self.id, None::<InspectContainerOptions>)
                    .await
                {
                    Ok(c) => {
                        if unreachable {
                            tracing::info!(
                                service = self.service,
                                "container engine answers again"
                            );
                            unreachable = false;
                        }
                        let state = c.state.unwrap_or_default();
                        if !state.running.unwrap_or(false) {
                            return exit_of(&state);
                        }
                    }
                    Err(ApiError::DockerResponseServerError {
                        status_code: 404, ..
                    }) => {
                        return Exit::Unknown("the container was removed".into());
                    }
                    Err(e) => {
                        if !unreachable {
                            tracing::warn!(
                                service = self.service,
                                "container engine unreachable ({e}); the container keeps running, retrying"
                            );
                            unreachable = true;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, Exit> {
        let grace = self.stop_limit.map_or(grace, |limit| grace.min(limit));
        Box::pin(async move {
            let exit = stop_and_remove(&self.docker, &self.id, grace).await;
            match exit {
                Some(exit) => exit,
                None => {
                    // The engine does not answer: signal the service's process directly.
                    match self.pid {
                        Some(pid) => stop_pid(pid, grace).await,
                        None => Exit::Unknown("container engine unreachable".into()),
                    }
                }
            }
        })
    }
}

/// Stop (SIGTERM, SIGKILL after `grace`), read the exit, remove. `None` when the engine does
/// not answer.
pub(super) async fn stop_and_remove(docker: &Docker, id: &str, grace: Duration) -> Option<Exit> {
    let secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
    let stopped = docker
        .stop_container(
            id,
            Some(StopContainerOptions {
                t: Some(secs),
                signal: None,
            }),
        )
        .await;
    let exit = match docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        Ok(c) => exit_of(&c.state.unwrap_or_default()),
        Err(ApiError::DockerResponseServerError {
            status_code: 404, ..
        }) => return Some(Exit::Unknown("the container was removed".into())),
        Err(e) => {
            tracing::warn!(container = %short(id), "cannot stop the container through the engine: {e} (stop: {stopped:?})");
            return None;
        }
    };
    if let Err(e) = docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
    {
        tracing::warn!(container = %short(id), "cannot remove the container: {e}");
    }
    Some(exit)
}

async fn stop_pid(pid: u32, grace: Duration) -> Exit {
    use super::super::pidfile::alive;
    let target = nix::unistd::Pid::from_raw(pid as i32);
    let _ = nix::sys::signal::kill(target, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while alive(pid as i32) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if alive(pid as i32) {
        let _ = nix::sys::signal::kill(target, Signal::SIGKILL);
        return Exit::Signal("SIGKILL".into());
    }
    Exit::Unknown("stopped by signal while the container engine was unreachable".into())
}

/// One sample of the engine's statistics for a container (`None` when the engine does not
/// answer within two seconds or has no figures).
pub(super) async fn usage(docker: &Docker, id: &str) -> Option<Usage> {
    let mut stream = docker.stats(
        id,
        Some(StatsOptions {
            stream: false,
            one_shot: true,
        }),
    );
    let sample = tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .ok()??
        .ok()?;
    usage_of(&sample)
}

/// Memory the way `docker stats` counts it: usage less the inactive page cache (the kernel
/// reclaims that before it would OOM-kill), where the engine reports it (Docker does, as
/// `inactive_file` on cgroup v2 and `total_inactive_file` on v1; podman 4.3 reports usage
/// alone, already without the cache). CPU: the container's total CPU time.
fn usage_of(s: &ContainerStatsResponse) -> Option<Usage> {
    let mem = s.memory_stats.as_ref()?;
    let usage = mem.usage?;
    let inactive = mem.stats.as_ref().and_then(|st| {
        st.get("inactive_file")
            .or_else(|| st.get("total_inactive_file"))
            .copied()
    });
    let cpu_ns = s
        .cpu_stats
        .as_ref()
        .and_then(|c| c.cpu_usage.as_ref())
        .and_then(|u| u.total_usage);
    Some(Usage {
        memory_bytes: usage.saturating_sub(inactive.unwrap_or(0)),
        // An unlimited container reports the host's memory (or u64::MAX): not a limit.
        memory_limit_bytes: mem.limit.filter(|l| *l > 0 && *l < (1 << 60)),
        cpu_seconds: cpu_ns.map(|ns| ns as f64 / 1e9),
    })
}

/// The container's end as the supervisor reports it: 128+n is signal n, and the kernel's OOM
/// killer is named (the fix is a larger `memory_mb`).
fn exit_of(state: &ContainerState) -> Exit {
    let code = state.exit_code.unwrap_or(-1);
    if state.oom_killed == Some(true) {
        return Exit::Signal("SIGKILL (out of memory: raise the service's memory_mb)".into());
    }
    if (129..160).contains(&code) {
        let sig = (code - 128) as i32;
        return Exit::Signal(
            Signal::try_from(sig)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|_| format!("signal {sig}")),
        );
    }
    match i32::try_from(code) {
        Ok(c) if c >= 0 => Exit::Code(c),
        _ => Exit::Unknown(
            state
                .error
                .clone()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "no exit code".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_name_signals_and_the_oom_killer() {
        let st = |code, oom| ContainerState {
            exit_code: Some(code),
            oom_killed: Some(oom),
            ..Default::default()
        };
        assert_eq!(exit_of(&st(0, false)), Exit::Code(0));
        assert_eq!(exit_of(&st(1, false)), Exit::Code(1));
        assert_eq!(exit_of(&st(137, false)), Exit::Signal("SIGKILL".into()));
        assert_eq!(exit_of(&st(143, false)), Exit::Signal("SIGTERM".into()));
        assert!(matches!(exit_of(&st(137, true)), Exit::Signal(s) if s.contains("out of memory")));
    }

    #[test]
    fn usage_takes_the_page_cache_out_where_the_engine_reports_it() {
        let docker: ContainerStatsResponse = serde_json::from_value(serde_json::json!({
            "memory_stats": {"usage": 300_000_000u64, "limit": 536_870_912u64,
                             "stats": {"inactive_file": 100_000_000u64}},
            "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000u64}}
        }))
        .unwrap();
        let u = usage_of(&docker).unwrap();
        assert_eq!(u.memory_bytes, 200_000_000);
        assert_eq!(u.memory_limit_bytes, Some(536_870_912));
        assert_eq!(u.cpu_seconds, Some(2.5));
        // podman 4.3: usage and limit only.
        let podman: ContainerStatsResponse = serde_json::from_value(serde_json::json!({
            "memory_stats": {"usage": 679_936u64, "limit": 25_276_194_816u64},
            "cpu_stats": {"cpu_usage": {"total_usage": 38_061_054u64}}
        }))
        .unwrap();
        let u = usage_of(&podman).unwrap();
        assert_eq!(u.memory_bytes, 679_936);
        assert_eq!(u.memory_limit_bytes, Some(25_276_194_816));
        let none: ContainerStatsResponse = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(usage_of(&none).is_none());
    }
}
