//! The evaluator: every `alerts.interval_secs`, gather the inputs, run the rules, plan the
//! changes against the state in MySQL, write them with their notices in one transaction (the
//! outbox), then deliver what is due. A crash between any two steps loses nothing: unsent
//! notices stay pending, and the state says what was already notified.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use super::deliver::{Channels, Message};
use super::plan::{self, parse_level};
use super::{AlertInputs, AlertView, Thresholds, disk_used_percent, evaluate, unsettled};
use crate::config::Config;
use crate::config::alerts::Alerts;
use crate::config::secrets::Secrets;
use crate::store::{self, alerts::AlertRow, alerts::NewNotice};

/// A notice that keeps failing is given up after this many tries (about a day of back-off).
pub const MAX_ATTEMPTS: u32 = 30;

/// What one round did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    pub firing: usize,
    pub queued: usize,
    pub sent: usize,
    pub failed: usize,
}

pub struct Engine {
    db: MySqlPool,
    cfg: Alerts,
    channels: Channels,
    data_dir: PathBuf,
    host: String,
    views: Arc<RwLock<Vec<AlertView>>>,
}

fn view(r: &AlertRow) -> AlertView {
    AlertView {
        key: r.alert_key.clone(),
        level: parse_level(&r.level),
        state: r.state.clone(),
        summary: r.summary.clone(),
        since: r.since,
        count: r.count,
    }
}

/// Seconds to wait before the next try of a notice tried `attempts` times: 30 s doubling, at
/// most an hour.
pub fn retry_after(attempts: u32) -> u64 {
    (30u64 << attempts.min(10)).min(3600)
}

impl Engine {
    pub fn new(db: MySqlPool, cfg: &Config, secrets: &Secrets) -> Engine {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "soko".into());
        let host = if cfg.domain.is_empty() {
            host
        } else {
            cfg.domain.clone()
        };
        Engine {
            db,
            cfg: cfg.alerts.clone(),
            channels: Channels::new(&cfg.alerts, secrets),
            data_dir: cfg.data_dir.clone(),
            host,
            views: Arc::new(RwLock::new(Vec::new())),
        }
    }

    /// Keep the alerts in `views` (e.g. the status snapshot's list) instead of a list of its own.
    pub fn sharing(mut self, views: Arc<RwLock<Vec<AlertView>>>) -> Self {
        self.views = views;
        self
    }

    /// The alerts as of the last round (firing, then recently resolved), shared with the
    /// status snapshot.
    pub fn views(&self) -> Arc<RwLock<Vec<AlertView>>> {
        self.views.clone()
    }

    /// One evaluation at `now` (Unix seconds). Disk usage is measured here when the inputs
    /// do not carry it.
    pub async fn round(&self, mut inputs: AlertInputs, now: i64) -> Result<Round, store::Error> {
        if inputs.disk_used_percent.is_none() {
            inputs.disk_used_percent = disk_used_percent(&self.data_dir);
        }
        let holding = evaluate(&inputs, &Thresholds::from(&self.cfg), now);
        let stored = store::alerts::all(&self.db).await?;
        let changes = plan::plan(
            &stored,
            &holding,
            &unsettled(&inputs),
            now,
            self.cfg.remind_after_secs,
        );
        let channels = self.channels.names();
        let mut notices = Vec::new();
        for c in &changes {
            let Some(kind) = c.notify else { continue };
            tracing::warn!(
                alert = %c.row.alert_key,
                level = %c.row.level,
                kind = kind.as_str(),
                "alert {}: {}",
                kind.as_str(),
                c.row.summary
            );
            let body = serde_json::to_string(&Message {
                kind: kind.as_str().into(),
                alert: c.row.alert_key.clone(),
                level: c.row.level.clone(),
                summary: c.row.summary.clone(),
                since: c.row.since,
                count: c.row.count,
                host: self.host.clone(),
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .unwrap_or_default();
            for channel in &channels {
                notices.push(NewNotice {
                    alert_key: c.row.alert_key.clone(),
                    kind: kind.as_str(),
                    channel,
                    body: body.clone(),
                });
            }
        }
        if !changes.is_empty() {
            let rows: Vec<AlertRow> = changes.into_iter().map(|c| c.row).collect();
            store::alerts::apply(&self.db, &rows, &notices).await?;
        }
        store::alerts::prune_resolved(&self.db, self.cfg.keep_resolved_secs).await?;
        let all = store::alerts::all(&self.db).await?;
        if let Ok(mut v) = self.views.write() {
            *v = all.iter().map(view).collect();
        }
        let (sent, failed) = self.flush().await?;
        Ok(Round {
            firing: holding.len(),
            queued: notices.len(),
            sent,
            failed,
        })
    }

    /// Deliver the notices that are due; (sent, failed) counts.
    pub async fn flush(&self) -> Result<(usize, usize), store::Error> {
        let (mut sent, mut failed) = (0, 0);
        for n in store::alerts::due(&self.db, 50).await? {
            match self.channels.send(&n.channel, &n.body).await {
                Ok(()) => {
                    store::alerts::mark_sent(&self.db, n.id).await?;
                    tracing::info!(alert = %n.alert_key, kind = %n.kind, channel = %n.channel, "alert notice sent");
                    sent += 1;
                }
                Err(e) => {
                    let give_up = n.attempts + 1 >= MAX_ATTEMPTS;
                    tracing::warn!(
                        alert = %n.alert_key, channel = %n.channel, attempts = n.attempts + 1, give_up,
                        "alert notice not delivered: {e}"
                    );
                    store::alerts::mark_failed(
                        &self.db,
                        n.id,
                        &e.to_string(),
                        retry_after(n.attempts),
                        give_up,
                    )
                    .await?;
                    failed += 1;
                }
            }
        }
        Ok((sent, failed))
    }

    /// Evaluate every `alerts.interval_secs` until `stop`; `inputs` gathers the snapshot's
    /// part of the inputs.
    pub async fn run<F, Fut>(self, inputs: F, stop: CancellationToken)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = AlertInputs>,
    {
        let every = Duration::from_secs(self.cfg.interval_secs.max(1));
        let mut last_error = None;
        loop {
            let now = crate::clock::now_unix() as i64;
            let result = tokio::select! {
                r = async { self.round(inputs().await, now).await } => r,
                () = stop.cancelled() => return,
            };
            match result {
                Ok(_) => last_error = None,
                Err(e) => {
                    let e = e.to_string();
                    if last_error.as_ref() != Some(&e) {
                        tracing::warn!("alerts not evaluated: {e}");
                    }
                    last_error = Some(e);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}
