//! The scheduler of `soko up`: what is due is decided from the `backups` table (the newest row
//! of each kind and status), so a restart neither repeats nor forgets a run.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Engine, Error};
use crate::config::backup::{Backup, Kind};
use crate::market::states::BackupStatus;
use crate::store::backups;

/// Retry a failed scheduled kind after this long (not before its next scheduled time
/// otherwise).
const RETRY_SECS: i64 = 3600;

/// The scheduled kinds due at `now`, from the newest rows of each kind and status.
pub fn due(cfg: &Backup, rows: &[backups::Row], now: i64, started: i64) -> Vec<Kind> {
    [Kind::Database, Kind::Vectors, Kind::Images]
        .into_iter()
        .filter(|kind| {
            let of_kind = || rows.iter().filter(|r| r.kind == *kind);
            let last_due = cfg.last_due(*kind, now);
            let last_ok = of_kind()
                .filter(|r| matches!(r.status, BackupStatus::Ok | BackupStatus::Pruned))
                .map(|r| r.started_at)
                .max();
            let last_try = of_kind().map(|r| r.started_at).max();
            match (last_ok, last_try) {
                // Never tried: the first scheduled time after this soko started.
                (_, None) => last_due >= started,
                (Some(ok), _) if ok >= last_due => false,
                (_, Some(t)) => t < last_due || now - t >= RETRY_SECS,
            }
        })
        .collect()
}

/// The scheduler of `soko up`: looks once a minute at the `backups` table.
pub async fn schedule(engine: Arc<Engine>, stop: CancellationToken) {
    let started = crate::clock::now_unix() as i64;
    let mut tick = Duration::from_secs(5);
    let mut recovered = false;
    // Point-in-time recovery: binlogs shipped every `binlog_every_secs` (what is shipped is in
    // MySQL; only the timing and the GTID position of the last rotation live here).
    let binlog_every = engine.cfg.binlog_every_secs.max(1) as i64;
    let mut binlog_last = started;
    let mut binlog_gtid: Option<String> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = stop.cancelled() => return,
        }
        tick = Duration::from_secs(if recovered {
            60.min(binlog_every as u64)
        } else {
            5
        });
        if !recovered {
            // Once the database answers and is migrated (soko up migrates in the background).
            match engine.recover().await {
                Ok(n) => {
                    recovered = true;
                    if n > 0 {
                        tracing::warn!(
                            runs = n,
                            "backup runs interrupted by the last stop were marked failed"
                        );
                    }
                }
                Err(e) => {
                    tracing::debug!("backup scheduler waiting for the database: {e}");
                    continue;
                }
            }
        }
        if !engine.cfg.scheduled {
            continue;
        }
        scheduled_drill(&engine, &stop).await;
        let now = crate::clock::now_unix() as i64;
        if now - binlog_last >= binlog_every {
            binlog_last = now;
            tokio::select! {
                r = engine.ship_binlogs(binlog_gtid.as_deref()) => match r {
                    Ok(o) => binlog_gtid = o.ok.then_some(o.gtid_binlog_pos),
                    Err(Error::Busy) => {}
                    Err(Error::Refused(e)) => tracing::debug!("binlogs not shipped: {e}"),
                    Err(e) => tracing::error!("shipping binlogs could not start: {e}"),
                },
                () = stop.cancelled() => return,
            }
        }
        let rows = match backups::latest(&engine.db).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!("backup scheduler: {e}");
                continue;
            }
        };
        let kinds = due(&engine.cfg, &rows, now, started);
        if kinds.is_empty() {
            continue;
        }
        tracing::info!(?kinds, "scheduled backup starting");
        tokio::select! {
            r = engine.run(&kinds, "schedule") => match r {
                Ok(_) => {}
                Err(Error::Busy) => tracing::info!("scheduled backup skipped: another run is in progress"),
                Err(e) => tracing::error!("scheduled backup could not start: {e}"),
            },
            () = stop.cancelled() => return,
        }
    }
}

/// The restore drill, when `backup.verify_every_days` says it is due (from `backup_drills`:
/// a restart neither repeats nor forgets it) and a scheduled backup has made a set (sets made
/// by hand alone, as on a box just set up, do not start it). Under the backup lock, so that
/// no run prunes the set meanwhile.
async fn scheduled_drill(engine: &Engine, stop: &CancellationToken) {
    let now = crate::clock::now_unix() as i64;
    let last = match crate::store::drills::latest(&engine.db).await {
        Ok(last) => last,
        Err(e) => {
            tracing::debug!("restore drill schedule: {e}");
            return;
        }
    };
    if !super::drill::drill_due(engine.cfg.verify_every_days, last.as_ref(), now)
        || !super::restore::manifests(&engine.dir)
            .iter()
            .any(|(_, m)| m.reason == "schedule")
    {
        return;
    }
    let Ok(Some(lock)) = backups::Lock::try_acquire(&engine.db).await else {
        return;
    };
    tokio::select! {
        r = engine.drill(None, &engine.box_opener, "schedule") => {
            match r {
                Ok(_) => {}
                // `soko backup verify` is drilling right now: nothing was recorded, so the
                // drill is still due and the next tick tries again.
                Err(super::Error::Refused(why)) => tracing::info!("scheduled restore drill waits: {why}"),
                Err(e) => tracing::error!("restore drill could not be recorded: {e}"),
            }
        }
        () = stop.cancelled() => {}
    }
    lock.release().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, kind: &str, status: &str, at: i64) -> backups::Row {
        backups::Row {
            id,
            set_id: String::new(),
            kind: kind.parse().unwrap(),
            status: status.parse().unwrap(),
            reason: "schedule".into(),
            path: None,
            bytes: None,
            sha256: None,
            schema_version: None,
            started_at: at,
            finished_at: None,
            error: None,
            copied_to: None,
        }
    }

    #[test]
    fn due_from_history() {
        let cfg = Backup::default();
        let now = 1_795_860_000; // Saturday 10:00 UTC
        let db_due = cfg.last_due(Kind::Database, now); // today 02:30
        // A fresh install does not back up at once, only from the first scheduled time.
        assert!(due(&cfg, &[], now, now - 60).is_empty());
        let all = due(&cfg, &[], now, db_due - 60);
        assert!(all.contains(&Kind::Database) && all.contains(&Kind::Images));
        // Done today: not due; done yesterday: due.
        let today = [row(1, "database", "ok", db_due + 10)];
        assert!(!due(&cfg, &today, now, 0).contains(&Kind::Database));
        let yesterday = [row(1, "database", "ok", db_due - 3600)];
        assert!(due(&cfg, &yesterday, now, 0).contains(&Kind::Database));
        // Failed today: retried an hour later, not at once.
        let failed = [
            row(1, "database", "ok", db_due - 3600),
            row(2, "database", "failed", now - 600),
        ];
        assert!(!due(&cfg, &failed, now, 0).contains(&Kind::Database));
        let failed = [
            row(1, "database", "ok", db_due - 3600),
            row(2, "database", "failed", now - 4000),
        ];
        assert!(due(&cfg, &failed, now, 0).contains(&Kind::Database));
    }
}
