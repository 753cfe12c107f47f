//! `soko up`'s observability: logs (with retention) and error tracking at start, the alert
//! evaluator once the appliance runs.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use super::StartError;
use crate::config::Config;
use crate::config::secrets::Secrets;
use crate::ops::admin::Control;
use crate::ops::alerts::{AlertInputs, AlertView, engine::Engine};
use crate::telemetry::{self, Guards, retention};

/// Logs to the terminal and the rotating files, errors and panics to Sentry when `sentry_dsn`
/// is set.
pub fn init_logging(cfg: &Config) -> Result<Guards, StartError> {
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let sentry = match secrets.sentry_dsn.as_ref().filter(|d| !d.is_empty()) {
        None => None,
        Some(dsn) => match telemetry::sentry_guard(dsn.expose(), &cfg.sentry) {
            Ok(g) => Some(g),
            Err(e) => {
                return Err(StartError::Refused(vec![format!(
                    "{e} (secrets file or SOKO_SENTRY_DSN)"
                )]));
            }
        },
    };
    let on = sentry.is_some();
    let dir = cfg.log_dir();
    let guards =
        telemetry::init_appliance(&cfg.logging.level, &dir, cfg.logging.keep_files, sentry)
            .map_err(|source| StartError::LogDir {
                path: dir.clone(),
                source,
            })?;
    if on {
        tracing::info!(environment = %cfg.sentry.environment, "error tracking on (Sentry)");
    }
    let (keep, max) = (cfg.logging.keep_files, cfg.logging.max_total_mb << 20);
    tokio::spawn(async move {
        loop {
            let pruned = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || {
                    retention::prune(&dir, &telemetry::LOG_PREFIXES, keep, max)
                })
                .await
                .unwrap_or_default()
            };
            if !pruned.is_empty() {
                tracing::info!(
                    files = pruned.len(),
                    "old log files deleted (logging.keep_files / max_total_mb)"
                );
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
    Ok(guards)
}

/// The alert evaluator, fed by the status snapshot every `alerts.interval_secs`; it keeps
/// `views` (what the snapshot shows) current. Its notices are singleton work: it runs under the
/// `alerts` lease (on one node at a time), and not at all on a `web` node.
pub fn spawn_alerts(
    cfg: &Config,
    db: MySqlPool,
    control: Arc<dyn Control>,
    views: Arc<RwLock<Vec<AlertView>>>,
    stop: CancellationToken,
) -> Result<(), StartError> {
    if cfg.node.role == crate::config::node::Role::Web {
        return Ok(());
    }
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let keeper = super::keeper(cfg, &db);
    let cfg = cfg.clone();
    keeper.spawn(super::LEASE_ALERTS, &stop, move |stop| {
        let engine = Engine::new(db.clone(), &cfg, &secrets).sharing(views.clone());
        let control = control.clone();
        engine.run(
            move || {
                let control = control.clone();
                async move { AlertInputs::from_snapshot(&control.snapshot().await) }
            },
            stop,
        )
    });
    Ok(())
}
