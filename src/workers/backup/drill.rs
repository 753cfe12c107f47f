//! The restore drill (`soko backup verify [SET]`, and by itself every
//! `backup.verify_every_days`): a set's signature and archives are checked as a restore would,
//! its database dump is loaded (sandboxed) into a scratch database beside the live one
//! (`<database>_drill_<random>`, dropped afterwards; the live one is never touched), and every
//! table's rows and row checksum (a dump of the scratch database, hashed as at backup time)
//! compared with what the manifest recorded. The result is kept in `backup_drills`: `soko
//! status` shows it, a failure is red and raises the `backup-drill-failed` alert.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};

use super::archive::{self, Expect, TableSum};
use super::restore::{self, manifests};
use super::seal::Opener;
use super::{Engine, Error, read_manifest};
use crate::config::backup::Kind;
use crate::store::backups;
use crate::store::drills::{self, Drill};

/// One table of the drill's comparison.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableCheck {
    pub table: String,
    pub expected_rows: Option<u64>,
    pub restored_rows: Option<u64>,
    /// The row checksums agree.
    pub checksum_ok: bool,
    pub ok: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DrillReport {
    pub set_id: String,
    pub ok: bool,
    pub tables: Vec<TableCheck>,
    /// Why it failed, when it did before comparing (a refused signature, an unreadable archive).
    pub error: Option<String>,
    pub scratch_database: String,
}

impl DrillReport {
    pub fn summary(&self) -> String {
        if let Some(e) = &self.error {
            return e.clone();
        }
        let bad: Vec<String> = self
            .tables
            .iter()
            .filter(|t| !t.ok)
            .map(|t| {
                format!(
                    "{} (rows {} in the manifest, {} restored{})",
                    t.table,
                    t.expected_rows.map(|r| r.to_string()).unwrap_or("-".into()),
                    t.restored_rows.map(|r| r.to_string()).unwrap_or("-".into()),
                    if t.checksum_ok {
                        ""
                    } else {
                        ", checksum differs"
                    }
                )
            })
            .collect();
        if bad.is_empty() {
            format!("{} tables match the manifest", self.tables.len())
        } else {
            format!(
                "{} of {} tables differ: {}",
                bad.len(),
                self.tables.len(),
                bad.join(", ")
            )
        }
    }
}

/// The newest set under `dir` that has a database archive.
pub fn newest_set(dir: &Path) -> Option<PathBuf> {
    manifests(dir)
        .into_iter()
        .rev()
        .find(|(p, m)| {
            m.archives
                .iter()
                .any(|e| e.kind == Kind::Database && p.join(&e.file).exists())
        })
        .map(|(p, _)| p)
}

/// Compare the manifest's sums with the restored ones.
pub fn compare(expected: &[TableSum], restored: &[TableSum]) -> Vec<TableCheck> {
    let mut names: Vec<&str> = expected
        .iter()
        .chain(restored)
        .map(|t| t.table.as_str())
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let e = expected.iter().find(|t| t.table == name);
            let r = restored.iter().find(|t| t.table == name);
            let checksum_ok = matches!((e, r), (Some(e), Some(r)) if e.sha256 == r.sha256);
            let (er, rr) = (e.map(|t| t.rows), r.map(|t| t.rows));
            TableCheck {
                table: name.into(),
                expected_rows: er,
                restored_rows: rr,
                checksum_ok,
                ok: checksum_ok && er == rr,
            }
        })
        .collect()
}

impl Engine {
    /// Run the drill on `set` (a set directory; the newest with a database dump when `None`)
    /// and record it. `Err` only when the result could not be recorded.
    pub async fn drill(
        &self,
        set: Option<&Path>,
        opener: &Opener,
        reason: &str,
    ) -> Result<DrillReport, Error> {
        let started = crate::clock::now_unix() as i64;
        let Some(lock) = backups::Lock::try_drill(&self.db).await? else {
            return Err(Error::Refused(
                "another restore drill is running (soko backup verify, or the weekly one): \
                 try again when it has finished"
                    .into(),
            ));
        };
        self.sweep_scratch().await;
        let report = match set.map(Path::to_owned).or_else(|| newest_set(&self.dir)) {
            None => DrillReport {
                ok: false,
                error: Some(format!(
                    "no backup set with a database dump in {}",
                    self.dir.display()
                )),
                ..Default::default()
            },
            Some(set) => self.drill_set(&set, opener).await,
        };
        lock.release().await;
        let d = Drill {
            set_id: report.set_id.clone(),
            reason: reason.into(),
            ok: report.ok,
            tables: report.tables.len() as u32,
            mismatched: report.tables.iter().filter(|t| !t.ok).count() as u32,
            detail: report.summary(),
            started_at: started,
            finished_at: crate::clock::now_unix() as i64,
        };
        drills::record(&self.db, &d).await?;
        if report.ok {
            tracing::info!(set = %report.set_id, "restore drill passed: {}", d.detail);
        } else {
            tracing::error!(set = %report.set_id, "restore drill FAILED: {}", d.detail);
        }
        Ok(report)
    }

    /// Drop the scratch databases of drills that were interrupted (soko killed mid-drill):
    /// named `<database>_drill_<8 hex digits>`, never in use while this drill holds the lock.
    async fn sweep_scratch(&self) {
        let prefix = format!("{}_drill_", self.target.database);
        let like = prefix.replace('_', "\\_");
        let names = match self
            .target
            .query_lines(&self.dir, &format!("SHOW DATABASES LIKE '{like}%'"))
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("cannot list the drills' scratch databases: {e}");
                return;
            }
        };
        for name in names {
            if !is_scratch_name(&prefix, &name) {
                continue;
            }
            match self
                .target
                .run_sql(&self.dir, &format!("DROP DATABASE IF EXISTS `{name}`"))
                .await
            {
                Ok(()) => {
                    tracing::warn!(database = %name, "dropped an interrupted drill's scratch database")
                }
                Err(e) => {
                    tracing::error!(database = %name, "cannot drop an interrupted drill's scratch database: {e}")
                }
            }
        }
    }

    async fn drill_set(&self, set: &Path, opener: &Opener) -> DrillReport {
        let mut report = DrillReport {
            set_id: set
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            ..Default::default()
        };
        let fail = |mut r: DrillReport, e: Error| {
            r.error = Some(e.to_string());
            r.ok = false;
            r
        };
        let plan = match restore::plan(&set.join(super::file_name(Kind::Database))) {
            Ok(p) => p,
            Err(e) => return fail(report, e),
        };
        report.set_id = plan.manifest.set_id.clone();
        let expected = plan.manifest.tables.clone();
        if expected.is_empty() {
            return fail(
                report,
                Error::Refused(format!(
                    "set {}: its manifest records no table checksums (made by an older soko): \
                     nothing to compare with",
                    plan.manifest.set_id
                )),
            );
        }
        if let Err(e) = restore::verify(&plan, i64::MAX, opener).await {
            return fail(report, e);
        }
        let Some(part) = plan.part(Kind::Database) else {
            return fail(report, Error::Refused("no database archive".into()));
        };
        let mut scratch = self.target.clone();
        scratch.database = format!("{}_drill_{}", self.target.database, super::client::suffix());
        report.scratch_database = scratch.database.clone();
        let restored = async {
            self.target
                .run_sql(
                    &self.dir,
                    &format!("CREATE DATABASE `{}`", scratch.database),
                )
                .await?;
            restore::load_sql(&scratch, &self.dir, &part.path, opener).await?;
            let cnf = scratch.options_file(&self.dir)?;
            let mut dump = scratch.dump(cnf.path());
            let child = dump
                .arg(&scratch.database)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| Error::Io(format!("cannot run mariadb-dump: {e}")))?;
            archive::inspect(child, Expect::SqlDump, scratch.database.clone()).await
        }
        .await;
        let dropped = self
            .target
            .run_sql(
                &self.dir,
                &format!("DROP DATABASE IF EXISTS `{}`", scratch.database),
            )
            .await;
        if let Err(e) = dropped {
            tracing::error!(database = %scratch.database, "the drill's scratch database was not dropped: {e}");
        }
        let restored = match restored {
            Ok(c) => c.tables,
            Err(e) => return fail(report, e),
        };
        report.tables = compare(&expected, &restored);
        report.ok = report.tables.iter().all(|t| t.ok);
        report
    }
}

/// `name` is `<prefix><8 lowercase hex digits>`: a scratch database a drill made.
fn is_scratch_name(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 8 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The drill is due: on, and the last one (or none) older than its period.
pub fn drill_due(every_days: u32, last: Option<&Drill>, now: i64) -> bool {
    every_days > 0 && last.is_none_or(|d| now - d.started_at >= every_days as i64 * 86_400)
}

/// Read a set's manifest, for the CLI's table.
pub fn set_manifest(set: &Path) -> Result<super::Manifest, Error> {
    read_manifest(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_drills_own_scratch_names_are_swept() {
        let p = "soko_drill_";
        assert!(is_scratch_name(p, "soko_drill_0badc0de"));
        for other in [
            "soko",
            "soko_drill_",
            "soko_drill_0badc0dex",
            "soko_drill_0BADC0DE",
            "soko_drill_0badc0d",
            "soko2_drill_0badc0de",
            "soko_drill_0badc0de_",
        ] {
            assert!(!is_scratch_name(p, other), "{other}");
        }
    }

    fn t(table: &str, rows: u64, sha: &str) -> TableSum {
        TableSum {
            table: table.into(),
            rows,
            sha256: sha.into(),
        }
    }

    #[test]
    fn differences_are_named_per_table() {
        let e = [t("a", 1, "x"), t("b", 2, "y"), t("c", 0, "z")];
        let r = [t("a", 1, "x"), t("b", 2, "q"), t("d", 1, "w")];
        let c = compare(&e, &r);
        let bad: Vec<&str> = c
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.table.as_str())
            .collect();
        assert_eq!(bad, ["b", "c", "d"]);
        assert!(drill_due(7, None, 0));
        assert!(!drill_due(0, None, 0));
    }
}
