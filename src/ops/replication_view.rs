//! The warm standby in the status snapshot: this node's role and, on a standby, its
//! replication (IO and SQL threads, seconds behind, last applied GTID, last error).

use serde::{Deserialize, Serialize};

use super::check::{CheckView, Level};
use crate::store::replication::ReplicaStatus;
use crate::workers::image_follow::FollowView;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationView {
    /// `primary` or `standby`.
    pub role: String,
    /// What `SHOW SLAVE STATUS` says; `None` on a primary (or when it could not be read).
    pub replica: Option<ReplicaStatus>,
    /// Why the replica's state could not be read.
    pub error: Option<String>,
    /// A standby's copy of the primary's photos (`None` on a node that never was a standby).
    #[serde(default)]
    pub images: Option<FollowView>,
}

impl ReplicationView {
    /// One line for `soko status` (two on a standby: the database, then its photos).
    pub fn line(&self) -> String {
        let db = self.database_line();
        match &self.images {
            Some(i) if self.role == "standby" => format!("{db}\n                   {}", i.line()),
            _ => db,
        }
    }

    fn database_line(&self) -> String {
        match (&self.replica, &self.error) {
            (_, Some(e)) => format!("{}: replication unknown: {e}", self.role),
            (None, None) => format!("{}: not replicating", self.role),
            (Some(r), None) => format!(
                "{} of {}: IO {} · SQL {} · {} behind · GTID {}{}",
                self.role,
                r.primary,
                r.io_running,
                if r.sql_running { "Yes" } else { "No" },
                r.seconds_behind
                    .map(|s| format!("{s} s"))
                    .unwrap_or_else(|| "? s".into()),
                if r.gtid.is_empty() { "-" } else { &r.gtid },
                r.last_error
                    .as_deref()
                    .map(|e| format!(" · last error: {e}"))
                    .unwrap_or_default(),
            ),
        }
    }

    /// A check: red when a standby does not replicate (it would fall behind unnoticed).
    pub fn check(&self) -> CheckView {
        let running = self
            .replica
            .as_ref()
            .is_some_and(|r| r.io_running == "Yes" && r.sql_running);
        let photos_behind = self.role == "standby"
            && self
                .images
                .as_ref()
                .is_none_or(|i| i.source.is_none() || i.failed > 0);
        let (level, detail) = if self.role == "standby" && !running {
            (Level::Red, self.database_line())
        } else if photos_behind {
            let photos = self.images.clone().unwrap_or_default().line();
            (Level::Amber, format!("{} · {photos}", self.database_line()))
        } else {
            (Level::Green, self.database_line())
        };
        CheckView {
            name: "replication".into(),
            level,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_that_does_not_replicate_is_red() {
        let mut v = ReplicationView {
            role: "standby".into(),
            replica: Some(ReplicaStatus {
                primary: "10.0.0.5:3307".into(),
                io_running: "Connecting".into(),
                sql_running: true,
                seconds_behind: None,
                gtid: "7-7-12".into(),
                last_error: Some("error connecting to master".into()),
            }),
            error: None,
            images: None,
        };
        let c = v.check();
        assert_eq!(c.level, Level::Red);
        assert!(
            c.detail.contains("IO Connecting") && c.detail.contains("7-7-12"),
            "{}",
            c.detail
        );
        v.replica.as_mut().unwrap().io_running = "Yes".into();
        // Replicating, but its photos are not copied: amber, saying why.
        let c = v.check();
        assert_eq!(c.level, Level::Amber);
        assert!(c.detail.contains("standby.images_from"), "{}", c.detail);
        v.images = Some(FollowView {
            source: Some("http://10.0.0.5".into()),
            rows: 3,
            last_round_unix: Some(1),
            ..FollowView::default()
        });
        assert_eq!(v.check().level, Level::Green);
        assert!(v.line().contains("photos: 3 of 3 here"), "{}", v.line());
        // Photos in the bucket both nodes share: nothing to copy, nothing behind.
        v.images = Some(FollowView {
            source: Some("s3://shop-photos".into()),
            shared_bucket: true,
            ..FollowView::default()
        });
        assert_eq!(v.check().level, Level::Green);
        assert!(v.line().contains("shared bucket"), "{}", v.line());
        v.role = "primary".into();
        v.replica = None;
        assert_eq!(v.check().level, Level::Green);
    }
}
