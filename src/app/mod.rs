//! The application core: the whole appliance built from a config, for `soko up`, the tests and
//! the benches alike. Phases:
//!
//! 1. [`Host::prepare`]: the data directory, secrets, logs and the appliance lock (only
//!    `soko up`: a process has one log subscriber and one lock per data directory);
//! 2. [`build`]: everything but the accept loops. Order: the service runtime → left-over
//!    children → ports (80 and 443 too when HTTPS is on, see `https`) → admin socket → MySQL →
//!    Milvus → migrations and collection (in the background, retried, see `keep`) → workers;
//! 3. [`App::run_until_signal`]: the web servers (and HTTPS, its certificate ordered in the
//!    background), the admin socket, alerts and metrics; SIGTERM or Ctrl-C stops the web
//!    servers (draining requests), then Milvus, then MySQL.
//!
//! The web state is written in one place, [`state::WebState`]; tests that need a web app
//! without supervision build it on their own pool and vector store.

mod control;
mod error;
mod host;
mod https;
mod keep;
pub mod notify;
mod observe;
mod standby;
mod state;

pub use error::StartError;
pub use host::Host;
pub use state::{WebState, spawn_web};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Mode, secrets::Secrets};
use crate::ops::{admin, preflight, status};
use crate::supervisor::{self, Services, pidfile::PidFile, ports};
use crate::vectors::VectorStore;
use crate::{store, web, workers};
use control::Control;

/// A built appliance: supervised services, stores, workers running, listeners bound.
pub struct App {
    cfg: Config,
    config_path: PathBuf,
    started: Instant,
    started_unix: u64,
    services: Arc<Services>,
    db: MySqlPool,
    /// Read-only pages and API reads: read replicas when configured (see `store::replicas`).
    reads: Arc<store::replicas::Reads>,
    vectors: Arc<VectorStore>,
    web: TcpListener,
    /// HTTPS and port 80 when TLS is on (see `https`).
    https: Option<https::Https>,
    admin: tokio::net::UnixListener,
    shutdown: CancellationToken,
    backup: Arc<workers::backup::Engine>,
    search: crate::search::Search,
    /// The node's role: a standby serves nothing public and runs no writer (see `standby`).
    standby: Arc<standby::Standby>,
    /// Provisioned, migrated, rights granted (see `keep::database`).
    startup: crate::ops::readiness::Startup,
    /// Where photos are read and written (`images.store`).
    images: crate::objects::images::ImageStore,
}

/// A refusal: logged here, printed by the caller; nothing was started.
fn refuse(message: impl std::fmt::Display) -> StartError {
    let message = message.to_string();
    tracing::error!("{message}");
    StartError::Refused(vec![message])
}

/// Start everything but the web server's accept loop. `config_path`: what the status
/// snapshot shows as the config file.
pub async fn build(mut cfg: Config, config_path: PathBuf) -> Result<App, StartError> {
    let started = Instant::now();
    // systemd's watchdog (when it asks for one) is fed from here on.
    notify::spawn_watchdog();
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let jwt_from_env = std::env::var_os("SOKO_JWT_SECRET").is_some_and(|v| !v.is_empty());
    if let Err(e) = secrets.check_strength(&cfg.secrets_path(), jwt_from_env) {
        return Err(refuse(e));
    }
    let role = supervisor::replication::role(&cfg.data_dir).map_err(refuse)?;
    let standby = standby::Standby::new(role);
    if role == supervisor::replication::Role::Standby {
        tracing::warn!("this node is a warm standby: it serves nothing until `soko promote`");
    }
    let images = crate::objects::images::ImageStore::from_config(&cfg, &secrets)
        .map_err(|e| refuse(format!("images.store: {e}")))?;
    let grace = Duration::from_secs(cfg.supervisor.stop_timeout_secs);
    // Containers or processes (`supervisor.runtime`); from here on the config says which.
    let selected = supervisor::select_runtime(&cfg).await.map_err(refuse)?;
    tracing::info!(runtime = selected.runtime.kind(), reason = %selected.reason, "service runtime");
    cfg.supervisor.runtime = selected.choice();
    // Containers of a `soko up` that was killed hold their ports: replace them first.
    selected.remove_leftovers(&cfg).await.map_err(refuse)?;
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
        }
        return Err(StartError::Refused(missing));
    }
    // A datadir written by a newer MariaDB than the installed one: refused, with the fix.
    supervisor::upgrade::check(&cfg).map_err(refuse)?;
    let mut wanted = Vec::new();
    if cfg.database.mode == Mode::Embedded {
        wanted.push((cfg.database.embedded.port, "mysql (database.embedded.port)"));
    }
    if cfg.vectors.mode == Mode::Embedded {
        wanted.push((cfg.vectors.embedded.port, "milvus (vectors.embedded.port)"));
    }
    for (port, who) in wanted {
        ports::ensure_free(port, who).map_err(refuse)?;
    }
    let web = match TcpListener::bind(cfg.http.listen).await {
        Ok(l) => l,
        Err(_) => {
            return Err(refuse(
                ports::ensure_free_at(cfg.http.listen, "web (http.listen)")
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| format!("cannot listen on {}", cfg.http.listen)),
            ));
        }
    };
    let listeners = if cfg.tls_active() == crate::config::tls::Active::Off {
        1
    } else {
        3
    };
    web::serve::raise_fd_limit(&cfg.http, listeners);
    // Lazy: no connection until first used (the database starts below).
    let db = store::pool(
        store::app_options(&cfg, &secrets)?,
        cfg.database.max_connections,
    );
    let https = https::prepare(&cfg, &db, &secrets).await.map_err(refuse)?;
    let admin = admin::bind(&cfg.admin_socket()).map_err(|source| StartError::AdminSocket {
        path: cfg.admin_socket(),
        source,
    })?;
    let runtime = selected.runtime;
    notify::status("starting the database");
    let mut services = Services::start_mysql(&cfg, runtime.clone()).await?;
    let mysql_status = services.mysql.as_ref().map(|h| h.status.clone());
    let shutdown = CancellationToken::new();
    let reads = Arc::new(store::replicas::Reads::from_config(
        &cfg,
        &secrets,
        db.clone(),
    )?);
    reads.spawn_probe(shutdown.clone());
    let startup = crate::ops::readiness::Startup::pending();
    tokio::spawn(keep::database(
        cfg.clone(),
        secrets.clone(),
        mysql_status.clone(),
        shutdown.clone(),
        !standby.is_standby(),
        startup.clone(),
    ));
    notify::status("starting the vector store");
    services.start_milvus(&cfg, runtime).await?;
    let services = Arc::new(services);
    let profile = cfg.embed.profile.profile();
    let vectors = Arc::new(VectorStore::for_profile(
        &cfg,
        &secrets,
        profile.name,
        profile.dim() as u32,
    ));
    tokio::spawn(keep::collection(vectors.clone(), shutdown.clone()));
    {
        // Query vectors (photo search, similar items) on every node, web-only ones and those
        // that do not hold the vector-sync lease too: that worker is not where they come from.
        let (embed, bg, vectors) = (cfg.embed.clone(), cfg.background.clone(), vectors.clone());
        tokio::spawn(async move {
            workers::vector_sync::load_models(&embed, &bg, &vectors).await;
        });
    }
    notify::status("starting the workers");
    let backup = Arc::new(workers::backup::Engine::new(db.clone(), &cfg, &secrets)?);
    {
        // On a standby the writers (and the migrations) wait for the promotion.
        let (cfg, secrets, db, vectors, stop, backup, standby, startup, images) = (
            cfg.clone(),
            secrets.clone(),
            db.clone(),
            vectors.clone(),
            shutdown.clone(),
            backup.clone(),
            standby.clone(),
            startup.clone(),
            images.clone(),
        );
        let was_standby = standby.is_standby();
        tokio::spawn(async move {
            tokio::select! {
                () = standby.primary() => {}
                () = stop.cancelled() => return,
            }
            if was_standby {
                tokio::spawn(keep::database(
                    cfg.clone(),
                    secrets.clone(),
                    mysql_status,
                    stop.clone(),
                    true,
                    startup,
                ));
            }
            if cfg.node.role == crate::config::node::Role::All {
                spawn_workers(&cfg, &db, &vectors, backup, &images, &stop);
            } else {
                tracing::info!(
                    node = %cfg.node_name(),
                    "node role web: no background workers on this node (node.role, --role)"
                );
            }
        });
    }
    standby.follow_images(&cfg, &db, &shutdown);
    let search = crate::search::Search::start(
        db.clone(),
        crate::search::Options::from_config(&cfg),
        shutdown.clone(),
    );
    Ok(App {
        cfg,
        config_path,
        started,
        started_unix: crate::clock::now_unix(),
        services,
        db,
        reads,
        vectors,
        web,
        https,
        admin,
        shutdown,
        backup,
        search,
        standby,
        startup,
        images,
    })
}

/// The background workers: image variants, listings' quality checks and catalogue imports on
/// every node (their work is claimed row by row); backups on their schedule, recommendations,
/// the event roll-up, the catalogue re-check and the vector sync each under its lease (one node
/// at a time, see `workers::lease`); each stops with `stop`. The backup engine is shared with
/// the admin socket.
fn spawn_workers(
    cfg: &Config,
    db: &MySqlPool,
    vectors: &Arc<VectorStore>,
    backup: Arc<workers::backup::Engine>,
    images: &crate::objects::images::ImageStore,
    stop: &CancellationToken,
) {
    // The lowered pool for background computation, from `background:` (before any worker).
    crate::background::shared_pool(&cfg.background);
    let keeper = keeper(cfg, db);
    let images = || images.clone();
    tokio::spawn(workers::images::run(db.clone(), images(), stop.clone()));
    tokio::spawn(workers::quality::run(
        db.clone(),
        images(),
        workers::quality::Settings::from_config(&cfg.quality),
        stop.clone(),
    ));
    keeper.spawn(LEASE_BACKUPS, stop, move |stop| {
        workers::backup::schedule(backup.clone(), stop)
    });
    {
        let (db, settings) = (
            db.clone(),
            workers::recommend::Settings::from_config(&cfg.recommendations),
        );
        keeper.spawn(LEASE_RECOMMENDATIONS, stop, move |stop| {
            workers::recommend::run(db.clone(), settings.clone(), stop)
        });
    }
    {
        let (db, keep_days) = (db.clone(), cfg.limits.raw_event_days.get());
        let zone =
            crate::clock::Zone::named(&cfg.timezone).unwrap_or_else(|_| crate::clock::Zone::utc());
        // Six recommender rounds: a day waiting for the recommender is read by then; a round
        // with nothing due is one indexed query.
        let idle = Duration::from_secs(cfg.recommendations.interval_secs.get() * 6);
        keeper.spawn(LEASE_EVENT_ROLLUP, stop, move |stop| {
            workers::event_rollup::run(db.clone(), zone.clone(), keep_days, idle, stop)
        });
    }
    match workers::catalogue_import::Importer::from_config(cfg, db.clone()) {
        Ok(mut imp) => {
            imp.images = images();
            tokio::spawn(workers::catalogue_import::run(
                imp,
                Duration::from_secs(2),
                stop.clone(),
            ));
        }
        Err(e) => tracing::error!("catalogue import worker not started: {e}"),
    }
    {
        let (cfg, db) = (cfg.clone(), db.clone());
        keeper.spawn(LEASE_CATALOGUE_RECHECK, stop, move |stop| {
            let (cfg, db) = (cfg.clone(), db.clone());
            async move {
                match workers::catalogue_recheck::Rechecker::from_config(&cfg, db) {
                    Ok(r) => {
                        workers::catalogue_recheck::run(r, Duration::from_secs(60), stop).await
                    }
                    Err(e) => {
                        tracing::error!("catalogue re-check worker not started: {e}");
                        // Hold the lease until stop: another node's would fail the same way.
                        stop.cancelled().await;
                    }
                }
            }
        });
    }
    {
        let (embed, bg, db, vectors, images) = (
            cfg.embed.clone(),
            cfg.background.clone(),
            db.clone(),
            vectors.clone(),
            images(),
        );
        keeper.spawn(LEASE_VECTOR_SYNC, stop, move |stop| {
            workers::vector_sync::start(
                embed.clone(),
                bg.clone(),
                db.clone(),
                vectors.clone(),
                images.clone(),
                stop,
            )
        });
    }
}

/// The leases of singleton work (`leases.name`).
pub const LEASE_BACKUPS: &str = "backups";
pub const LEASE_RECOMMENDATIONS: &str = "recommendations";
pub const LEASE_EVENT_ROLLUP: &str = "event-rollup";
pub const LEASE_CATALOGUE_RECHECK: &str = "catalogue-recheck";
pub const LEASE_VECTOR_SYNC: &str = "vector-sync";
pub const LEASE_ALERTS: &str = "alerts";

/// This node's lease keeper (`node.name`, `node.lease_secs`).
fn keeper(cfg: &Config, db: &MySqlPool) -> workers::lease::Keeper {
    workers::lease::Keeper {
        db: db.clone(),
        node: cfg.node_name(),
        ttl: cfg.lease_ttl(),
    }
}

impl App {
    /// The web layer's state, from this appliance's parts.
    pub fn web_state(&self) -> Result<web::AppState, StartError> {
        let secrets = Secrets::load(&self.cfg.secrets_path())?;
        Ok(
            WebState::new(&self.cfg, self.db.clone(), self.vectors.clone())
                .jwt_secret(secrets.jwt_secret.as_ref())
                .mail_password(&self.cfg, secrets.mail_password.as_ref())
                .started(self.started)
                .supervised(self.services.receivers())
                .search(self.search.clone())
                .reads(self.reads.clone())
                .startup(self.startup.clone())
                .images(self.images.clone())
                .build(),
        )
    }

    /// Serve until SIGTERM or Ctrl-C, then stop everything in order.
    pub async fn run_until_signal(self) -> Result<(), StartError> {
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            notify::send("STOPPING=1");
            tracing::info!("shutting down: web, then milvus, then mysql");
            shutdown.cancel();
        });
        self.serve().await
    }

    /// Serve until [`App::shutdown`]'s token is cancelled, then stop everything in order: the
    /// web servers (draining), the admin socket, Milvus, MySQL.
    pub async fn serve(self) -> Result<(), StartError> {
        let local = self.cfg.is_local_mode();
        let url = format!("http://{}", self.web.local_addr()?);
        tracing::info!(
            %url,
            mode = %https::mode_line(&self.cfg),
            startup_ms = self.started.elapsed().as_millis() as u64,
            "serving"
        );
        let state = self.web_state()?;
        let views = state.views.clone();
        notify::status("web server listening; checking readiness");
        notify::spawn_ready(state.clone(), self.shutdown.clone());
        notify::watch_supervisors(self.services.receivers());
        let alerts = Arc::new(std::sync::RwLock::new(Vec::new()));
        let control: Arc<dyn admin::Control> = Arc::new(Control {
            services: self.services.clone(),
            db: self.db.clone(),
            reads: self.reads.clone(),
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
            search: self.search.clone(),
            standby: self.standby.clone(),
            startup: self.startup.clone(),
            images: self.images.clone(),
        });
        if self.standby.is_standby() {
            // The alert table and its notices are the primary's (replicated, read-only here):
            // a standby would send them again and could not mark them sent. Its own state is
            // the red `replication` check in `soko status` and /readyz's 503.
            let (cfg, db, control, standby, stop) = (
                self.cfg.clone(),
                self.db.clone(),
                control.clone(),
                self.standby.clone(),
                self.shutdown.clone(),
            );
            tokio::spawn(async move {
                tokio::select! {
                    () = standby.primary() => {}
                    () = stop.cancelled() => return,
                }
                if let Err(e) = observe::spawn_alerts(&cfg, db, control, alerts, stop) {
                    tracing::error!("alerts after the promotion: {e}");
                }
            });
        } else {
            observe::spawn_alerts(
                &self.cfg,
                self.db.clone(),
                control.clone(),
                alerts,
                self.shutdown.clone(),
            )?;
        }
        let metrics_task = match self.cfg.metrics.listen {
            Some(addr) => match TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::info!(%addr, "metrics served at /metrics (metrics.listen)");
                    Some(tokio::spawn(admin::serve_metrics_tcp(
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
        let gate = self.standby.clone();
        let app =
            web::router(state, &self.cfg).layer(axum::middleware::from_fn(move |req, next| {
                standby::gate(gate.clone(), req, next)
            }));
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
        // The web servers are drained: write the buffered views before the pool closes.
        views.close().await;
        self.db.close().await;
        if self.cfg.vectors.mode == Mode::Embedded {
            self.vectors.seal_for_stop(Duration::from_secs(10)).await;
        }
        self.services.stop().await;
        let _ = std::fs::remove_file(self.cfg.admin_socket());
        served.map_err(StartError::Web)?;
        tracing::info!("stopped");
        Ok(())
    }

    /// Cancelling this token stops [`App::serve`] (and every worker).
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
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
