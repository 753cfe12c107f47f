//! Disk and memory: the data directory's file system (total, free, % used), what the data
//! directory itself holds (measured in the background at most once a minute: a walk over a
//! large image store is not free), host memory, and per process (soko and each supervised
//! child) resident memory, CPU time and CPU % since the previous look. Read from /proc.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesView {
    pub data_dir: String,
    pub disk_total_bytes: u64,
    pub disk_free_bytes: u64,
    pub disk_used_percent: f64,
    /// Bytes under the data directory, and per top-level part (mysql, milvus, images, logs,
    /// ...): `None` until the first background measurement is done.
    pub data_dir_bytes: Option<u64>,
    pub parts: Vec<PartView>,
    pub memory_total_bytes: Option<u64>,
    pub memory_available_bytes: Option<u64>,
    pub processes: Vec<ProcessFigures>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PartView {
    pub name: String,
    pub bytes: u64,
}

/// One process's figures (`soko` itself, or a supervised child by service name).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessFigures {
    pub name: String,
    pub pid: Option<u32>,
    pub rss_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    /// CPU use since the previous look at this pid (100 = one core).
    pub cpu_percent: Option<f64>,
    pub open_fds: Option<u64>,
    pub restarts: u32,
    /// The container's memory limit (container runtime).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
    /// Where the memory and CPU figures come from: `proc` (the process) or `engine` (the
    /// container engine's statistics: the whole container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Clock ticks per second of /proc/<pid>/stat: 100 on every Linux architecture soko targets.
const TICKS: f64 = 100.0;

/// User + system CPU seconds of a process.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS)
}

pub fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// CPU % since the previous call for the same pid (100 = one core).
fn cpu_percent(pid: u32, now_cpu: f64) -> Option<f64> {
    static LAST: Mutex<Vec<(u32, Instant, f64)>> = Mutex::new(Vec::new());
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if let Some(prev) = last.iter_mut().find(|(p, _, _)| *p == pid) {
        let wall = now.duration_since(prev.1).as_secs_f64();
        if wall >= 0.2 {
            let percent = ((now_cpu - prev.2) / wall * 100.0).max(0.0);
            *prev = (pid, now, now_cpu);
            return Some(percent);
        }
    } else {
        last.retain(|(p, _, _)| Path::new(&format!("/proc/{}", p & !(1 << 31))).exists());
        last.push((pid, now, now_cpu));
    }
    None
}

/// Figures for one process; CPU % against the previous call for the same pid.
pub fn process(name: &str, pid: Option<u32>, restarts: u32) -> ProcessFigures {
    let Some(pid) = pid else {
        return ProcessFigures {
            name: name.into(),
            restarts,
            ..ProcessFigures::default()
        };
    };
    let cpu = cpu_seconds(pid);
    ProcessFigures {
        name: name.into(),
        pid: Some(pid),
        rss_bytes: crate::supervisor::pidfile::rss_bytes(pid),
        cpu_seconds: cpu,
        cpu_percent: cpu.and_then(|c| cpu_percent(pid, c)),
        open_fds: open_fds(pid),
        restarts,
        memory_limit_bytes: None,
        source: Some("proc".into()),
    }
}

/// Figures for one supervised service: in a container, memory and CPU as the engine counts
/// them for the whole container (its last sample); else its process's, from /proc.
pub fn service(s: &crate::supervisor::Status) -> ProcessFigures {
    let mut f = process(&s.name, s.pid, s.restarts);
    if let Some(u) = s.usage {
        f.rss_bytes = Some(u.memory_bytes);
        f.memory_limit_bytes = u.memory_limit_bytes;
        f.source = Some("engine".into());
        if let Some(cpu) = u.cpu_seconds {
            f.cpu_seconds = Some(cpu);
            // Keyed apart from the pid's /proc figures (a container's CPU includes all of
            // its processes): the high bit is never set in a Linux pid.
            f.cpu_percent = s.pid.and_then(|pid| cpu_percent(pid | 1 << 31, cpu));
        }
    }
    f
}

fn meminfo() -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return (None, None);
    };
    let field = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// Bytes in a directory tree (files only, symlinks not followed).
pub fn tree_bytes(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

type Usage = (PathBuf, Instant, u64, Vec<PartView>);
static USAGE: Mutex<Option<Usage>> = Mutex::new(None);
static MEASURING: Mutex<bool> = Mutex::new(false);
const USAGE_TTL: Duration = Duration::from_secs(60);

fn measure(dir: &Path) -> (u64, Vec<PartView>) {
    let mut parts = Vec::new();
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let bytes = match e.metadata() {
                Ok(m) if m.is_dir() => tree_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            };
            total += bytes;
            if e.path().is_dir() {
                parts.push(PartView {
                    name: e.file_name().to_string_lossy().into_owned(),
                    bytes,
                });
            }
        }
    }
    parts.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
    (total, parts)
}

/// The last measurement of `dir` (starting a new one in the background when it is older than a
/// minute or missing).
fn usage(dir: &Path) -> Option<(u64, Vec<PartView>)> {
    let cached = USAGE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let fresh = cached
        .as_ref()
        .is_some_and(|(d, at, _, _)| d == dir && at.elapsed() < USAGE_TTL);
    if !fresh {
        let mut busy = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
        if !*busy && tokio::runtime::Handle::try_current().is_ok() {
            *busy = true;
            let dir = dir.to_owned();
            tokio::task::spawn_blocking(move || {
                let (total, parts) = measure(&dir);
                *USAGE.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((dir, Instant::now(), total, parts));
                *MEASURING.lock().unwrap_or_else(|e| e.into_inner()) = false;
            });
        }
    }
    cached
        .filter(|(d, _, _, _)| d == dir)
        .map(|(_, _, total, parts)| (total, parts))
}

/// Collect the view; `processes` are soko's own figures and each child's.
pub fn collect(data_dir: &Path, processes: Vec<ProcessFigures>) -> ResourcesView {
    let (total, free) = match nix::sys::statvfs::statvfs(data_dir) {
        Ok(s) => {
            let frag = s.fragment_size();
            (s.blocks() * frag, s.blocks_available() * frag)
        }
        Err(_) => (0, 0),
    };
    let used_percent = if total == 0 {
        0.0
    } else {
        ((total - free.min(total)) as f64 / total as f64 * 1000.0).round() / 10.0
    };
    let (memory_total_bytes, memory_available_bytes) = meminfo();
    let (data_dir_bytes, parts) = match usage(data_dir) {
        Some((t, p)) => (Some(t), p),
        None => (None, Vec::new()),
    };
    ResourcesView {
        data_dir: data_dir.display().to_string(),
        disk_total_bytes: total,
        disk_free_bytes: free,
        disk_used_percent: used_percent,
        data_dir_bytes,
        parts,
        memory_total_bytes,
        memory_available_bytes,
        processes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_and_disk_figures_are_read() {
        let me = process("soko", Some(std::process::id()), 0);
        assert!(me.rss_bytes.unwrap() > 0);
        assert!(me.cpu_seconds.is_some());
        assert!(me.open_fds.unwrap() >= 3);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("images")).unwrap();
        std::fs::write(dir.path().join("images/a"), [0u8; 1000]).unwrap();
        let (total, parts) = measure(dir.path());
        assert_eq!(total, 1000);
        assert_eq!(parts[0].name, "images");
        let v = collect(dir.path(), vec![me]);
        assert!(v.disk_total_bytes > 0 && v.disk_used_percent > 0.0);
        assert!(v.memory_total_bytes.is_some());
    }
}
