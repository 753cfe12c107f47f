//! A node's role at run time. A standby serves nothing public: every request but `/healthz`
//! answers 503 (so `/readyz` keeps load balancers and the DNS health check away), and the
//! workers that write (images, backups, recommendations, event roll-up, the vector sync) and
//! the migrations wait for [`Standby::promote`]. Promotion (`soko promote` through the admin
//! socket) stops replication, makes the database writable, writes the role, queues every
//! public product for the vector index (the standby's Milvus is empty) and starts them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::{Config, Mode, secrets::Secrets};
use crate::ops::replication_view::ReplicationView;
use crate::store;
use crate::store::images::Files;
use crate::supervisor::{mysql, replication};
use crate::workers::image_follow::{self, SharedView};
use std::time::Duration;

/// Shared by the web gate, the admin socket and the task that starts the writers.
pub(super) struct Standby {
    standby: AtomicBool,
    /// Serialises promotions.
    promoting: tokio::sync::Mutex<()>,
    promoted: tokio::sync::Notify,
    /// The copy of the primary's photos (while a standby; kept after for the record).
    images: Option<SharedView>,
}

impl Standby {
    pub(super) fn new(role: replication::Role) -> Arc<Standby> {
        Arc::new(Standby {
            standby: AtomicBool::new(role == replication::Role::Standby),
            promoting: tokio::sync::Mutex::new(()),
            promoted: tokio::sync::Notify::new(),
            images: (role == replication::Role::Standby).then(SharedView::default),
        })
    }

    /// While a standby: copy the primary's photos (`workers::image_follow`) until promoted or
    /// `stop`.
    pub(super) fn follow_images(
        self: &Arc<Self>,
        cfg: &Config,
        db: &sqlx::MySqlPool,
        stop: &tokio_util::sync::CancellationToken,
    ) {
        let Some(view) = self.images.clone() else {
            return;
        };
        if cfg.images.store == crate::config::images::StoreKind::S3 {
            tracing::info!(
                "standby: photos are in the shared bucket (images.store: s3), nothing to copy"
            );
            if let Ok(mut v) = view.lock() {
                v.shared_bucket = true;
                v.source = cfg.images.s3.as_ref().map(|s| format!("s3://{}", s.bucket));
            }
            return;
        }
        let Some(source) = cfg.standby_images_source() else {
            tracing::warn!(
                "standby: the primary's photos are not copied (set standby.images_from to its storefront)"
            );
            return;
        };
        let until = stop.child_token();
        let (me, cancel) = (self.clone(), until.clone());
        tokio::spawn(async move {
            me.primary().await;
            cancel.cancel();
        });
        tokio::spawn(image_follow::run(
            db.clone(),
            Files::new(cfg.data_dir.join("images")),
            source,
            Duration::from_secs(cfg.standby.images_every_secs),
            cfg.standby.images_parallel,
            view,
            until,
        ));
    }

    pub(super) fn is_standby(&self) -> bool {
        self.standby.load(Ordering::Acquire)
    }

    /// Returns once this node is the primary (at once when it is).
    pub(super) async fn primary(&self) {
        loop {
            let notified = self.promoted.notified();
            if !self.is_standby() {
                return;
            }
            notified.await;
        }
    }

    /// Stop replicating, accept writes, become the primary; what was done, or why not.
    pub(super) async fn promote(
        &self,
        cfg: &Config,
        db: &sqlx::MySqlPool,
    ) -> Result<String, String> {
        let _one = self.promoting.lock().await;
        if !self.is_standby() {
            return Err("this node is already the primary".into());
        }
        let mut gtid = String::new();
        if cfg.database.mode == Mode::Embedded {
            let secrets = Secrets::load(&cfg.secrets_path()).map_err(|e| e.to_string())?;
            let root = secrets
                .mysql_root_password
                .as_ref()
                .ok_or("mysql_root_password is missing from the secrets file")?;
            let mut conn =
                store::admin::connect_root(&mysql::Paths::new(cfg).socket, root.expose())
                    .await
                    .map_err(|e| format!("cannot reach the database as root: {e}"))?;
            if let Ok(Some(s)) = store::replication::status(&mut conn).await {
                gtid = s.gtid;
            }
            store::replication::promote(&mut conn)
                .await
                .map_err(|e| format!("the database refused to stop replicating: {e}"))?;
        }
        replication::set_role(&cfg.data_dir, replication::Role::Primary)
            .map_err(|e| format!("cannot write the role file: {e}"))?;
        self.standby.store(false, Ordering::Release);
        self.promoted.notify_waiters();
        // The standby's vector store never saw the primary's writes: rebuild it from MySQL.
        let queued = match store::backups::enqueue_public_products(db).await {
            Ok(n) => format!("{n} products queued for the vector index"),
            Err(e) => {
                tracing::error!("promotion: cannot queue the vector index rebuild: {e}");
                format!(
                    "the vector index rebuild could not be queued ({e}): run `soko restore`'s reindex or wait for the reconcile"
                )
            }
        };
        tracing::warn!(%gtid, "promoted: this node is now the primary");
        let photos = match self.images.as_ref().map(|v| v.lock().unwrap().clone()) {
            Some(v) if v.source.is_none() => {
                "; the primary's photos were not copied (standby.images_from): restore the images archive of the newest backup".to_owned()
            }
            Some(v) if v.missing > 0 || v.last_round_unix.is_none() => format!(
                "; {} of the primary's photos had not been copied: restore the images archive of the newest backup",
                if v.last_round_unix.is_none() { "some".to_owned() } else { v.missing.to_string() }
            ),
            _ => String::new(),
        };
        Ok(format!(
            "promoted: replication stopped at GTID {}; the database accepts writes and the shop serves; {queued}{photos}",
            if gtid.is_empty() { "-" } else { &gtid }
        ))
    }

    /// The snapshot's view: the role and, on a replica, `SHOW SLAVE STATUS`.
    pub(super) async fn view(&self, cfg: &Config) -> ReplicationView {
        let role = if self.is_standby() {
            replication::Role::Standby
        } else {
            replication::Role::Primary
        };
        let mut view = ReplicationView {
            role: role.as_str().into(),
            replica: None,
            error: None,
            images: self.images.as_ref().map(|v| v.lock().unwrap().clone()),
        };
        if cfg.database.mode != Mode::Embedded {
            return view;
        }
        let read = async {
            let secrets = Secrets::load(&cfg.secrets_path()).map_err(|e| e.to_string())?;
            let root = secrets
                .mysql_root_password
                .as_ref()
                .ok_or("mysql_root_password is missing")?;
            let mut conn =
                store::admin::connect_root(&mysql::Paths::new(cfg).socket, root.expose())
                    .await
                    .map_err(|e| e.to_string())?;
            store::replication::status(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(std::time::Duration::from_secs(3), read).await {
            Ok(Ok(replica)) => view.replica = replica,
            Ok(Err(e)) => view.error = Some(e),
            Err(_) => view.error = Some("the database did not answer in 3 s".into()),
        }
        view
    }
}

/// The web gate: while a standby, 503 for everything but the liveness probe.
pub(super) async fn gate(standby: Arc<Standby>, req: Request, next: Next) -> Response {
    if !standby.is_standby() || req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, "30"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        "This Soko node is a warm standby: it follows the primary and serves nothing until it is \
         promoted (`soko promote`).\n",
    )
        .into_response()
}
