//! The web layer's state, written in one place: [`App::web_state`](super::App::web_state) for
//! `soko up`, and a web app without supervision on an existing pool and vector store for the
//! tests and the benches.

use std::sync::Arc;
use std::time::Instant;

use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::config::secrets::Secret;
use crate::supervisor;
use crate::vectors::VectorStore;
use crate::web::{self, AppState, Settings};

/// Builds a [`web::AppState`]: the settings from the config, started now, nothing supervised
/// unless told.
pub struct WebState {
    db: MySqlPool,
    reads: Option<Arc<crate::store::replicas::Reads>>,
    vectors: Arc<VectorStore>,
    settings: Settings,
    started: Instant,
    supervised: Vec<watch::Receiver<supervisor::Status>>,
    background: crate::config::background::Background,
    events_per_address: u32,
    search: Option<crate::search::Search>,
    search_options: crate::search::Options,
    startup: crate::ops::readiness::Startup,
}

impl WebState {
    pub fn new(cfg: &Config, db: MySqlPool, vectors: Arc<VectorStore>) -> WebState {
        WebState {
            db,
            reads: None,
            vectors,
            settings: Settings::from_config(cfg),
            started: Instant::now(),
            supervised: Vec::new(),
            background: cfg.background.clone(),
            events_per_address: cfg.limits.events_per_address.get(),
            search: None,
            search_options: crate::search::Options::from_config(cfg),
            startup: crate::ops::readiness::Startup::finished(),
        }
    }

    /// The appliance's search index (else [`build`](Self::build) starts one of its own, which
    /// runs as long as the runtime: tests and benches).
    pub fn search(mut self, search: crate::search::Search) -> WebState {
        self.search = Some(search);
        self
    }

    /// Read replicas (else every read on the pool): `soko up`'s, with its probe running, or
    /// a test's.
    pub fn reads(mut self, reads: Arc<crate::store::replicas::Reads>) -> WebState {
        self.reads = Some(reads);
        self
    }

    /// Sign API tokens with the secrets file's `jwt_secret` (else a key for this process).
    pub fn jwt_secret(mut self, secret: Option<&Secret>) -> WebState {
        self.settings = self.settings.with_jwt_secret(secret);
        self
    }

    /// The SMTP password of account mail (`mail_password` in the secrets).
    pub fn mail_password(mut self, cfg: &Config, secret: Option<&Secret>) -> WebState {
        self.settings = self.settings.with_mail_password(cfg, secret);
        self
    }

    /// Where photos are read and written (else the files under `<data_dir>/images`).
    pub fn images(mut self, store: crate::objects::images::ImageStore) -> WebState {
        self.settings.images = store;
        self
    }

    pub fn started(mut self, at: Instant) -> WebState {
        self.started = at;
        self
    }

    /// The supervisor's view of the embedded servers, for health and status pages.
    pub fn supervised(mut self, rx: Vec<watch::Receiver<supervisor::Status>>) -> WebState {
        self.supervised = rx;
        self
    }

    /// `soko up`'s start-up work on the database, which readiness waits for (else none).
    pub fn startup(mut self, startup: crate::ops::readiness::Startup) -> WebState {
        self.startup = startup;
        self
    }

    /// The state, and the view writer's task started on its pool (needs a Tokio runtime).
    pub fn build(self) -> AppState {
        let views = web::view_writer::ViewWriter::spawn(
            self.db.clone(),
            &self.background,
            self.events_per_address,
        );
        let search = self.search.unwrap_or_else(|| {
            crate::search::Search::start(
                self.db.clone(),
                self.search_options,
                tokio_util::sync::CancellationToken::new(),
            )
        });
        AppState::new(web::AppShared {
            views: Arc::new(views),
            search,
            generation: crate::store::generation::counter(&self.db),
            reads: self.reads.unwrap_or_else(|| {
                Arc::new(crate::store::replicas::Reads::single(self.db.clone()))
            }),
            db: self.db,
            vectors: self.vectors,
            started: self.started,
            supervised: self.supervised,
            settings: Arc::new(self.settings),
            startup: self.startup,
        })
    }
}

/// Serve `state` on `listener` in the background until the runtime ends (tests, benches): the
/// same router and connection limits as `soko up`'s `http.listen`.
pub fn spawn_web(
    listener: TcpListener,
    state: AppState,
    cfg: &Config,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::spawn(web::serve(
        listener,
        web::router(state, cfg),
        &cfg.http,
        std::future::pending(),
    ))
}
