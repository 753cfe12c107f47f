//! The `backup:` section: where backups go, when they run, how long they are kept, and an
//! optional copy to S3-compatible storage. The S3 keys live in the secrets file
//! (`s3_access_key_id`, `s3_secret_access_key`) or `SOKO_S3_*` variables, never here.
//!
//! Also the schedule arithmetic (pure, no I/O): when a kind of backup was last due and when it
//! is due next. The worker (`workers::backup`) and the status view (`ops::backup_view`) share it.

use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Config, Error};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backup {
    /// Run backups on the schedule below (`soko backup` works either way).
    pub scheduled: bool,
    /// Where archives are written; empty: `<data_dir>/backups`. Best on another disk.
    pub dir: PathBuf,
    pub schedule: Schedule,
    pub retention: Retention,
    /// zstd level, 1 (fast) to 19 (small).
    pub compression_level: u8,
    /// Refuse to start unless the free space is at least this percentage of the estimated
    /// size of the archives, plus `min_free_mb`.
    pub disk_margin_percent: u32,
    pub min_free_mb: u64,
    /// Copy every archive to S3-compatible storage (AWS S3, MinIO, Garage, R2, B2 ...).
    pub s3: Option<S3>,
    /// `soko up` and `soko migrate` take a full backup set before applying pending
    /// migrations, and wait for it (a failed backup holds the migrations back).
    pub before_migrations: bool,
    /// The age recipient (`age1...`, from `soko backup keygen`) every archive is encrypted
    /// to. Empty: archives are written unencrypted and the secrets are not copied to S3.
    pub encrypt_to: String,
    /// The restore drill (`soko backup verify`) runs by itself every this many days; 0: never.
    pub verify_every_days: u32,
    /// Point-in-time recovery: ship the closed binary log files this often (seconds), when
    /// the server writes one and `scheduled` is on (`soko backup binlogs` ships at any time).
    pub binlog_every_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Schedule {
    /// The database, daily at this time (UTC, HH:MM).
    pub database_at: String,
    /// Uploaded images, daily at this time (UTC, HH:MM).
    pub images_at: String,
    /// The product vectors (`product_embeddings`), weekly on this day at `vectors_at` (UTC).
    pub vectors_day: Weekday,
    pub vectors_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Keep at least the newest `keep` good archives of each kind ...
    pub keep: u32,
    /// ... and delete those beyond them once older than `max_days`. The newest good archive
    /// of a kind is never deleted.
    pub max_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3 {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000` ...
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Key prefix inside the bucket, e.g. `soko/`.
    pub prefix: String,
    /// `endpoint/bucket/key` (MinIO, most self-hosted servers) instead of `bucket.endpoint/key`.
    pub path_style: bool,
    /// Seconds to open a connection (TCP and TLS) to the endpoint.
    pub connect_timeout_secs: u64,
    /// Seconds a request may go without progress: no upload byte taken by the server, no
    /// answer, no answer byte. A stuck server fails the copy instead of holding it for ever.
    pub read_timeout_secs: u64,
    /// Archives larger than this many MiB go up as a multipart upload in parts of this size
    /// (a single PUT stops at 5 GiB); 5 (S3's smallest part) to 5120.
    pub multipart_mb: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// The kinds of archive a backup set holds (`market::states::BackupKind`).
pub use crate::market::states::BackupKind as Kind;

impl Default for Backup {
    fn default() -> Self {
        Backup {
            scheduled: true,
            dir: PathBuf::new(),
            schedule: Schedule::default(),
            retention: Retention::default(),
            compression_level: 6,
            disk_margin_percent: 150,
            min_free_mb: 256,
            s3: None,
            before_migrations: true,
            encrypt_to: String::new(),
            verify_every_days: 7,
            binlog_every_secs: 300,
        }
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            database_at: "02:30".into(),
            images_at: "03:00".into(),
            vectors_day: Weekday::Sunday,
            vectors_at: "03:30".into(),
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep: 7,
            max_days: 30,
        }
    }
}

impl Default for S3 {
    fn default() -> Self {
        S3 {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            prefix: "soko/".into(),
            path_style: true,
            connect_timeout_secs: 10,
            read_timeout_secs: 60,
            multipart_mb: 64,
        }
    }
}

const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;

/// `HH:MM` as minutes after midnight.
pub fn parse_hhmm(s: &str) -> Option<i64> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Backup {
    pub fn dir_for(&self, cfg: &Config) -> PathBuf {
        if self.dir.as_os_str().is_empty() {
            cfg.data_dir.join("backups")
        } else {
            self.dir.clone()
        }
    }

    /// The period of a scheduled kind (secrets go with every run).
    pub fn period(&self, kind: Kind) -> i64 {
        if kind == Kind::Vectors { WEEK } else { DAY }
    }

    /// The latest scheduled time of `kind` at or before `now` (Unix seconds).
    pub fn last_due(&self, kind: Kind, now: i64) -> i64 {
        let s = &self.schedule;
        let at = |t: &str| parse_hhmm(t).unwrap_or(0) * 60;
        match kind {
            Kind::Database | Kind::Secrets => {
                let t = now.div_euclid(DAY) * DAY + at(&s.database_at);
                if t > now { t - DAY } else { t }
            }
            Kind::Images => {
                let t = now.div_euclid(DAY) * DAY + at(&s.images_at);
                if t > now { t - DAY } else { t }
            }
            Kind::Vectors => {
                // 1970-01-01 was a Thursday: weeks counted from Monday 1969-12-29.
                let monday0 = -3 * DAY;
                let day = s.vectors_day as i64; // Monday = 0
                let week_start = (now - monday0).div_euclid(WEEK) * WEEK + monday0;
                let t = week_start + day * DAY + at(&s.vectors_at);
                if t > now { t - WEEK } else { t }
            }
        }
    }

    pub fn next_due(&self, kind: Kind, now: i64) -> i64 {
        self.last_due(kind, now) + self.period(kind)
    }
}

/// Checks for `validate` in `config/mod.rs`.
pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let b = &cfg.backup;
    for (key, value) in [
        ("backup.schedule.database_at", &b.schedule.database_at),
        ("backup.schedule.images_at", &b.schedule.images_at),
        ("backup.schedule.vectors_at", &b.schedule.vectors_at),
    ] {
        if parse_hhmm(value).is_none() {
            return Err(bad(
                key,
                format!("must be a UTC time of day as HH:MM such as 02:30, got {value:?}"),
            ));
        }
    }
    if !b.dir.as_os_str().is_empty() && !b.dir.is_absolute() {
        return Err(bad(
            "backup.dir",
            format!(
                "must be an absolute path, got {:?}",
                b.dir.display().to_string()
            ),
        ));
    }
    if !(1..=19).contains(&b.compression_level) {
        return Err(bad(
            "backup.compression_level",
            format!("must be from 1 to 19, got {}", b.compression_level),
        ));
    }
    if b.retention.keep == 0 {
        return Err(bad("backup.retention.keep", "must be at least 1".into()));
    }
    if b.retention.max_days == 0 {
        return Err(bad(
            "backup.retention.max_days",
            "must be at least 1".into(),
        ));
    }
    if !b.encrypt_to.trim().is_empty()
        && age::x25519::Recipient::from_str(b.encrypt_to.trim()).is_err()
    {
        return Err(bad(
            "backup.encrypt_to",
            format!(
                "must be an age X25519 recipient (age1..., made by `soko backup keygen`), got {:?}",
                b.encrypt_to
            ),
        ));
    }
    if b.verify_every_days > 365 {
        return Err(bad(
            "backup.verify_every_days",
            format!("must be 0 (off) to 365 days, got {}", b.verify_every_days),
        ));
    }
    if b.disk_margin_percent < 100 {
        return Err(bad(
            "backup.disk_margin_percent",
            format!("must be at least 100, got {}", b.disk_margin_percent),
        ));
    }
    if !(10..=86_400).contains(&b.binlog_every_secs) {
        return Err(bad(
            "backup.binlog_every_secs",
            format!(
                "must be from 10 to 86400 seconds, got {}",
                b.binlog_every_secs
            ),
        ));
    }
    if let Some(s3) = &b.s3 {
        check_place("backup.s3", &s3.endpoint, &s3.bucket, &s3.region, bad)?;
        for (key, v) in [
            ("backup.s3.connect_timeout_secs", s3.connect_timeout_secs),
            ("backup.s3.read_timeout_secs", s3.read_timeout_secs),
        ] {
            if !(1..=3600).contains(&v) {
                return Err(bad(key, format!("must be 1 to 3600 seconds, got {v}")));
            }
        }
        if !(5..=5120).contains(&s3.multipart_mb) {
            return Err(bad(
                "backup.s3.multipart_mb",
                format!(
                    "must be 5 (S3's smallest part) to 5120 MiB, got {}",
                    s3.multipart_mb
                ),
            ));
        }
    }
    Ok(())
}

/// Where an S3 section (`backup.s3`, `images.s3`) points: an http(s) endpoint without
/// credentials, a bucket name S3 accepts, a region. Errors name `<section>.<key>`.
pub(super) fn check_place(
    section: &str,
    endpoint: &str,
    bucket: &str,
    region: &str,
    bad: &impl Fn(&str, String) -> Error,
) -> Result<(), Error> {
    let scheme = endpoint.split_once("://").map(|(s, _)| s);
    if !matches!(scheme, Some("http" | "https")) || endpoint.contains('@') {
        return Err(bad(
            &format!("{section}.endpoint"),
            format!(
                "must be an http(s) URL without credentials such as https://s3.eu-west-1.amazonaws.com, got {endpoint:?}"
            ),
        ));
    }
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
    if !valid_bucket {
        return Err(bad(
            &format!("{section}.bucket"),
            format!("must be 3-63 lowercase letters, digits, dots or hyphens, got {bucket:?}"),
        ));
    }
    if region.is_empty() {
        return Err(bad(
            &format!("{section}.region"),
            "must not be empty (e.g. us-east-1)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-28 was a Saturday.
    const SAT_1000: i64 = 1_795_860_000; // 2026-11-28 10:00:00 UTC

    #[test]
    fn daily_and_weekly_due_times() {
        let b = Backup::default();
        assert_eq!(SAT_1000 % DAY, 10 * 3600);
        let db = b.last_due(Kind::Database, SAT_1000);
        assert_eq!(db, SAT_1000 - 10 * 3600 + 150 * 60, "today 02:30");
        assert_eq!(b.next_due(Kind::Database, SAT_1000), db + DAY);
        let early = SAT_1000 - 8 * 3600; // 02:00, before 02:30
        assert_eq!(b.last_due(Kind::Database, early), db - DAY);
        let vec = b.last_due(Kind::Vectors, SAT_1000);
        // Sunday 2026-11-22 03:30.
        assert_eq!(vec, SAT_1000 - 6 * DAY - 10 * 3600 + 210 * 60);
        assert_eq!(b.next_due(Kind::Vectors, SAT_1000), vec + WEEK);
        assert!(b.last_due(Kind::Vectors, vec) == vec);
    }

    #[test]
    fn hhmm() {
        assert_eq!(parse_hhmm("00:00"), Some(0));
        assert_eq!(parse_hhmm("23:59"), Some(1439));
        assert_eq!(parse_hhmm("24:00"), None);
        assert_eq!(parse_hhmm("2:30"), None);
    }
}

#[cfg(test)]
mod validation {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn bad_values_name_the_key_and_line() {
        let text = "backup:\n  schedule:\n    database_at: \"25:00\"\n";
        let err = Config::parse(text, Path::new("a.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("backup.schedule.database_at") && err.contains("HH:MM"),
            "{err}"
        );
        let text = "backup:\n  s3:\n    endpoint: ftp://x\n    bucket: b\n";
        let err = Config::parse(text, Path::new("a.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("backup.s3.endpoint"), "{err}");
        let text = "backup:\n  compression_level: 30\n";
        let err = Config::parse(text, Path::new("a.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("backup.compression_level") && err.contains(":2"),
            "{err}"
        );
        let ok = "backup:\n  s3:\n    endpoint: http://127.0.0.1:9000\n    bucket: shop-backups\n";
        let cfg = Config::parse(ok, Path::new("a.yaml")).unwrap();
        let s3 = cfg.backup.s3.unwrap();
        assert_eq!(s3.region, "us-east-1");
        assert_eq!((s3.connect_timeout_secs, s3.read_timeout_secs), (10, 60));
        let err = Config::parse(
            &format!("{ok}    read_timeout_secs: 0\n"),
            std::path::Path::new("appliance.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("backup.s3.read_timeout_secs"), "{err}");
        let err = Config::parse(
            &format!("{ok}    multipart_mb: 1\n"),
            std::path::Path::new("appliance.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("backup.s3.multipart_mb"), "{err}");
        let err = Config::parse(
            "backup:\n  encrypt_to: age1nope\n",
            std::path::Path::new("appliance.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("backup.encrypt_to") && err.contains(":2"),
            "{err}"
        );
        let err = Config::parse("backup:\n  binlog_every_secs: 0\n", Path::new("a.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("backup.binlog_every_secs"), "{err}");
        let cfg = Config::parse("backup: {}\n", Path::new("a.yaml")).unwrap();
        assert_eq!(cfg.backup.binlog_every_secs, 300);
    }
}
