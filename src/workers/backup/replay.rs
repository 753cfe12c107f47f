//! Point-in-time recovery, the restoring side (`soko restore SET --until TIME`): after the
//! set's dump is loaded, the binlogs shipped after it are replayed from the dump's position up
//! to the instant asked (`mariadb-binlog --start-position --stop-datetime`, in UTC: its dates
//! are otherwise local time), or to the end of the shipped logs.
//!
//! The plan is checked before anything is changed: the set records a binlog position, the
//! files after it are there in order (their checksums and decompression are verified), and the
//! time is inside the window (refused with the window in the message otherwise).
//!
//! The replay runs through the `mariadb` client as the restore's user (root on the embedded
//! server), which `BINLOG` statements need, with the server's `slave_exec_mode` IDEMPOTENT for
//! its length: the dump leaves out the backup history and the vectors (which have archives of
//! their own), so a row change on them may find no row; every other table is as it was at the
//! dump's position, from the same snapshot. It is not written to the binary log again
//! (`--disable-log-bin`), and the server's GTID strict mode is off while it runs (the replayed
//! GTIDs are older than the server's own); both settings are put back afterwards.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::archive::{self, Expect};
use super::binlog::{self, DumpPosition, Scan, chain, rfc3339};
use super::restore::Plan;
use super::{Error, Target, make_private_dir, read_manifest};
use crate::config::backup::Kind;
use crate::store::backup_binlogs::Row;

/// How far to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// To this instant (Unix seconds): events stamped at or after it are not replayed (the
    /// binary log stamps events to the second).
    At(i64),
    /// To the end of the shipped logs.
    End,
}

impl Until {
    /// `--until`'s value: empty or `end` for the end, else RFC 3339.
    pub fn parse(s: &str) -> Result<Until, Error> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("end") {
            return Ok(Until::End);
        }
        binlog::parse_rfc3339(s).map(Until::At).ok_or_else(|| {
            Error::Refused(format!(
                "--until: not an RFC 3339 time such as 2026-12-04T10:15:00Z: {s:?}"
            ))
        })
    }
}

#[derive(Debug, Clone)]
pub struct ReplayPlan {
    pub set_id: String,
    pub start: DumpPosition,
    /// The shipped files to replay, in order.
    pub files: Vec<Row>,
    /// Where they are.
    pub dir: PathBuf,
    pub stop: Option<i64>,
    /// The set's restorable window.
    pub from: i64,
    pub until: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    pub files: Vec<String>,
    pub scan: Scan,
    /// Seconds the replay itself took (the `mariadb-binlog | mariadb` pipe).
    pub secs: f64,
}

/// What `--until` replays for `plan`, checked against the set's window; nothing is changed.
pub fn plan(plan: &Plan, until: Until) -> Result<ReplayPlan, Error> {
    let Some(db) = plan.part(Kind::Database) else {
        return Err(Error::Refused(
            "--until needs a database archive in the set (a point in time is replayed on top of \
             a dump)"
                .into(),
        ));
    };
    let set_dir = db.path.parent().unwrap_or(Path::new("/"));
    let manifest = read_manifest(set_dir)?;
    let Some(start) = manifest.binlog.clone() else {
        return Err(Error::Refused(format!(
            "set {} records no binlog position (its server wrote no binary log, or an older soko \
             made it): it restores only as it is, without --until",
            manifest.set_id
        )));
    };
    let dir = set_dir.parent().unwrap_or(Path::new("/")).join(binlog::DIR);
    let rows = binlog::sidecars(&dir);
    let files: Vec<Row> = chain(&start, &rows).into_iter().cloned().collect();
    let from = manifest.created_at;
    let end = files
        .last()
        .and_then(|r| r.last_event_at)
        .unwrap_or(from)
        .max(from);
    let stop = match until {
        Until::End => None,
        Until::At(t) if t < from || t > end => {
            let hint = if files.is_empty() {
                format!(
                    " (no binlog shipped after this set's dump in {}: `soko backup binlogs` ships them)",
                    dir.display()
                )
            } else {
                String::new()
            };
            return Err(Error::Refused(format!(
                "--until {} is outside the restorable window of set {}: from {} to {}{hint}",
                rfc3339(t),
                manifest.set_id,
                rfc3339(from),
                rfc3339(end)
            )));
        }
        Until::At(t) => Some(t),
    };
    // Files that start after the instant hold nothing to replay.
    let files = files
        .into_iter()
        .enumerate()
        .filter(|(i, r)| *i == 0 || stop.is_none_or(|t| r.first_event_at.is_none_or(|f| f < t)))
        .map(|(_, r)| r)
        .collect();
    Ok(ReplayPlan {
        set_id: manifest.set_id,
        start,
        files,
        dir,
        stop,
        from,
        until: end,
    })
}

/// Check the checksum and decompression of every file to replay.
pub async fn verify(rp: &ReplayPlan, opener: &super::seal::Opener) -> Result<(), Error> {
    for r in &rp.files {
        archive::verify(
            &rp.dir.join(binlog::archive_name(r)),
            &r.sha256,
            Expect::Raw,
            opener,
        )
        .await?;
    }
    Ok(())
}

/// Replay on the database `target` reaches (its dump just loaded).
pub async fn replay(
    rp: &ReplayPlan,
    target: &Target,
    work: &Path,
    opener: &super::seal::Opener,
) -> Result<ReplayReport, Error> {
    let mut report = ReplayReport::default();
    if rp.files.is_empty() {
        return Ok(report);
    }
    let tmp = work.join(format!(".replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    make_private_dir(&tmp)?;
    let result = async {
        let mut raws = Vec::new();
        for r in &rp.files {
            let raw = tmp.join(&r.file_name);
            // Decrypted and decompressed into a private file.
            let (mut zstd, feeder) =
                archive::unpack(&rp.dir.join(binlog::archive_name(r)), opener)?;
            let mut from = zstd.stdout.take().expect("piped");
            let mut to = tokio::fs::File::create(&raw)
                .await
                .map_err(|e| Error::Io(format!("{}: {e}", raw.display())))?;
            let copied = tokio::io::copy(&mut from, &mut to).await;
            let status = zstd
                .wait()
                .await
                .map_err(|e| Error::Io(format!("zstd: {e}")))?;
            archive::joined(feeder)?;
            if copied.is_err() || !status.success() {
                return Err(Error::Corrupt(format!("{}: does not decompress", r.path)));
            }
            raws.push(raw);
            report.files.push(r.file_name.clone());
        }
        report.scan = binlog::scan(&raws, Some(rp.start.pos), rp.stop).await?;
        let started = std::time::Instant::now();
        apply(target, work, &raws, rp.start.pos, rp.stop).await?;
        report.secs = started.elapsed().as_secs_f64();
        Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&tmp);
    result.map(|()| report)
}

async fn apply(
    target: &Target,
    work: &Path,
    raws: &[PathBuf],
    start: u64,
    stop: Option<i64>,
) -> Result<(), Error> {
    let before = binlog::admin_sql(
        target,
        work,
        "SELECT @@GLOBAL.slave_exec_mode, @@GLOBAL.gtid_strict_mode",
    )
    .await?;
    let mut before = before.trim().split('\t');
    let (mode, strict) = (
        before.next().unwrap_or("STRICT").to_owned(),
        before.next().unwrap_or("1").to_owned(),
    );
    binlog::admin_sql(
        target,
        work,
        "SET GLOBAL slave_exec_mode = 'IDEMPOTENT'; SET GLOBAL gtid_strict_mode = 0",
    )
    .await?;
    let result = pipe(target, work, raws, start, stop).await;
    let restore = format!(
        "SET GLOBAL slave_exec_mode = '{}'; SET GLOBAL gtid_strict_mode = {}",
        if mode.eq_ignore_ascii_case("IDEMPOTENT") {
            "IDEMPOTENT"
        } else {
            "STRICT"
        },
        if strict == "0" { 0 } else { 1 }
    );
    let put_back = binlog::admin_sql(target, work, &restore).await;
    result?;
    put_back.map(|_| ())
}

/// `mariadb-binlog --disable-log-bin ... | mariadb`.
async fn pipe(
    target: &Target,
    work: &Path,
    raws: &[PathBuf],
    start: u64,
    stop: Option<i64>,
) -> Result<(), Error> {
    let cnf = target.options_file(work)?;
    let mut decoder = binlog::decoder(raws, Some(start), stop);
    let mut decoder = decoder
        .arg("--disable-log-bin")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Io(format!("cannot run mariadb-binlog: {e}")))?;
    let input: Stdio = decoder
        .stdout
        .take()
        .expect("piped")
        .try_into()
        .map_err(|e| Error::Io(format!("pipe: {e}")))?;
    let out = target
        .client(cnf.path())
        .stdin(input)
        .output()
        .await
        .map_err(|e| Error::Io(format!("cannot run mariadb: {e}")))?;
    let decoded = decoder
        .wait_with_output()
        .await
        .map_err(|e| Error::Io(format!("mariadb-binlog: {e}")))?;
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "replaying the binlogs failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if !decoded.status.success() {
        return Err(Error::Tool(format!(
            "mariadb-binlog failed ({}): {}",
            decoded.status,
            String::from_utf8_lossy(&decoded.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_values() {
        assert_eq!(Until::parse("").unwrap(), Until::End);
        assert_eq!(Until::parse("end").unwrap(), Until::End);
        assert!(matches!(
            Until::parse("2026-12-04T10:15:00Z").unwrap(),
            Until::At(_)
        ));
        let e = Until::parse("10:15").unwrap_err().to_string();
        assert!(e.contains("--until") && e.contains("RFC 3339"), "{e}");
    }
}
