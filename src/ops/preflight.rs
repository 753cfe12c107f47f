//! Preflight checks in the spirit of `discourse-setup`: memory, disk, ports, a writable data
//! directory, the bundled servers installed, the secrets private. Each failure says what to do.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::check::{CheckView, Level};
use crate::config::{Config, Mode};
use crate::supervisor::{mysql, ports};

const GIB: u64 = 1 << 30;

fn check(name: &str, level: Level, detail: impl Into<String>) -> CheckView {
    CheckView {
        name: name.into(),
        level,
        detail: detail.into(),
    }
}

/// Everything, for `soko doctor` and `soko init`. `ports_in_use_by_us`: the appliance is
/// running, so its own ports being taken is expected.
pub fn run(cfg: &Config, ports_in_use_by_us: bool) -> Vec<CheckView> {
    let mut out = vec![memory(), disk(&cfg.data_dir), writable(&cfg.data_dir)];
    if !ports_in_use_by_us {
        out.extend(ports(cfg));
    }
    out.extend(binaries(cfg));
    out.push(secrets(&cfg.secrets_path()));
    out.extend(super::domain::check(&cfg.domain));
    out
}

fn memory() -> CheckView {
    let total = mysql::total_ram_bytes();
    let gib = total as f64 / GIB as f64;
    if total < GIB {
        check(
            "memory",
            Level::Red,
            format!(
                "{gib:.1} GiB RAM; Soko needs at least 1 GiB (2 GiB recommended): use a larger VPS or add swap"
            ),
        )
    } else if total < 2 * GIB {
        check(
            "memory",
            Level::Amber,
            format!(
                "{gib:.1} GiB RAM; 2 GiB recommended (set database.embedded.buffer_pool_mb: 64 to save memory)"
            ),
        )
    } else {
        check("memory", Level::Green, format!("{gib:.1} GiB RAM"))
    }
}

/// The directory itself, or the nearest ancestor that exists.
fn existing_ancestor(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return PathBuf::from("/");
        }
    }
    p
}

pub fn free_bytes(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(&existing_ancestor(path)).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

fn disk(data_dir: &Path) -> CheckView {
    match free_bytes(data_dir) {
        None => check(
            "disk",
            Level::Red,
            format!("cannot measure free space at {}", data_dir.display()),
        ),
        Some(free) if free < 2 * GIB => check(
            "disk",
            Level::Red,
            format!(
                "{:.1} GiB free at {}; at least 2 GiB needed: free space or move data_dir",
                free as f64 / GIB as f64,
                data_dir.display()
            ),
        ),
        Some(free) if free < 10 * GIB => check(
            "disk",
            Level::Amber,
            format!(
                "{:.1} GiB free at {}; 10 GiB recommended for images and backups",
                free as f64 / GIB as f64,
                data_dir.display()
            ),
        ),
        Some(free) => check(
            "disk",
            Level::Green,
            format!(
                "{:.1} GiB free at {}",
                free as f64 / GIB as f64,
                data_dir.display()
            ),
        ),
    }
}

fn writable(data_dir: &Path) -> CheckView {
    let probe = data_dir.join(format!(".soko-write-test-{}", std::process::id()));
    let result = std::fs::create_dir_all(data_dir)
        .and_then(|()| std::fs::write(&probe, b"ok"))
        .and_then(|()| std::fs::remove_file(&probe));
    match result {
        Ok(()) => check(
            "data_dir",
            Level::Green,
            format!("{} is writable", data_dir.display()),
        ),
        Err(e) => check(
            "data_dir",
            Level::Red,
            format!(
                "{} is not writable ({e}): run as its owner, or `sudo install -d -o $USER {}`, or set data_dir",
                data_dir.display(),
                data_dir.display()
            ),
        ),
    }
}

fn ports(cfg: &Config) -> Vec<CheckView> {
    let mut wanted = vec![("web (http.listen)", cfg.http.listen)];
    if cfg.database.mode == Mode::Embedded {
        wanted.push((
            "mysql (database.embedded.port)",
            ([127, 0, 0, 1], cfg.database.embedded.port).into(),
        ));
    }
    if cfg.vectors.mode == Mode::Embedded {
        wanted.push((
            "milvus (vectors.embedded.port)",
            ([127, 0, 0, 1], cfg.vectors.embedded.port).into(),
        ));
    }
    if cfg.tls_active() != crate::config::tls::Active::Off {
        wanted.push(("https (tls.https_listen)", cfg.tls.https_listen));
        wanted.push(("port-80 redirect (tls.http_listen)", cfg.tls.http_listen));
    }
    let root = nix::unistd::geteuid().is_root();
    wanted
        .into_iter()
        .map(|(who, addr)| match ports::ensure_free_at(addr, who) {
            Ok(()) => check("port", Level::Green, format!("{addr} free for {who}")),
            // Not bindable by this user is not "taken": systemd grants the capability.
            Err(_) if addr.port() < 1024 && !root => check(
                "port",
                Level::Amber,
                format!(
                    "{addr} for {who} needs CAP_NET_BIND_SERVICE (systemd/soko.service grants \
                     it); not checked as this user"
                ),
            ),
            Err(e) => check("port", Level::Red, e.to_string()),
        })
        .collect()
}

fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The embedded servers' programs, present and executable.
pub fn binaries(cfg: &Config) -> Vec<CheckView> {
    let mut wanted: Vec<(&str, &Path)> = Vec::new();
    // In containers the images carry the servers (checked when the runtime is chosen).
    if cfg.supervisor.runtime == crate::config::RuntimeChoice::Container {
        return Vec::new();
    }
    if cfg.database.mode == Mode::Embedded {
        wanted.push((
            "database.embedded.server_bin",
            &cfg.database.embedded.server_bin,
        ));
        wanted.push((
            "database.embedded.install_db_bin",
            &cfg.database.embedded.install_db_bin,
        ));
    }
    if cfg.vectors.mode == Mode::Embedded {
        wanted.push(("vectors.embedded.command", &cfg.vectors.embedded.command));
    }
    wanted
        .into_iter()
        .map(|(key, path)| {
            if executable(path) {
                check(
                    "installed",
                    Level::Green,
                    format!("{} ({key})", path.display()),
                )
            } else {
                check(
                    "installed",
                    Level::Red,
                    format!(
                        "{} is missing ({key}): run scripts/setup, or point {key} at it",
                        path.display()
                    ),
                )
            }
        })
        .collect()
}

fn secrets(path: &Path) -> CheckView {
    match std::fs::metadata(path) {
        Err(_) => check(
            "secrets",
            Level::Amber,
            format!(
                "{} does not exist yet: `soko init` (or the first `soko up`) creates it",
                path.display()
            ),
        ),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => check(
            "secrets",
            Level::Red,
            format!(
                "{} is readable by others (mode {:o}): chmod 600 {}",
                path.display(),
                m.permissions().mode() & 0o777,
                path.display()
            ),
        ),
        Ok(_) => check(
            "secrets",
            Level::Green,
            format!("{} is private (0600)", path.display()),
        ),
    }
}
