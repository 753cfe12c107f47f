//! `soko up`: the one command an operator runs. Order: config (refused before anything starts
//! if bad) → secrets → logs → the appliance lock → left-over children → ports (80 and 443 too
//! when HTTPS is on, see `https`) → admin socket → MySQL → Milvus → migrations and collection
//! (in the background, retried) → web (and HTTPS, its certificate ordered in the background).
//! SIGTERM or Ctrl-C stops the web servers (draining requests), then Milvus, then MySQL.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{EXIT_CONFIG, https, load_config};
use crate::config::{Config, Mode, secrets::Secrets};
use crate::ops::{admin, preflight, status};
use crate::supervisor::{self, Services, pidfile::PidFile, ports};
use crate::vectors::VectorStore;
use crate::{store, web};

mod control;
use control::Control;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(path: &Path, _args: Args) -> anyhow::Result<ExitCode> {
    let (cfg, found) = match load_config(path) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(cfg.run_dir())
        .with_context(|| {
            format!(
                "cannot create the data directory {}",
                cfg.data_dir.display()
            )
        })?;
    let generated = Secrets::ensure(&cfg.secrets_path())?;
    let _guards = match super::observe::init_logging(&cfg)? {
        Ok(g) => g,
        Err(code) => return Ok(code),
    };
    if found {
        tracing::info!(config = %path.display(), "configuration loaded");
    } else {
        tracing::info!(config = %path.display(), "no config file: running on the embedded defaults");
    }
    if !generated.is_empty() {
        tracing::info!(file = %cfg.secrets_path().display(), ?generated, "generated secrets");
    }
    let Some(_lock) = lock(&cfg.run_dir())? else {
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    let config_path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    match Appliance::start(cfg, config_path).await? {
        Some(app) => app.run_until_signal().await,
        None => Ok(ExitCode::from(EXIT_CONFIG)),
    }
}

/// One `soko up` per data directory: an exclusive lock on `run/soko.lock`, holding our pid.
fn lock(run_dir: &Path) -> anyhow::Result<Option<Flock<std::fs::File>>> {
    let path = run_dir.join("soko.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            std::fs::write(&path, format!("{}\n", std::process::id()))?;
            Ok(Some(lock))
        }
        Err(_) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            eprintln!(
                "soko: another `soko up` is already running for this data directory (pid {}); \
                 see `soko status`",
                pid.trim()
            );
            Ok(None)
        }
    }
}

pub struct Appliance {
    cfg: Config,
    config_path: PathBuf,
    started: Instant,
    started_unix: u64,
    services: Arc<Services>,
    db: MySqlPool,
    vectors: Arc<VectorStore>,
    web: TcpListener,
    /// HTTPS and port 80 when TLS is on (see `https`).
    https: Option<https::Https>,
    admin: tokio::net::UnixListener,
    shutdown: CancellationToken,
    backup: Arc<crate::workers::backup::Engine>,
}

impl Appliance {
    /// Start everything but the web server's accept loop. `None`: refused (message printed).
    pub async fn start(mut cfg: Config, config_path: PathBuf) -> anyhow::Result<Option<Appliance>> {
        let started = Instant::now();
        let secrets = Secrets::load(&cfg.secrets_path())?;
        let grace = Duration::from_secs(cfg.supervisor.stop_timeout_secs);
        // Containers or processes (`supervisor.runtime`); from here on the config says which.
        let selected = match supervisor::select_runtime(&cfg).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("soko: {e}");
                return Ok(None);
            }
        };
        tracing::info!(runtime = selected.runtime.kind(), reason = %selected.reason, "service runtime");
        cfg.supervisor.runtime = selected.choice();
        // Containers of a `soko up` that was killed hold their ports: replace them first.
        if let Err(e) = selected.remove_leftovers(&cfg).await {
            tracing::error!("{e}");
            eprintln!("soko: {e}");
            return Ok(None);
        }
        // Children of a `soko up` that was killed with SIGKILL: stop them before checking ports.
        if cfg.database.mode == Mode::Embedded {
            PidFile::new(&cfg.run_dir(), "mysql")
                .reap_orphan(&cfg.data_dir.join("mysql"), grace)
                .await;
        }
        if cfg.vectors.mode == Mode::Embedded {
            PidFile::new(&cfg.run_dir(), "milvus")
                .reap_orphan(&cfg.data_dir.join("milvus"), grace)
                .await;
        }
        // A missing server program is a set-up problem, not something to retry.
        let missing: Vec<String> = preflight::binaries(&cfg)
            .into_iter()
            .filter(|c| c.level == status::Level::Red)
            .map(|c| c.detail)
            .collect();
        if !missing.is_empty() {
            for m in &missing {
                tracing::error!("{m}");
                eprintln!("soko: {m}");
            }
            return Ok(None);
        }
        let mut wanted = Vec::new();
        if cfg.database.mode == Mode::Embedded {
            wanted.push((cfg.database.embedded.port, "mysql (database.embedded.port)"));
        }
        if cfg.vectors.mode == Mode::Embedded {
            wanted.push((cfg.vectors.embedded.port, "milvus (vectors.embedded.port)"));
        }
        for (port, who) in wanted {
            if let Err(e) = ports::ensure_free(port, who) {
                tracing::error!("{e}");
                eprintln!("soko: {e}");
                return Ok(None);
            }
        }
        let web = match TcpListener::bind(cfg.http.listen).await {
            Ok(l) => l,
            Err(_) => {
                let e = ports::ensure_free_at(cfg.http.listen, "web (http.listen)")
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| format!("cannot listen on {}", cfg.http.listen));
                tracing::error!("{e}");
                eprintln!("soko: {e}");
                return Ok(None);
            }
        };
        let listeners = if cfg.tls_active() == crate::config::tls::Active::Off {
            1
        } else {
            3
        };
        crate::web::serve::raise_fd_limit(&cfg.http, listeners);
        let https = match https::prepare(&cfg).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("soko: {e}");
                return Ok(None);
            }
        };
        let admin = admin::bind(&cfg.admin_socket())
            .with_context(|| format!("cannot bind {}", cfg.admin_socket().display()))?;
        let runtime = selected.runtime;
        let mut services = Services::start_mysql(&cfg, runtime.clone()).await?;
        let mysql_status = services.mysql.as_ref().map(|h| h.status.clone());
        let db = store::pool(
            store::app_options(&cfg, &secrets)?,
            cfg.database.max_connections,
        );
        let shutdown = CancellationToken::new();
        tokio::spawn(keep_database(
            cfg.clone(),
            secrets.clone(),
            db.clone(),
            mysql_status,
            shutdown.clone(),
        ));
        services.start_milvus(&cfg, runtime).await?;
        let services = Arc::new(services);
        let profile = cfg.embed.profile.profile();
        let vectors = Arc::new(VectorStore::for_profile(
            &cfg,
            &secrets,
            profile.name,
            profile.dim() as u32,
        ));
        tokio::spawn(keep_collection(vectors.clone(), shutdown.clone()));
        tokio::spawn(crate::workers::images::run(
            db.clone(),
            store::images::Files::new(cfg.data_dir.join("images")),
            shutdown.clone(),
        ));
        let backup = Arc::new(crate::workers::backup::Engine::new(
            db.clone(),
            &cfg,
            &secrets,
        )?);
        tokio::spawn(crate::workers::backup::schedule(
            backup.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(crate::workers::recommend::run(
            db.clone(),
            crate::workers::recommend::Settings::from_config(&cfg.recommendations),
            shutdown.clone(),
        ));
        tokio::spawn(crate::workers::vector_sync::start(
            cfg.embed.clone(),
            db.clone(),
            vectors.clone(),
            store::images::Files::new(cfg.data_dir.join("images")),
            shutdown.clone(),
        ));
        Ok(Some(Appliance {
            cfg,
            config_path,
            started,
            started_unix: supervisor::service::now_unix(),
            services,
            db,
            vectors,
            web,
            https,
            admin,
            shutdown,
            backup,
        }))
    }

    pub async fn run_until_signal(self) -> anyhow::Result<ExitCode> {
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: web, then milvus, then mysql");
            shutdown.cancel();
        });
        let local = self.cfg.is_local_mode();
        let url = format!("http://{}", self.web.local_addr()?);
        tracing::info!(
            %url,
            mode = %https::mode_line(&self.cfg),
            startup_ms = self.started.elapsed().as_millis() as u64,
            "serving"
        );
        let state = web::AppState {
            db: self.db.clone(),
            vectors: self.vectors.clone(),
            started: self.started,
            supervised: self.services.receivers(),
            settings: Arc::new(
                web::Settings::from_config(&self.cfg)
                    .with_jwt_secret(Secrets::load(&self.cfg.secrets_path())?.jwt_secret.as_ref()),
            ),
        };
        let alerts = Arc::new(std::sync::RwLock::new(Vec::new()));
        let control: Arc<dyn admin::Control> = Arc::new(Control {
            services: self.services.clone(),
            db: self.db.clone(),
            vectors: self.vectors.clone(),
            started: self.started,
            started_unix: self.started_unix,
            config_path: self.config_path.display().to_string(),
            data_dir: self.cfg.data_dir.display().to_string(),
            web_url: url,
            local_mode: local,
            tls: self.https.as_ref().map(|h| h.certs()),
            cfg: self.cfg.clone(),
            alerts: alerts.clone(),
            backup: self.backup.clone(),
            log_dir: self.cfg.log_dir(),
            data_path: self.cfg.data_dir.clone(),
            cfg_profile: self.cfg.embed.profile.profile().name,
        });
        super::observe::spawn_alerts(
            &self.cfg,
            self.db.clone(),
            control.clone(),
            alerts,
            self.shutdown.clone(),
        )?;
        let metrics_task = match self.cfg.metrics.listen {
            Some(addr) => match TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::info!(%addr, "metrics served at /metrics (metrics.listen)");
                    Some(tokio::spawn(crate::ops::console_api::serve_metrics_tcp(
                        l,
                        control.clone(),
                        self.shutdown.clone().cancelled_owned(),
                    )))
                }
                Err(e) => {
                    tracing::error!(%addr, "cannot listen for metrics (metrics.listen): {e}");
                    None
                }
            },
            None => None,
        };
        let admin_task = tokio::spawn(admin::serve(
            self.admin,
            control,
            self.shutdown.clone().cancelled_owned(),
        ));
        let app = web::router(state, &self.cfg);
        let https_task = self
            .https
            .map(|h| h.spawn(app.clone(), &self.cfg.http, self.shutdown.clone()));
        let served = web::serve(
            self.web,
            app,
            &self.cfg.http,
            self.shutdown.clone().cancelled_owned(),
        )
        .await;
        self.shutdown.cancel();
        if let Some(t) = https_task {
            let _ = t.await;
        }
        let _ = admin_task.await;
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        self.db.close().await;
        self.services.stop().await;
        let _ = std::fs::remove_file(self.cfg.admin_socket());
        served.context("web server")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop soko with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Provision (embedded) and migrate once MySQL answers; retried with back-off until it works.
async fn keep_database(
    cfg: Config,
    secrets: Secrets,
    db: MySqlPool,
    mysql: Option<tokio::sync::watch::Receiver<supervisor::Status>>,
    stop: CancellationToken,
) {
    let mut delay = Duration::from_millis(500);
    loop {
        let attempt = async {
            if cfg.database.mode == Mode::Embedded {
                // A container sees this host's connections from its network's gateway.
                let peer = mysql
                    .as_ref()
                    .and_then(|rx| rx.borrow().peer_host.as_deref()?.parse().ok());
                supervisor::mysql::provision(&cfg, &secrets, peer).await?;
            }
            store::migrate::run(&db).await
        };
        match attempt.await {
            Ok(s) => {
                tracing::info!(version = s.applied, "database ready, migrations current");
                return;
            }
            Err(e) => tracing::warn!("database not ready yet: {e}; retrying in {delay:?}"),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Keep the vector collection created and loaded: checked every 15 s, every 2 s while it is
/// not (a restarted Milvus may come back with the collection released).
async fn keep_collection(vectors: Arc<VectorStore>, stop: CancellationToken) {
    let mut healthy = false;
    loop {
        let ok = match vectors.health().await {
            Ok(h) if h.loaded => true,
            _ => match vectors.ensure_collection().await {
                Ok(_) => true,
                Err(e) => {
                    if healthy {
                        tracing::warn!("vector collection unavailable: {e}");
                    }
                    false
                }
            },
        };
        if ok && !healthy {
            tracing::info!(collection = %vectors.collection, uri = vectors.uri(), "vector collection ready");
        }
        healthy = ok;
        let wait = if ok { 15 } else { 2 };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(wait)) => {}
            () = stop.cancelled() => return,
        }
    }
}
