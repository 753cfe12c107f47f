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
use crate::supervisor::{mysql, replication};

/// Shared by the web gate, the admin socket and the task that starts the writers.
pub(super) struct Standby {
    standby: AtomicBool,
    /// Serialises promotions.
    promoting: tokio::sync::Mutex<()>,
    promoted: tokio::sync::Notify,
}

impl Standby {
    pub(super) fn new(role: replication::Role) -> Arc<Standby> {
        Arc::new(Standby {
            standby: AtomicBool::new(role == replication::Role::Standby),
            promoting: tokio::sync::Mutex::new(()),
            promoted: tokio::sync::Notify::new(),
        })
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
        Ok(format!(
            "promoted: replication stopped at GTID {}; the database accepts writes and the shop serves; {queued}",
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
