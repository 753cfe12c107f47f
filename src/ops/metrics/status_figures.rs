//! The figures `soko status` shows that `/metrics` also exposes as gauges: the newest good
//! backup per kind, when the served certificate expires, the vector-sync backlog and the alerts.
//! Read from the same sources as the status snapshot (the backup history, the outbox, the
//! certificate store's view, the alert evaluator's list), and no more: two small queries per
//! scrape, time-boxed so that a MySQL that does not answer costs the scrape little.

use std::time::Duration;

use sqlx::MySqlPool;

use crate::ops::alerts::AlertView;
use crate::ops::backup_view::{self, BackupView};
use crate::ops::status::TlsView;

/// How long a scrape waits for MySQL before leaving its figures out.
const DB_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusFigures {
    /// Per backup kind (`database`, `vectors`, `images`), the newest good archive's time, Unix
    /// seconds. Empty when the history is unreadable.
    pub backups: Vec<(String, i64)>,
    /// Per name the served certificate covers, when it expires (Unix seconds).
    pub certificates: Vec<(String, i64)>,
    /// Outbox rows waiting for the vector sync; `None` when MySQL does not answer.
    pub vector_sync_backlog: Option<i64>,
    /// Every alert the evaluator knows (resolved ones too), and whether it fires.
    pub alerts: Vec<(String, bool)>,
    /// Point-in-time recovery: the newest instant a restore can reach (Unix seconds).
    pub restorable_until: Option<i64>,
    /// This node's role and, on a standby, its replication and photos.
    pub replication: Option<ReplicationFigures>,
    /// Read replicas (`database.replicas`), as the probe last saw them.
    pub replicas: Vec<crate::store::replicas::ReplicaView>,
    /// With read replicas: the reads the primary answered instead (none healthy, a replica
    /// that failed a read, a session that had just written). `None` without replicas.
    pub primary_reads: Option<u64>,
    /// The leases of singleton work this node keeps, and whether it holds each now.
    pub leases: Vec<(String, bool)>,
}

/// A standby's figures (`None` fields: not known, e.g. `Seconds_Behind_Master` is NULL while
/// the IO thread reconnects).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicationFigures {
    pub standby: bool,
    /// Both replication threads run.
    pub running: bool,
    pub seconds_behind: Option<u64>,
    /// Image rows whose files are not here yet.
    pub photos_missing: Option<u64>,
}

impl ReplicationFigures {
    pub fn from_view(v: &crate::ops::replication_view::ReplicationView) -> ReplicationFigures {
        let replica = v.replica.as_ref();
        ReplicationFigures {
            standby: v.role == "standby",
            running: replica.is_some_and(|r| r.io_running == "Yes" && r.sql_running),
            seconds_behind: replica.and_then(|r| r.seconds_behind),
            photos_missing: v
                .images
                .as_ref()
                .filter(|i| i.last_round_unix.is_some())
                .map(|i| i.missing),
        }
    }
}

impl StatusFigures {
    /// The figures as the snapshot's parts hold them. The certificate counts once it is the
    /// real one (as for the alert rule): the self-signed stand-in served while an ACME order
    /// is pending says nothing about expiry.
    pub fn from_views(
        backups: Option<&BackupView>,
        tls: Option<&TlsView>,
        vector_sync_backlog: Option<i64>,
        alerts: &[AlertView],
    ) -> StatusFigures {
        let kinds = backups
            .filter(|b| b.error.is_none())
            .map(|b| {
                b.kinds
                    .iter()
                    .filter_map(|k| Some((k.kind.clone(), k.last_success_at?)))
                    .collect()
            })
            .unwrap_or_default();
        let certificates = tls
            .filter(|t| t.issued || t.mode != "acme")
            .and_then(|t| Some((t, t.not_after?)))
            .map(|(t, at)| t.names.iter().map(|n| (n.clone(), at)).collect())
            .unwrap_or_default();
        let restorable_until = backups
            .as_ref()
            .filter(|b| b.error.is_none())
            .and_then(|b| b.window.as_ref())
            .map(|w| w.until);
        StatusFigures {
            backups: kinds,
            certificates,
            vector_sync_backlog,
            alerts: alerts.iter().map(|a| (a.key.clone(), a.firing())).collect(),
            restorable_until,
            replication: None,
            replicas: Vec::new(),
            primary_reads: None,
            leases: crate::workers::lease::held()
                .into_iter()
                .map(|(n, held)| (n.to_owned(), held))
                .collect(),
        }
    }

    /// The read replicas as `reads` routes them now (the probe's view, the reads each
    /// answered, the primary's share).
    pub fn with_reads(mut self, reads: &crate::store::replicas::Reads) -> StatusFigures {
        self.replicas = reads.views();
        self.primary_reads = (!self.replicas.is_empty()).then(|| reads.primary_reads());
        self
    }

    /// Read now: the backup history and the outbox from MySQL (at most [`DB_WAIT`]), the
    /// certificate and the alerts as the caller holds them.
    pub async fn collect(
        db: &MySqlPool,
        backup: &crate::config::backup::Backup,
        tls: Option<&TlsView>,
        alerts: &[AlertView],
    ) -> StatusFigures {
        let read = async {
            let backups = backup_view::build(db, backup, "").await;
            let backlog = crate::store::vector_sync::backlog(db).await.ok();
            (backups, backlog.map(|b| b.rows))
        };
        let (backups, backlog) = match tokio::time::timeout(DB_WAIT, read).await {
            Ok((backups, backlog)) => (Some(backups), backlog),
            Err(_) => (None, None),
        };
        StatusFigures::from_views(backups.as_ref(), tls, backlog, alerts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::backup_view::KindView;
    use crate::ops::status::Level;

    #[test]
    fn figures_follow_the_views() {
        let backups = BackupView {
            kinds: vec![
                KindView {
                    kind: "database".into(),
                    last_success_at: Some(1_700_000_000),
                    ..KindView::default()
                },
                KindView {
                    kind: "vectors".into(),
                    last_failure_at: Some(1_700_000_100),
                    ..KindView::default()
                },
            ],
            ..BackupView::default()
        };
        let mut tls = TlsView {
            mode: "acme".into(),
            names: vec!["shop.example".into(), "www.shop.example".into()],
            not_after: Some(1_800_000_000),
            ..TlsView::default()
        };
        let alert = |key: &str, state: &str| AlertView {
            key: key.into(),
            level: Level::Red,
            state: state.into(),
            summary: String::new(),
            since: 0,
            count: 1,
        };
        let alerts = [
            alert("disk-full", "firing"),
            alert("backup-failed", "resolved"),
        ];
        let f = StatusFigures::from_views(Some(&backups), Some(&tls), Some(4), &alerts);
        assert_eq!(f.backups, [("database".to_owned(), 1_700_000_000)]);
        assert!(
            f.certificates.is_empty(),
            "the stand-in before the first order"
        );
        assert_eq!(f.vector_sync_backlog, Some(4));
        assert_eq!(
            f.alerts,
            [
                ("disk-full".to_owned(), true),
                ("backup-failed".to_owned(), false)
            ]
        );
        tls.issued = true;
        let f = StatusFigures::from_views(None, Some(&tls), None, &[]);
        assert_eq!(
            f.certificates,
            [
                ("shop.example".to_owned(), 1_800_000_000),
                ("www.shop.example".to_owned(), 1_800_000_000)
            ]
        );
        let unreadable = BackupView {
            error: Some("no table".into()),
            ..backups
        };
        let f = StatusFigures::from_views(Some(&unreadable), None, None, &[]);
        assert!(f.backups.is_empty());
    }
}
