//! Point-in-time recovery, the shipping side: every database dump records where it stands in
//! the server's binary log (`mariadb-dump --master-data=2`, kept in the set's manifest), and
//! every `backup.binlog_every_secs` (or `soko backup binlogs`) the log is rotated
//! (`FLUSH BINARY LOGS`) and each closed file not yet shipped is read through the server
//! (`mariadb-binlog --read-from-remote-server --raw`: the datadir's files may belong to the
//! container's user), compressed and checksummed by the same archive writer as the dumps, copied
//! to S3 when configured, and recorded in `backup_binlogs` (with a `.json` beside the file, from
//! which a restore rebuilds the table). What is shipped is decided from that table, so a restart
//! neither repeats nor skips a file. Shipped files are pruned with their base dumps, and the
//! server's own copies are purged up to the oldest kept dump.
//!
//! Files live in `<backup.dir>/binlogs/<server_id>-soko-bin.NNNNNN.zst`: a restored or new
//! install has a new server id and starts its numbering again.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::archive::{self, Expect, Source};
use super::{Engine, Error, Target, make_private_dir, read_manifest};
use crate::config::backup::Kind;
use crate::store::backup_binlogs::{self, Row};
use crate::store::backups;

/// The directory under `backup.dir` that holds the shipped files.
pub const DIR: &str = "binlogs";

/// Where a dump's snapshot stands in the binary log of the server that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpPosition {
    pub server_id: u32,
    pub file: String,
    pub pos: u64,
    pub gtid: Option<String>,
}

/// The restorable window: from the oldest kept dump to the last event of the binlogs shipped
/// after the dumps (Unix seconds, UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Window {
    pub from: i64,
    pub until: i64,
    /// Kept dumps that record a binlog position.
    pub dumps: u32,
    /// Shipped files the window rests on.
    pub binlogs: u32,
    pub last_gtid: Option<String>,
}

/// What `soko backup binlogs` (or the schedule) did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ShipOutcome {
    pub ok: bool,
    pub shipped: Vec<Row>,
    /// Why nothing was shipped, when nothing was.
    pub note: Option<String>,
    pub errors: Vec<String>,
    /// The server's `@@gtid_binlog_pos` when it looked.
    pub gtid_binlog_pos: String,
    pub window: Option<Window>,
}

/// Is the file name one the server writes (`soko-bin.000012`)? Guards the names that go into
/// admin statements and paths.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// The number after the last dot of a binlog file name.
pub fn sequence(name: &str) -> Option<u64> {
    name.rsplit_once('.')?.1.parse().ok()
}

/// The server id, when the server writes a binary log and the dump can record its position
/// (the embedded server: root has the RELOAD privilege `--master-data` needs).
pub async fn dump_server(db: &MySqlPool, target: &Target) -> Result<Option<u32>, Error> {
    if !target.embedded() {
        return Ok(None);
    }
    let (on, server_id) = backup_binlogs::server(db).await?;
    Ok(on.then_some(server_id))
}

/// The `-- CHANGE MASTER TO MASTER_LOG_FILE='..', MASTER_LOG_POS=..;` line of a
/// `--master-data=2` dump inside `archive`, and its GTID position.
pub async fn dump_position(
    db: &MySqlPool,
    archive: &Path,
    server_id: u32,
    opener: &super::seal::Opener,
) -> Result<DumpPosition, Error> {
    // Decrypted (the box's own identity opens its archives) and decompressed; only the head is
    // read: the decrypting thread ends on the closed pipe.
    let (mut zstd, _feeder) = archive::unpack(archive, opener)?;
    let mut lines = BufReader::new(zstd.stdout.take().expect("piped")).lines();
    let mut found = None;
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| Error::Io(format!("{}: {e}", archive.display())))?
    {
        if let Some(p) = parse_change_master(&line) {
            found = Some(p);
            break;
        }
        if line.starts_with("INSERT INTO") {
            break;
        }
    }
    drop(lines);
    let _ = zstd.kill().await;
    let Some((file, pos)) = found else {
        return Err(Error::Corrupt(format!(
            "{}: the dump records no binlog position (no CHANGE MASTER line)",
            archive.display()
        )));
    };
    let gtid = backup_binlogs::gtid_pos(db, &file, pos)
        .await?
        .filter(|g| !g.is_empty());
    Ok(DumpPosition {
        server_id,
        file,
        pos,
        gtid,
    })
}

fn parse_change_master(line: &str) -> Option<(String, u64)> {
    let rest = line.strip_prefix("-- CHANGE MASTER TO MASTER_LOG_FILE='")?;
    let (file, rest) = rest.split_once('\'')?;
    let pos = rest.strip_prefix(", MASTER_LOG_POS=")?;
    let pos: u64 = pos.trim_end_matches(';').trim().parse().ok()?;
    valid_name(file).then(|| (file.to_owned(), pos))
}

/// What a pass of `mariadb-binlog` over some files found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub first_event_at: Option<i64>,
    pub last_event_at: Option<i64>,
    pub first_gtid: Option<String>,
    pub last_gtid: Option<String>,
    /// GTID events: transactions (and DDL statements).
    pub transactions: u64,
    /// Row changes (inserts, updates, deletes).
    pub rows: u64,
}

/// Decode `files` (raw binlogs) with `mariadb-binlog --verbose` in UTC, from `start` in the
/// first file and before `stop` (Unix seconds), and count what is in them.
pub async fn scan(files: &[PathBuf], start: Option<u64>, stop: Option<i64>) -> Result<Scan, Error> {
    let mut cmd = decoder(files, start, stop);
    cmd.arg("--verbose")
        .arg("--base64-output=decode-rows")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Io(format!("cannot run mariadb-binlog: {e}")))?;
    let mut reader = BufReader::with_capacity(1 << 20, child.stdout.take().expect("piped"));
    let mut s = Scan::default();
    // Statements hold any bytes (the annotations of row events are the client's SQL).
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| Error::Io(format!("mariadb-binlog: {e}")))?;
        if n == 0 {
            break;
        }
        if line.starts_with(b"#") {
            scan_line(String::from_utf8_lossy(&line).trim_end(), &mut s);
        }
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::Io(format!("mariadb-binlog: {e}")))?;
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "mariadb-binlog failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(s)
}

/// `mariadb-binlog` decoding local files, in UTC (its dates are in the local time zone).
pub(super) fn decoder(
    files: &[PathBuf],
    start: Option<u64>,
    stop: Option<i64>,
) -> tokio::process::Command {
    let mut cmd = crate::background::child_command("mariadb-binlog");
    cmd.arg("--no-defaults").env("TZ", "UTC");
    if let Some(p) = start {
        cmd.arg(format!("--start-position={p}"));
    }
    if let Some(t) = stop {
        cmd.arg(format!("--stop-datetime={}", sql_datetime(t)));
    }
    cmd.args(files);
    cmd
}

fn scan_line(line: &str, s: &mut Scan) {
    if let Some(rest) = line.strip_prefix("### ") {
        if rest.starts_with("INSERT INTO")
            || rest.starts_with("UPDATE ")
            || rest.starts_with("DELETE FROM")
        {
            s.rows += 1;
        }
        return;
    }
    let Some(rest) = line.strip_prefix('#') else {
        return;
    };
    let Some((at, rest)) = event_time(rest) else {
        return;
    };
    if at > 0 {
        s.first_event_at.get_or_insert(at);
        s.last_event_at = Some(s.last_event_at.map_or(at, |l| l.max(at)));
    }
    if let Some((_, g)) = rest.split_once("\tGTID ") {
        let gtid = g.split_whitespace().next().unwrap_or_default().to_owned();
        if !gtid.is_empty() {
            s.first_gtid.get_or_insert_with(|| gtid.clone());
            s.last_gtid = Some(gtid);
            s.transactions += 1;
        }
    }
}

/// `261205  5:30:39 server id 7 ...` (YYMMDD H:MM:SS, UTC here): the time and the rest.
fn event_time(s: &str) -> Option<(i64, &str)> {
    let date = s.get(..6)?;
    if !date.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let rest = s[6..].trim_start();
    let (time, rest) = rest.split_once(' ')?;
    if !rest.starts_with("server id") {
        return None;
    }
    let mut hms = time.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    let y = 2000 + date[..2].parse::<i64>().ok()?;
    let mo = date[2..4].parse::<i64>().ok()?;
    let d = date[4..6].parse::<i64>().ok()?;
    Some((
        days_from_civil(y, mo, d) * 86_400 + h * 3600 + m * 60 + sec,
        rest,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of Unix seconds.
pub fn sql_datetime(t: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t) {
        Ok(t) => format!(
            "{}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => t.to_string(),
    }
}

/// RFC 3339 in UTC (`2026-12-04T10:15:00Z`) of Unix seconds.
pub fn rfc3339(t: i64) -> String {
    format!("{}Z", sql_datetime(t).replacen(' ', "T", 1))
}

/// RFC 3339 (`2026-12-04T10:15:00Z`, `2026-12-04T12:15:00+02:00`, fractions allowed and cut to
/// the second): Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let x = s.get(r)?;
        x.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| x.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let o = rest.get(1..)?;
            let (oh, om) = o.split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            let (oh, om): (i64, i64) = (oh.parse().ok()?, om.parse().ok()?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    // Reject 2026-02-31 and the like.
    if !civil_day_ok(y, mo, d) {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(days * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset)
}

fn civil_day_ok(y: i64, m: i64, d: i64) -> bool {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let max = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    d <= max
}

/// The shipped files a dump at `pos` rests on: its own file, then the next ones in order,
/// up to the first gap.
pub fn chain<'a>(pos: &DumpPosition, rows: &'a [Row]) -> Vec<&'a Row> {
    let mut mine: Vec<&Row> = rows
        .iter()
        .filter(|r| r.server_id == pos.server_id && r.status == "ok")
        .filter(|r| sequence(&r.file_name).is_some())
        .collect();
    mine.sort_by_key(|r| sequence(&r.file_name));
    let Some(mut want) = sequence(&pos.file) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in mine {
        let n = sequence(&r.file_name).unwrap_or(0);
        if n < want {
            continue;
        }
        if n != want {
            break;
        }
        out.push(r);
        want += 1;
    }
    out
}

/// The window over the kept dumps (their time, their position) and the shipped files.
pub fn window(dumps: &[(i64, DumpPosition)], rows: &[Row]) -> Option<Window> {
    let from = dumps.iter().map(|d| d.0).min()?;
    let mut w = Window {
        from,
        until: from,
        dumps: dumps.len() as u32,
        ..Default::default()
    };
    for (at, pos) in dumps {
        let c = chain(pos, rows);
        let end = c
            .last()
            .and_then(|r| r.last_event_at)
            .unwrap_or(*at)
            .max(*at);
        if end >= w.until {
            w.until = end;
            w.binlogs = c.len() as u32;
            w.last_gtid = c.last().and_then(|r| r.last_gtid.clone());
        }
    }
    Some(w)
}

/// The shipped files recorded beside them (`<name>.json`) in `dir`.
pub fn sidecars(dir: &Path) -> Vec<Row> {
    let mut rows: Vec<Row> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .filter(|r: &Row| Path::new(&r.path).exists() || dir.join(archive_name(r)).exists())
        .collect();
    // The files may have been moved with the backup directory: their path is here.
    for r in &mut rows {
        r.path = dir.join(archive_name(r)).display().to_string();
        r.status = "ok".into();
    }
    rows.sort_by(|a, b| (a.server_id, &a.file_name).cmp(&(b.server_id, &b.file_name)));
    rows
}

pub fn archive_name(r: &Row) -> String {
    format!("{}-{}.zst", r.server_id, r.file_name)
}

fn sidecar_path(archive: &Path) -> PathBuf {
    archive.with_extension("json")
}

/// SQL through the `mariadb` client as the backup's user (root on the embedded server): the
/// statements here need privileges the application's user does not have. Tab-separated rows,
/// no header.
pub(super) async fn admin_sql(target: &Target, dir: &Path, sql: &str) -> Result<String, Error> {
    let cnf = target.options_file(dir)?;
    let out = target
        .client(cnf.path())
        .arg("--skip-column-names")
        .arg("-e")
        .arg(sql)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Io(format!("cannot run mariadb: {e}")))?;
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Engine {
    /// The kept (good) database dumps that record a binlog position: (time, position).
    pub async fn kept_dumps(&self) -> Result<Vec<(i64, DumpPosition)>, Error> {
        kept_dumps(&self.db).await
    }

    /// The restorable window now (`None`: no kept dump records a binlog position).
    pub async fn window(&self) -> Result<Option<Window>, Error> {
        restorable_window(&self.db).await
    }

    /// Rotate the binary log and ship every closed file not shipped yet. With
    /// `unless_unchanged`, nothing is rotated when the server's GTID position is still that one
    /// (an idle shop does not make a file every few minutes).
    pub async fn ship_binlogs(&self, unless_unchanged: Option<&str>) -> Result<ShipOutcome, Error> {
        let Some(lock) = backups::Lock::try_acquire(&self.db).await? else {
            return Err(Error::Busy);
        };
        let result = self.ship_locked(unless_unchanged).await;
        lock.release().await;
        let mut outcome = result?;
        outcome.window = self.window().await.ok().flatten();
        for r in &outcome.shipped {
            tracing::info!(file = %r.file_name, bytes = r.bytes, "binlog shipped");
        }
        for e in &outcome.errors {
            tracing::error!("binlog shipping: {e}");
        }
        Ok(outcome)
    }

    async fn ship_locked(&self, unless_unchanged: Option<&str>) -> Result<ShipOutcome, Error> {
        let (on, server_id) = backup_binlogs::server(&self.db).await?;
        if !on {
            return Err(Error::Refused(
                "the database server writes no binary log: point-in-time recovery needs the \
                 embedded MariaDB (or log_bin on an external server)"
                    .into(),
            ));
        }
        let mut outcome = ShipOutcome {
            ok: true,
            ..Default::default()
        };
        make_private_dir(&self.dir)?;
        let gtid_now = admin_sql(&self.target, &self.dir, "SELECT @@GLOBAL.gtid_binlog_pos")
            .await?
            .trim()
            .to_owned();
        outcome.gtid_binlog_pos = gtid_now.clone();
        let mine: Vec<DumpPosition> = self
            .kept_dumps()
            .await?
            .into_iter()
            .map(|d| d.1)
            .filter(|p| p.server_id == server_id)
            .collect();
        let Some(start) = mine.iter().filter_map(|p| sequence(&p.file)).min() else {
            outcome.note = Some(
                "no kept database backup of this server records a binlog position yet: \
                 run `soko backup` first"
                    .into(),
            );
            return Ok(outcome);
        };
        if unless_unchanged == Some(gtid_now.as_str()) {
            outcome.note = Some("no new transactions since the last rotation".into());
            return Ok(outcome);
        }
        admin_sql(&self.target, &self.dir, "FLUSH BINARY LOGS").await?;
        let listing = admin_sql(&self.target, &self.dir, "SHOW BINARY LOGS").await?;
        let mut names: Vec<String> = listing
            .lines()
            .filter_map(|l| l.split('\t').next())
            .filter(|n| valid_name(n) && sequence(n).is_some())
            .map(str::to_owned)
            .collect();
        names.sort_by_key(|n| sequence(n));
        // The last one is the file being written.
        names.pop();
        let shipped = backup_binlogs::shipped_names(&self.db, server_id).await?;
        let todo: Vec<String> = names
            .into_iter()
            .filter(|n| sequence(n).is_some_and(|s| s >= start) && !shipped.contains(n))
            .collect();
        if todo.is_empty() {
            outcome.note = Some("every closed binlog file is shipped already".into());
            return Ok(outcome);
        }
        let dir = self.dir.join(DIR);
        make_private_dir(&dir)?;
        let fetch = dir.join(format!(".fetch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&fetch);
        make_private_dir(&fetch)?;
        for name in todo {
            match self.ship_one(&dir, &fetch, server_id, &name, &mine).await {
                Ok(row) => outcome.shipped.push(row),
                Err(e) => {
                    // In order or not at all: a later file without this one restores nothing.
                    outcome.ok = false;
                    outcome.errors.push(format!("{name}: {e}"));
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&fetch);
        // After the records of this run: they alone do not call for another rotation.
        if let Ok(g) = admin_sql(&self.target, &self.dir, "SELECT @@GLOBAL.gtid_binlog_pos").await {
            outcome.gtid_binlog_pos = g.trim().to_owned();
        }
        Ok(outcome)
    }

    async fn ship_one(
        &self,
        dir: &Path,
        fetch: &Path,
        server_id: u32,
        name: &str,
        dumps: &[DumpPosition],
    ) -> Result<Row, Error> {
        let cnf = self.target.binlog_options_file(&self.dir)?;
        let out = crate::background::child_command("mariadb-binlog")
            .arg(format!("--defaults-file={}", cnf.path().display()))
            .args(["--read-from-remote-server", "--raw"])
            .arg(format!("--result-file={}/", fetch.display()))
            .arg(name)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| Error::Io(format!("cannot run mariadb-binlog: {e}")))?;
        drop(cnf);
        let raw = fetch.join(name);
        if !out.status.success() || !raw.exists() {
            return Err(Error::Tool(format!(
                "mariadb-binlog --read-from-remote-server failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let s = scan(std::slice::from_ref(&raw), None, None).await?;
        let raw_sha = archive::sha256_file(&raw).await?;
        let dest = dir.join(format!("{server_id}-{name}.zst"));
        // Sealed like every archive; checked on its way (decompressed again and hashed).
        let (w, c) = archive::compress(
            &dest,
            self.cfg.compression_level,
            vec![Source::File(raw.clone())],
            &self.sealer,
            Expect::Raw,
        )
        .await?;
        if c.sha256 != raw_sha {
            let _ = std::fs::remove_file(&dest);
            return Err(Error::Corrupt(format!(
                "{}: does not hold the binlog file as the server sent it",
                dest.display()
            )));
        }
        let file_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let copied_to = match &self.s3 {
            Some(Ok(s3)) => {
                match s3
                    .put_file(&s3.key(DIR, &file_name), &dest, &w.sha256)
                    .await
                {
                    Ok(at) => Some(at),
                    Err(e) => {
                        // Not recorded: the next run ships it again.
                        let _ = std::fs::remove_file(&dest);
                        return Err(e.into());
                    }
                }
            }
            Some(Err(e)) => {
                let _ = std::fs::remove_file(&dest);
                return Err(Error::S3(e.clone()));
            }
            None => None,
        };
        let n = sequence(name).unwrap_or(0);
        let base = dumps
            .iter()
            .filter(|p| sequence(&p.file).is_some_and(|f| f <= n))
            .max_by_key(|p| sequence(&p.file));
        let base_set_id = match base {
            Some(p) => self.set_of(p).await?,
            None => None,
        };
        let row = Row {
            server_id,
            file_name: name.to_owned(),
            status: "ok".into(),
            base_set_id,
            path: dest.display().to_string(),
            bytes: w.bytes,
            sha256: w.sha256,
            first_event_at: s.first_event_at,
            last_event_at: s.last_event_at,
            first_gtid: s.first_gtid,
            last_gtid: s.last_gtid,
            transactions: s.transactions,
            copied_to,
            shipped_at: crate::clock::now_unix() as i64,
        };
        let body = serde_json::to_vec_pretty(&row).map_err(|e| Error::Io(e.to_string()))?;
        let side = sidecar_path(&dest);
        let tmp = side.with_extension("json.tmp");
        std::fs::write(&tmp, body)
            .and_then(|_| std::fs::rename(&tmp, &side))
            .map_err(|e| Error::Io(format!("{}: {e}", side.display())))?;
        backup_binlogs::record(&self.db, &row).await?;
        let _ = std::fs::remove_file(&raw);
        Ok(row)
    }

    /// The newest set whose dump is at `pos`.
    async fn set_of(&self, pos: &DumpPosition) -> Result<Option<String>, Error> {
        let rows = backups::good(&self.db, Kind::Database).await?;
        for r in rows {
            let Some(path) = &r.path else { continue };
            if let Some(set_dir) = Path::new(path).parent()
                && let Ok(m) = read_manifest(set_dir)
                && m.binlog.as_ref() == Some(pos)
            {
                return Ok(Some(m.set_id));
            }
        }
        Ok(None)
    }

    /// With the retention of the dumps: shipped files no kept dump rests on are deleted, and
    /// the server purges its files before the oldest kept dump of its own. The files deleted.
    pub async fn prune_binlogs(&self) -> Result<Vec<String>, Error> {
        let dumps: Vec<DumpPosition> = self.kept_dumps().await?.into_iter().map(|d| d.1).collect();
        let rows = backup_binlogs::all(&self.db).await?;
        let mut pruned = Vec::new();
        for r in rows.iter().filter(|r| r.status == "ok") {
            let n = sequence(&r.file_name).unwrap_or(0);
            let needed = dumps
                .iter()
                .any(|d| d.server_id == r.server_id && sequence(&d.file).is_some_and(|f| n >= f));
            if needed {
                continue;
            }
            let path = Path::new(&r.path);
            for p in [path.to_path_buf(), sidecar_path(path)] {
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::Io(format!("{}: {e}", p.display()))),
                }
            }
            // Its copy in S3 goes too (the sidecar is local only). A failed delete is said and
            // left for the bucket's own lifecycle rules: the local pruning stands.
            if let (Some(location), Some(Ok(client))) = (&r.copied_to, &self.s3)
                && let Some(key) = super::remote::key_of(client, location)
            {
                match client.delete(key).await {
                    Ok(()) => pruned.push(location.clone()),
                    Err(e) => tracing::warn!("pruning {location}: {e}"),
                }
            }
            backup_binlogs::mark_pruned(&self.db, r.server_id, &r.file_name).await?;
            pruned.push(r.path.clone());
        }
        let (on, server_id) = backup_binlogs::server(&self.db).await?;
        let oldest = dumps
            .iter()
            .filter(|d| d.server_id == server_id && valid_name(&d.file))
            .min_by_key(|d| sequence(&d.file));
        if on && let Some(oldest) = oldest {
            let listing = admin_sql(&self.target, &self.dir, "SHOW BINARY LOGS").await?;
            let known = listing
                .lines()
                .any(|l| l.split('\t').next() == Some(oldest.file.as_str()));
            if known {
                // A file a replica still reads is kept by the server (and said in the log).
                let sql = format!("PURGE BINARY LOGS TO '{}'", oldest.file);
                if let Err(e) = admin_sql(&self.target, &self.dir, &sql).await {
                    tracing::warn!("purging the server's binlogs: {e}");
                }
            }
        }
        Ok(pruned)
    }
}

/// The kept (good) database dumps that record a binlog position, (time, position): their
/// manifests, read from the paths in `backups`.
pub async fn kept_dumps(db: &MySqlPool) -> Result<Vec<(i64, DumpPosition)>, Error> {
    let rows = backups::good(db, Kind::Database).await?;
    let mut out = Vec::new();
    for r in rows {
        let Some(path) = &r.path else { continue };
        if let Some(set_dir) = Path::new(path).parent()
            && let Ok(m) = read_manifest(set_dir)
            && let Some(pos) = m.binlog
        {
            out.push((m.created_at, pos));
        }
    }
    Ok(out)
}

/// The window from the database alone (`soko backup list`, the status view).
pub async fn restorable_window(db: &MySqlPool) -> Result<Option<Window>, Error> {
    let dumps = kept_dumps(db).await?;
    let binlogs = backup_binlogs::all(db).await?;
    Ok(window(&dumps, &binlogs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_master_line() {
        assert_eq!(
            parse_change_master(
                "-- CHANGE MASTER TO MASTER_LOG_FILE='soko-bin.000001', MASTER_LOG_POS=1273;"
            ),
            Some(("soko-bin.000001".into(), 1273))
        );
        assert_eq!(
            parse_change_master("-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;"),
            None
        );
        assert_eq!(
            parse_change_master(
                "-- CHANGE MASTER TO MASTER_LOG_FILE='../x;DROP', MASTER_LOG_POS=1;"
            ),
            None
        );
    }

    #[test]
    fn event_lines() {
        let mut s = Scan::default();
        scan_line(
            "#261205  5:30:32 server id 7  end_log_pos 256 CRC32 0x88dd108c \tStart: binlog v 4",
            &mut s,
        );
        scan_line(
            "#261205  5:30:39 server id 7  end_log_pos 1315 CRC32 0x03c4be2f \tGTID 0-7-6 trans",
            &mut s,
        );
        scan_line("### UPDATE `soko`.`backups`", &mut s);
        scan_line(
            "#261205 15:30:40 server id 7  end_log_pos 1400 CRC32 0x03c4be2f \tGTID 0-7-7 trans",
            &mut s,
        );
        scan_line("#Q> insert into t values (1)", &mut s);
        let base = days_from_civil(2026, 12, 5) * 86_400;
        assert_eq!(s.first_event_at, Some(base + 5 * 3600 + 30 * 60 + 32));
        assert_eq!(s.last_event_at, Some(base + 15 * 3600 + 30 * 60 + 40));
        assert_eq!(s.first_gtid.as_deref(), Some("0-7-6"));
        assert_eq!(s.last_gtid.as_deref(), Some("0-7-7"));
        assert_eq!((s.transactions, s.rows), (2, 1));
    }

    #[test]
    fn rfc3339() {
        let t = parse_rfc3339("2026-12-04T10:15:00Z").unwrap();
        assert_eq!(
            t,
            days_from_civil(2026, 12, 4) * 86_400 + 10 * 3600 + 15 * 60
        );
        assert_eq!(parse_rfc3339("2026-12-04T12:15:00+02:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-12-04T10:15:00.750Z"), Some(t));
        assert_eq!(sql_datetime(t), "2026-12-04 10:15:00");
        for bad in [
            "2026-12-04",
            "2026-12-04 10:15",
            "2026-02-30T10:15:00Z",
            "2026-12-04T25:15:00Z",
            "2026-12-04T10:15:00",
            "2026-12-04T10:15:00+2",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    fn row(server_id: u32, n: u64, last: i64) -> Row {
        Row {
            server_id,
            file_name: format!("soko-bin.{n:06}"),
            status: "ok".into(),
            base_set_id: None,
            path: String::new(),
            bytes: 1,
            sha256: String::new(),
            first_event_at: Some(last - 10),
            last_event_at: Some(last),
            first_gtid: None,
            last_gtid: Some(format!("0-{server_id}-{n}")),
            transactions: 1,
            copied_to: None,
            shipped_at: last,
        }
    }

    #[test]
    fn chain_and_window() {
        let pos = DumpPosition {
            server_id: 9,
            file: "soko-bin.000002".into(),
            pos: 300,
            gtid: None,
        };
        let rows = vec![
            row(9, 1, 100),
            row(9, 2, 200),
            row(9, 3, 300),
            row(9, 5, 500),
            row(4, 4, 900),
        ];
        let c: Vec<&str> = chain(&pos, &rows)
            .iter()
            .map(|r| r.file_name.as_str())
            .collect();
        assert_eq!(
            c,
            ["soko-bin.000002", "soko-bin.000003"],
            "stops at the gap"
        );
        let w = window(&[(150, pos.clone())], &rows).unwrap();
        assert_eq!((w.from, w.until, w.binlogs), (150, 300, 2));
        assert_eq!(w.last_gtid.as_deref(), Some("0-9-3"));
        // Nothing shipped after the dump: the window is the dump's instant.
        let w = window(&[(150, pos)], &[]).unwrap();
        assert_eq!((w.from, w.until), (150, 150));
        assert!(window(&[], &rows).is_none());
    }
}
