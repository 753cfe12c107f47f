//! The embedded MySQL-compatible server: MariaDB 10.11 from Debian, as a child process.
//!
//! Layout under `<data_dir>/mysql/`: `data/` (the server's datadir). The socket and pid file
//! live in `<data_dir>/run/`. The datadir is initialised on the first start into `data.init/`
//! and renamed into place only when complete, so an interrupted first start is simply redone.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::runtime::Launch;
use super::service::{Prepare, Probe, ServiceSpec};
use crate::config::Config;
use crate::config::secrets::Secrets;
use crate::store;

pub struct Paths {
    pub dir: PathBuf,
    pub datadir: PathBuf,
    pub socket: PathBuf,
    pub pid_file: PathBuf,
}

impl Paths {
    pub fn new(cfg: &Config) -> Self {
        let dir = cfg.data_dir.join("mysql");
        Paths {
            datadir: dir.join("data"),
            socket: cfg.run_dir().join("mysql.sock"),
            pid_file: cfg.run_dir().join("mariadbd.pid"),
            dir,
        }
    }
}

/// InnoDB buffer pool: configured, or an eighth of RAM between 64 MiB and 1 GiB (a small VPS
/// shares its memory with Milvus and the app).
pub fn buffer_pool_mb(configured: u64, total_ram_bytes: u64) -> u64 {
    if configured > 0 {
        return configured;
    }
    (total_ram_bytes / 8 / (1024 * 1024)).clamp(64, 1024)
}

pub fn total_ram_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(1 << 30)
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn spec(cfg: &Config) -> ServiceSpec {
    let paths = Paths::new(cfg);
    let e = &cfg.database.embedded;
    let pool = buffer_pool_mb(e.buffer_pool_mb, total_ram_bytes());
    let mut args: Vec<OsString> = vec![
        "--no-defaults".into(),
        arg("--datadir=", &paths.datadir),
        arg("--socket=", &paths.socket),
        arg("--pid-file=", &paths.pid_file),
        format!("--port={}", e.port).into(),
        "--bind-address=127.0.0.1".into(),
        "--skip-name-resolve".into(),
        format!("--innodb-buffer-pool-size={pool}M").into(),
        "--innodb-log-file-size=48M".into(),
        // Soko's tables are InnoDB: the MyISAM key cache and Aria page cache (128 MiB by
        // default) only serve system and temporary tables. Measured idle RSS on a 24 GiB
        // machine: 134 MB before, 77 MB after; 60 MB with a 128 MiB buffer pool.
        "--aria-pagecache-buffer-size=8M".into(),
        "--key-buffer-size=8M".into(),
        "--innodb-log-buffer-size=4M".into(),
        "--performance-schema=OFF".into(),
        "--character-set-server=utf8mb4".into(),
        "--collation-server=utf8mb4_unicode_ci".into(),
        "--default-time-zone=+00:00".into(),
        "--max-connections=200".into(),
        // No host cache, no DNS, no symlinked tables.
        "--skip-symbolic-links".into(),
        "--local-infile=0".into(),
    ];
    if running_as_root() {
        args.push("--user=root".into());
    }
    let port = e.port;
    let probe: Probe = Arc::new(move || Box::pin(handshake(port)));
    let prepare: Prepare = {
        let install_db = e.install_db_bin.clone();
        let paths = Paths::new(cfg);
        Arc::new(move || {
            let install_db = install_db.clone();
            let (dir, datadir) = (paths.dir.clone(), paths.datadir.clone());
            Box::pin(async move { init_datadir(&install_db, &dir, &datadir).await })
        })
    };
    ServiceSpec {
        name: "mysql",
        launch: Launch {
            program: e.server_bin.clone(),
            args,
            env: Vec::new(),
            dir: paths.dir,
        },
        port,
        probe,
        prepare: Some(prepare),
    }
}

fn arg(flag: &str, path: &Path) -> OsString {
    let mut s = OsString::from(flag);
    s.push(path.as_os_str());
    s
}

/// Ready means: accepts TCP on loopback and sends a MySQL protocol-10 greeting (not an error
/// packet such as "too many connections" or "host blocked").
async fn handshake(port: u16) -> Result<(), String> {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
        let mut head = [0u8; 5];
        stream
            .read_exact(&mut head)
            .await
            .map_err(|e| format!("no greeting: {e}"))?;
        match head[4] {
            10 => Ok(()),
            0xff => Err("server answered with an error packet".to_owned()),
            other => Err(format!("unexpected protocol version {other}")),
        }
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .unwrap_or_else(|_| Err("greeting timed out".into()))
}

/// First start only: `mariadb-install-db` into a scratch directory, then rename into place.
async fn init_datadir(install_db: &Path, dir: &Path, datadir: &Path) -> Result<(), String> {
    if datadir.join("mysql").is_dir() {
        return Ok(());
    }
    let scratch = dir.join("data.init");
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    tokio::fs::create_dir_all(&scratch)
        .await
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    tracing::info!(service = "mysql", datadir = %datadir.display(), "initialising the data directory (first start)");
    let mut cmd = tokio::process::Command::new(install_db);
    cmd.arg("--no-defaults")
        .arg(arg("--datadir=", &scratch))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .arg("--skip-name-resolve")
        .current_dir(dir)
        .kill_on_drop(true);
    if running_as_root() {
        cmd.arg("--user=root");
    }
    let out = cmd.output().await.map_err(|e| {
        format!(
            "cannot run {}: {e} (install MariaDB with scripts/setup, or set database.embedded.install_db_bin)",
            install_db.display()
        )
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(format!(
            "mariadb-install-db failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    tokio::fs::rename(&scratch, datadir)
        .await
        .map_err(|e| format!("cannot move the new data directory into place: {e}"))?;
    Ok(())
}

/// Harden the embedded server and create the application database and user (idempotent; run
/// after every start of `soko up` and by `soko migrate`).
pub async fn provision(cfg: &Config, secrets: &Secrets) -> Result<(), store::Error> {
    let missing = |name: &str| {
        store::Error::Settings(format!(
            "{name} is missing from {}: run `soko init`",
            cfg.secrets_path().display()
        ))
    };
    let root = secrets
        .mysql_root_password
        .as_ref()
        .ok_or_else(|| missing("mysql_root_password"))?;
    let app = secrets
        .database_password
        .as_ref()
        .ok_or_else(|| missing("database_password"))?;
    let paths = Paths::new(cfg);
    let mut conn = store::admin::connect_root(&paths.socket, root.expose()).await?;
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    store::admin::bootstrap(
        &mut conn,
        &host,
        root.expose(),
        &cfg.database.name,
        &cfg.database.user,
        app.expose(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_pool_follows_ram_within_bounds() {
        let gib = 1u64 << 30;
        assert_eq!(buffer_pool_mb(0, gib), 128);
        assert_eq!(buffer_pool_mb(0, gib / 4), 64);
        assert_eq!(buffer_pool_mb(0, 24 * gib), 1024);
        assert_eq!(buffer_pool_mb(300, 24 * gib), 300);
    }
}
