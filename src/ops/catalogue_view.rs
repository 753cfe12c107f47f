//! Sellers' catalogue imports and the heartbeat re-check in the status snapshot: imports
//! running, pages waiting, the last round's counts, and whether the re-check is overdue (the
//! alert `catalogue-recheck`).

use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;

use crate::store::imports;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CatalogueView {
    pub imports_running: i64,
    pub pages_queued: i64,
    /// The newest re-check round.
    pub last_run: Option<imports::Run>,
    /// Seconds since a round last completed (or since the first import, if none has); `None`
    /// with nothing imported.
    pub recheck_lag_secs: Option<i64>,
    /// The alert's limit (`catalogue.recheck.alert_after_hours`), in seconds.
    pub alert_after_secs: i64,
}

/// `None` while MySQL does not answer.
pub async fn collect(
    db: &MySqlPool,
    cfg: &crate::config::catalogue::Catalogue,
) -> Option<CatalogueView> {
    let (imports_running, pages_queued) = imports::running(db).await.ok()?;
    let last_run = imports::runs(db, 1).await.ok()?.into_iter().next();
    let recheck_lag_secs = imports::recheck_lag(db).await.ok()?;
    Some(CatalogueView {
        imports_running,
        pages_queued,
        last_run,
        recheck_lag_secs,
        alert_after_secs: i64::from(cfg.recheck.alert_after_hours) * 3600,
    })
}

impl CatalogueView {
    /// The re-check has not completed a round for longer than the alert's limit: why.
    pub fn overdue(&self) -> Option<String> {
        let lag = self.recheck_lag_secs?;
        (lag > self.alert_after_secs).then(|| {
            format!(
                "the catalogue re-check has not completed a round for {} h (alert after {} h): \
                 see the catalogue-recheck worker in `soko status` and the log",
                lag / 3600,
                self.alert_after_secs / 3600
            )
        })
    }

    /// The `soko status` line.
    pub fn line(&self) -> String {
        let imports = if self.imports_running == 0 {
            "no import running".to_owned()
        } else {
            format!(
                "{} imports running, {} pages waiting",
                self.imports_running, self.pages_queued
            )
        };
        let recheck = match &self.last_run {
            None => "no re-check yet".to_owned(),
            Some(r) => format!(
                "re-check {} {} ({} checked, {} unchanged, {} updated, {} gone, {} back, {} errors, {} taken down)",
                r.state,
                r.finished_at.as_deref().unwrap_or(&r.started_at),
                r.checked,
                r.unchanged,
                r.updated,
                r.gone,
                r.restored,
                r.errors,
                r.taken_down
            ),
        };
        format!("{imports}; {recheck}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overdue_only_past_the_limit_and_with_something_imported() {
        let mut v = CatalogueView {
            alert_after_secs: 24 * 3600,
            ..CatalogueView::default()
        };
        assert_eq!(v.overdue(), None);
        v.recheck_lag_secs = Some(3600);
        assert_eq!(v.overdue(), None);
        v.recheck_lag_secs = Some(25 * 3600);
        assert!(v.overdue().unwrap().contains("25 h"));
        assert!(v.line().contains("no re-check yet"));
    }
}
