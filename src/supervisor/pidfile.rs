//! Pid files of supervised children, so that a `soko up` that was killed with SIGKILL leaves
//! nothing behind that the next one cannot clean up. Children also get SIGTERM from the kernel
//! when `soko` dies (parent-death signal); this is the second line of defence for a child that
//! ignored it or was still shutting down.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

#[derive(Debug, Clone)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn new(run_dir: &Path, service: &str) -> Self {
        PidFile {
            path: run_dir.join(format!("{service}.pid")),
        }
    }

    pub fn write(&self, pid: u32) {
        if let Err(e) = std::fs::write(&self.path, format!("{pid}\n")) {
            tracing::warn!(path = %self.path.display(), "cannot write pid file: {e}");
        }
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    pub fn read(&self) -> Option<i32> {
        std::fs::read_to_string(&self.path)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// If the pid file names a live process whose command line mentions `marker` (the
    /// service's private directory), it is ours from an earlier run: stop it (its whole process
    /// group), SIGTERM first and SIGKILL after `grace`. A pid reused by an unrelated process is
    /// left alone.
    pub async fn reap_orphan(&self, marker: &Path, grace: Duration) -> bool {
        let Some(pid) = self.read() else {
            return false;
        };
        let owned = cmdline(pid).is_some_and(|c| c.contains(&*marker.to_string_lossy()));
        if !owned {
            self.remove();
            return false;
        }
        tracing::warn!(pid, path = %self.path.display(), "stopping a child left over from an earlier run");
        let target = Pid::from_raw(pid);
        let _ = killpg(target, Signal::SIGTERM).or_else(|_| kill(target, Signal::SIGTERM));
        let deadline = Instant::now() + grace;
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if alive(pid) {
            let _ = killpg(target, Signal::SIGKILL).or_else(|_| kill(target, Signal::SIGKILL));
            while alive(pid) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        self.remove();
        true
    }
}

/// A process that exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// The process's command line with NULs as spaces.
pub fn cmdline(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        String::from_utf8_lossy(&raw)
            .replace('\0', " ")
            .trim()
            .to_owned(),
    )
}

/// Resident memory of a process in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
