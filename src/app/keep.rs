//! What `soko up` keeps true in the background: the database provisioned and migrated, the
//! vector collection created and loaded.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, Mode, secrets::Secrets};
use crate::store;
use crate::supervisor;
use crate::vectors::VectorStore;
use crate::workers::backup::upgrade::{self, Before};

/// Provision (embedded) and migrate once MySQL answers, as the schema's owner, then give the
/// app's user its rights on the tables; retried with back-off until it works.
pub(super) async fn database(
    cfg: Config,
    secrets: Secrets,
    mysql: Option<tokio::sync::watch::Receiver<supervisor::Status>>,
    stop: CancellationToken,
    // `false` on a standby: its schema comes from the primary, and its server is read-only.
    migrate: bool,
    // Told once everything above has worked (readiness waits for it).
    startup: crate::ops::readiness::Startup,
) {
    let mut delay = Duration::from_millis(500);
    // Taken once per start: a migration that fails is retried, not backed up again.
    let mut before: Option<Before> = None;
    loop {
        let attempt = async {
            if cfg.database.mode == Mode::Embedded {
                // A container sees this host's connections from its network's gateway.
                let peer = mysql
                    .as_ref()
                    .and_then(|rx| rx.borrow().peer_host.as_deref()?.parse().ok());
                supervisor::mysql::provision(&cfg, &secrets, peer)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(done) = supervisor::upgrade::after_start(&cfg, &secrets).await? {
                    tracing::warn!("{done}");
                }
            }
            if !migrate {
                return Ok(None);
            }
            // As the schema's owner: the app's own user cannot change the schema.
            let owner = store::pool(
                store::owner_options(&cfg, &secrets).map_err(|e| e.to_string())?,
                1,
            );
            let migrated = async {
                if before.is_none() {
                    let b = upgrade::before_migrations(&owner, &cfg, &secrets)
                        .await
                        .map_err(|e| e.to_string())?;
                    if let Some(line) = b.say() {
                        tracing::warn!("{line}");
                    }
                    before = Some(b);
                }
                store::migrate::run(&owner)
                    .await
                    .map_err(|e| match &before {
                        Some(b) => b.failed(&e),
                        None => e.to_string(),
                    })
            }
            .await;
            owner.close().await;
            let status = migrated?;
            if cfg.database.mode == Mode::Embedded {
                supervisor::mysql::grant_app_tables(&cfg, &secrets)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(Some(status))
        };
        match attempt.await {
            Ok(Some(s)) => {
                startup.finish();
                tracing::info!(version = s.applied, "database ready, migrations current");
                return;
            }
            Ok(None) => {
                startup.finish();
                tracing::info!("database ready (standby: the schema follows the primary)");
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
pub(super) async fn collection(vectors: Arc<VectorStore>, stop: CancellationToken) {
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
