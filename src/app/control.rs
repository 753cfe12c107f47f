//! The admin socket's view of a running appliance: `soko status`, `soko doctor`, the console
//! and the alert evaluator read it; restarts, backups and renewals go through it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use sqlx::MySqlPool;

use super::https;
use crate::config::Config;
use crate::ops::{admin, readiness, status};
use crate::supervisor::{self, Services};
use crate::vectors::VectorStore;

pub(super) struct Control {
    pub(super) services: Arc<Services>,
    pub(super) db: MySqlPool,
    pub(super) reads: Arc<crate::store::replicas::Reads>,
    pub(super) vectors: Arc<VectorStore>,
    pub(super) started: Instant,
    pub(super) started_unix: u64,
    pub(super) config_path: String,
    pub(super) data_dir: String,
    pub(super) web_url: String,
    pub(super) local_mode: bool,
    pub(super) tls: Option<Arc<https::Certs>>,
    /// For the checklist.
    pub(super) cfg: Config,
    /// Filled by the alert evaluator (`observe::spawn_alerts`).
    pub(super) alerts: Arc<std::sync::RwLock<Vec<crate::ops::alerts::AlertView>>>,
    pub(super) backup: Arc<crate::workers::backup::Engine>,
    pub(super) log_dir: PathBuf,
    pub(super) data_path: PathBuf,
    pub(super) cfg_profile: &'static str,
    pub(super) search: crate::search::Search,
    pub(super) standby: Arc<super::standby::Standby>,
    pub(super) startup: crate::ops::readiness::Startup,
    /// Where photos are (`images.store`), probed for the status.
    pub(super) images: crate::objects::images::ImageStore,
}

impl Control {
    /// soko's own figures and each supervised child's.
    fn processes(&self) -> Vec<crate::ops::resources::ProcessFigures> {
        use crate::ops::resources::process;
        let mut all = vec![process("soko", Some(std::process::id()), 0)];
        for s in self.services.statuses() {
            all.push(crate::ops::resources::service(&s));
        }
        all
    }
}

impl admin::Control for Control {
    fn snapshot(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = status::Snapshot> + Send + '_>> {
        Box::pin(async move {
            let readiness = readiness::check(&self.db, &self.vectors, &self.startup, || {
                self.services.statuses()
            })
            .await;
            let tls = self.tls.as_ref().map(|t| t.view());
            let backups = crate::ops::backup_view::build(
                &self.db,
                &self.backup.cfg,
                &self.backup.dir.display().to_string(),
            )
            .await;
            let vector_sync = crate::ops::sync_view::collect(
                &self.db,
                &self.vectors.collection,
                self.cfg_profile,
            )
            .await;
            let replication = self.standby.view(&self.cfg).await;
            let catalogue =
                crate::ops::catalogue_view::collect(&self.db, &self.cfg.catalogue).await;
            let (images_ok, images) = self.images.status().await;
            let services = self
                .services
                .statuses()
                .into_iter()
                .map(|s| status::ServiceView {
                    rss_bytes: s.rss_bytes(),
                    level: status::service_level(&s),
                    status: s,
                })
                .collect();
            status::Snapshot {
                version: env!("CARGO_PKG_VERSION").into(),
                pid: std::process::id(),
                started_at: self.started_unix,
                uptime_secs: self.started.elapsed().as_secs(),
                rss_bytes: supervisor::pidfile::rss_bytes(std::process::id()),
                config_path: self.config_path.clone(),
                data_dir: self.data_dir.clone(),
                web_url: self.web_url.clone(),
                local_mode: self.local_mode,
                services,
                checks: {
                    let mut checks =
                        https::checks(status::readiness_checks(&readiness), tls.as_ref());
                    // The backups check comes from the backup history (it knows each kind's
                    // schedule and the secrets archive), not from the checklist's summary.
                    checks.push(crate::ops::backup_view::check(&backups));
                    let uptime = self.started.elapsed().as_secs();
                    checks.extend(
                        vector_sync
                            .as_ref()
                            .map(|v| crate::ops::sync_view::check(v, uptime)),
                    );
                    checks.push(replication.check());
                    checks.push(status::CheckView {
                        name: "images".into(),
                        level: if images_ok {
                            status::Level::Green
                        } else {
                            status::Level::Red
                        },
                        detail: images.clone(),
                    });
                    let inputs = crate::ops::backup_view::alert_inputs(&backups);
                    checks.extend(
                        crate::ops::checklist::gather(
                            &self.cfg,
                            &self.db,
                            inputs.as_ref(),
                            crate::clock::now_unix() as i64,
                            self.started.elapsed().as_secs(),
                        )
                        .await
                        .into_iter()
                        .filter(|c| c.name != "backups"),
                    );
                    checks
                },
                readiness,
                tls,
                alerts: self.alerts.read().map(|a| a.clone()).unwrap_or_default(),
                backups: Some(backups),
                traffic: Some(crate::ops::metrics::traffic(
                    crate::metrics::global(),
                    crate::clock::now_unix(),
                )),
                resources: Some(crate::ops::resources::collect(
                    &self.data_path,
                    self.processes(),
                )),
                workers: crate::workers::control::switches().views(),
                vector_sync,
                background: Some(crate::background::BackgroundView::now(&self.cfg.background)),
                search: Some(self.search.state().line()),
                quality: crate::store::quality::backlog(&self.db).await.ok().map(
                    |(queued, review)| {
                        crate::store::quality::backlog_line(
                            self.cfg.quality.enabled,
                            queued,
                            review,
                        )
                    },
                ),
                replication: Some(replication),
                catalogue,
                replicas: self.reads.views(),
                node: Some(crate::ops::node_view::NodeView::new(
                    self.cfg.node_name(),
                    self.cfg.node.role.to_string(),
                    crate::store::leases::list(&self.db).await.ok(),
                )),
                images: Some(images),
            }
        })
    }

    fn restart(&self, service: &str) -> bool {
        match self.services.handle(service) {
            Some(h) => {
                h.restart();
                true
            }
            None => false,
        }
    }

    fn backup_now(&self) -> admin::BackupFuture<'_> {
        use crate::config::backup::Kind;
        Box::pin(async move {
            let kinds = [Kind::Database, Kind::Vectors, Kind::Images];
            Some(
                self.backup
                    .run(&kinds, "manual")
                    .await
                    .map_err(|e| e.to_string()),
            )
        })
    }

    fn promote(&self) -> admin::PromoteFuture<'_> {
        Box::pin(async move { self.standby.promote(&self.cfg, &self.db).await })
    }

    fn metrics_text(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + '_>> {
        Box::pin(async move {
            let tls = self.tls.as_ref().map(|t| t.view());
            let alerts = self.alerts.read().map(|a| a.clone()).unwrap_or_default();
            let mut figures = crate::ops::metrics::StatusFigures::collect(
                &self.db,
                &self.backup.cfg,
                tls.as_ref(),
                &alerts,
            )
            .await;
            if self.cfg.database.mode == crate::config::Mode::Embedded {
                let view = self.standby.view(&self.cfg).await;
                figures.replication =
                    Some(crate::ops::metrics::ReplicationFigures::from_view(&view));
            }
            let figures = figures.with_reads(&self.reads);
            crate::ops::metrics::prometheus(crate::metrics::global(), &self.processes(), &figures)
        })
    }

    fn log_dir(&self) -> Option<PathBuf> {
        Some(self.log_dir.clone())
    }

    fn tls(&self) -> Option<status::TlsView> {
        self.tls.as_ref().map(|t| t.view())
    }

    fn renew_tls(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<admin::RenewOutcome>> + Send + '_>>
    {
        Box::pin(async move {
            match &self.tls {
                Some(t) => Some(t.renew().await),
                None => None,
            }
        })
    }
}
