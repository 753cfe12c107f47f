//! Backups: the database (`mariadb-dump --single-transaction`, without the vectors), the product
//! vectors (`product_embeddings`, weekly: Milvus is rebuilt from them), the uploaded images (a
//! tar of the content-addressed store) and the secrets file (an archive of its own). Each
//! archive is zstd-compressed, encrypted with age when `backup.encrypt_to` is set (`seal`),
//! SHA-256 checksummed, checked on its way and read back, recorded in the `backups` table,
//! optionally copied to S3, and pruned by the retention policy. The manifest is signed
//! (`manifest.sig`); `drill` restores a set into a scratch database and compares it.
//!
//! A run is one directory `<backup.dir>/<set_id>/` with the archives and a `manifest.json`.
//! Runs are one at a time (a named lock in MySQL). `schedule` decides from the `backups` table
//! what is due, so a restart neither repeats nor forgets a run.

pub mod archive;
pub mod binlog;
mod client;
pub mod drill;
mod files;
mod outcome;
pub mod remote;
pub mod replay;
pub mod restore;
pub use crate::objects::s3;
mod schedule;
pub mod seal;
pub use crate::objects::sigv4;
pub mod upgrade;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;

use crate::config::backup::{Backup, Kind};
use crate::config::{Config, secrets::Secrets};
use crate::store::{self, backups};
use archive::{Expect, Source};
pub use client::Target;
use files::{count_files, dir_bytes, remove_set_if_empty, write_manifest};
pub use files::{make_private_dir, read_manifest};
pub use outcome::{ArchiveReport, BackupFuture, BackupOutcome};
pub use schedule::{due, schedule};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Tool(String),
    #[error("corrupt archive: {0}")]
    Corrupt(String),
    #[error("copy to S3 failed: {0}")]
    S3(String),
    #[error("another backup is running")]
    Busy,
    #[error("{0}")]
    Refused(String),
}

impl From<crate::objects::Error> for Error {
    fn from(e: crate::objects::Error) -> Error {
        use crate::objects::Error as O;
        match e {
            O::Io(m) => Error::Io(m),
            O::Corrupt(m) => Error::Corrupt(m),
            O::S3(m) => Error::S3(m),
            O::Refused(m) => Error::Refused(m),
        }
    }
}

/// The archive file of each kind inside a set directory.
pub fn file_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Database => "database.sql.zst",
        Kind::Vectors => "vectors.sql.zst",
        Kind::Images => "images.tar.zst",
        Kind::Secrets => "secrets.yaml.zst",
    }
}

pub const MANIFEST: &str = "manifest.json";

/// The `backups.reason` column holds 16 characters: a longer reason (`pre-migration 12->13`)
/// is recorded there by its first word, and in full in the set's manifest.
pub(crate) fn row_reason(reason: &str) -> &str {
    if reason.len() <= 16 {
        reason
    } else {
        reason
            .split(' ')
            .next()
            .filter(|w| w.len() <= 16)
            .unwrap_or("other")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub set_id: String,
    pub created_at: i64,
    pub soko_version: String,
    /// The migration version of the dumped database.
    pub schema_version: i64,
    pub reason: String,
    pub archives: Vec<Entry>,
    pub secrets_included: bool,
    /// `product_embeddings` profiles in the vectors archive: (profile, dim, rows).
    #[serde(default)]
    pub vectors: Vec<(String, u32, i64)>,
    /// The database dump's tables as dumped: rows and a checksum of their rows, what the
    /// restore drill (`soko backup verify`) compares a scratch restore with.
    #[serde(default)]
    pub tables: Vec<archive::TableSum>,
    /// The archives are age-encrypted (`backup.encrypt_to`).
    #[serde(default)]
    pub encrypted: bool,
    /// Where the dump stands in the server's binary log: point-in-time recovery replays the
    /// shipped binlogs from here (`None`: the server writes no binary log).
    #[serde(default)]
    pub binlog: Option<binlog::DumpPosition>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub copied_to: Option<String>,
}

pub struct Engine {
    pub db: MySqlPool,
    pub cfg: Backup,
    pub dir: PathBuf,
    pub target: Target,
    s3: Option<Result<s3::Client, String>>,
    pub sealer: seal::Sealer,
    /// This box's keys: what the scheduled restore drill opens sets with.
    pub box_opener: seal::Opener,
}

impl Engine {
    pub fn new(db: MySqlPool, cfg: &Config, secrets: &Secrets) -> Result<Engine, Error> {
        Ok(Engine {
            db,
            dir: cfg.backup.dir_for(cfg),
            target: Target::from_config(cfg, secrets)?,
            s3: cfg
                .backup
                .s3
                .as_ref()
                .map(|s| s3::Client::new(s, secrets).map_err(|e| Error::from(e).to_string())),
            cfg: cfg.backup.clone(),
            sealer: seal::Sealer::new(&cfg.backup.encrypt_to, secrets)?,
            box_opener: seal::Opener::from_box(secrets)?,
        })
    }

    /// Run the given kinds now (the secrets go along with any run). `Err` only when the run
    /// could not start (another one is running, the database is down).
    pub async fn run(&self, kinds: &[Kind], reason: &str) -> Result<BackupOutcome, Error> {
        let Some(lock) = backups::Lock::try_acquire(&self.db).await? else {
            return Err(Error::Busy);
        };
        let result = self.run_locked(kinds, reason).await;
        lock.release().await;
        let outcome = result?;
        if outcome.ok {
            tracing::info!(set = %outcome.set_id, dir = %outcome.dir, "backup done");
        } else {
            for a in outcome.archives.iter().filter(|a| !a.ok) {
                tracing::error!(set = %outcome.set_id, kind = %a.kind, error = a.error.as_deref().unwrap_or(""), "backup failed");
            }
        }
        for w in &outcome.warnings {
            tracing::warn!(set = %outcome.set_id, "{w}");
        }
        Ok(outcome)
    }

    /// At start: runs left 'running' by a soko that died mid-run are marked failed (unless a
    /// run is in progress right now, elsewhere). The number marked.
    pub async fn recover(&self) -> Result<u64, Error> {
        let Some(lock) = backups::Lock::try_acquire(&self.db).await? else {
            return Ok(0);
        };
        let marked =
            backups::mark_interrupted(&self.db, crate::workers::lease::current().as_ref()).await;
        lock.release().await;
        Ok(marked?)
    }

    async fn run_locked(&self, kinds: &[Kind], reason: &str) -> Result<BackupOutcome, Error> {
        // The scheduled runs hold the `backups` lease: their records are fenced.
        let fence = crate::workers::lease::current();
        let interrupted = backups::mark_interrupted(&self.db, fence.as_ref()).await?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "backup runs left unfinished by an earlier soko were marked failed"
            );
        }
        let mut kinds: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| kinds.contains(k) || *k == Kind::Secrets)
            .collect();
        kinds.dedup();
        let schema_version = store::migrate::status(&self.db).await?.applied;
        make_private_dir(&self.dir)?;
        let now = crate::clock::now_unix() as i64;
        let mut set_id = sigv4::amz_date(now);
        let mut n = 1;
        while self.dir.join(&set_id).exists() {
            n += 1;
            set_id = format!("{}-{n}", sigv4::amz_date(now));
        }
        let set_dir = self.dir.join(&set_id);
        let mut outcome = BackupOutcome {
            set_id: set_id.clone(),
            dir: set_dir.display().to_string(),
            ok: true,
            ..Default::default()
        };
        let ids = {
            let mut ids = Vec::new();
            for k in &kinds {
                ids.push((
                    *k,
                    backups::begin(&self.db, &set_id, *k, row_reason(reason), fence.as_ref())
                        .await?,
                ));
            }
            ids
        };
        // Room for it all, or nothing starts.
        if let Err(e) = self.check_space(&kinds).await {
            let message = e.to_string();
            for (kind, id) in ids {
                let f = backups::Finish {
                    error: Some(&message),
                    ..Default::default()
                };
                backups::finish(&self.db, id, &f, fence.as_ref()).await?;
                outcome.archives.push(ArchiveReport {
                    kind: kind.as_str().into(),
                    error: Some(message.clone()),
                    ..Default::default()
                });
            }
            outcome.ok = false;
            return Ok(outcome);
        }
        make_private_dir(&set_dir)?;
        let mut manifest = Manifest {
            set_id: set_id.clone(),
            created_at: now,
            soko_version: env!("CARGO_PKG_VERSION").into(),
            schema_version,
            reason: reason.into(),
            archives: Vec::new(),
            secrets_included: false,
            vectors: Vec::new(),
            tables: Vec::new(),
            encrypted: self.sealer.encrypts(),
            binlog: None,
        };
        let total = ids.len() as u64;
        for (done, (kind, id)) in ids.into_iter().enumerate() {
            crate::telemetry::progress(
                &format!("backup {set_id}: {} archive", kind.as_str()),
                done as u64,
                total,
            );
            let path = set_dir.join(file_name(kind));
            let made = self.make(kind, &path, &mut manifest).await;
            let copied = match (&made, &self.s3) {
                // Whoever reads the bucket would own the shop.
                (Ok(_), Some(Ok(_))) if kind == Kind::Secrets && !self.sealer.encrypts() => {
                    outcome.warnings.push(
                        "the secrets archive was NOT copied to S3: backups are unencrypted \
                         (set backup.encrypt_to with `soko backup keygen`)"
                            .into(),
                    );
                    None
                }
                (Ok(w), Some(Ok(s3))) => Some(
                    s3.put_file(&s3.key(&set_id, file_name(kind)), &path, &w.sha256)
                        .await
                        .map_err(Error::from),
                ),
                (Ok(_), Some(Err(e))) => Some(Err(Error::S3(e.clone()))),
                _ => None,
            };
            let path_s = path.display().to_string();
            let (ok, error, copied_to) = match (&made, copied) {
                (Err(e), _) => (false, Some(e.to_string()), None),
                (Ok(_), Some(Err(e))) => (false, Some(e.to_string()), None),
                (Ok(_), Some(Ok(at))) => (true, None, Some(at)),
                (Ok(_), None) => (true, None, None),
            };
            let written = made.as_ref().ok();
            backups::finish(
                &self.db,
                id,
                &backups::Finish {
                    ok,
                    path: written.map(|_| path_s.as_str()),
                    bytes: written.map(|w| w.bytes),
                    sha256: written.map(|w| w.sha256.as_str()),
                    schema_version: Some(schema_version),
                    error: error.as_deref(),
                    copied_to: copied_to.as_deref(),
                },
                fence.as_ref(),
            )
            .await?;
            if let Some(w) = written {
                manifest.archives.push(Entry {
                    kind,
                    file: file_name(kind).into(),
                    bytes: w.bytes,
                    sha256: w.sha256.clone(),
                    copied_to: copied_to.clone(),
                });
                if kind == Kind::Secrets {
                    manifest.secrets_included = true;
                    outcome.secrets_included = true;
                }
            }
            outcome.ok &= ok;
            outcome.archives.push(ArchiveReport {
                kind: kind.as_str().into(),
                ok,
                path: written.map(|_| path_s.clone()),
                bytes: written.map(|w| w.bytes),
                sha256: written.map(|w| w.sha256.clone()),
                copied_to,
                error,
            });
        }
        if !outcome.secrets_included {
            outcome.warnings.push(format!(
                "THIS BACKUP SET HAS NO COPY OF THE SECRETS FILE ({}): keep one safely elsewhere, \
                 a restore without it cannot log users in",
                self.target.secrets_path.display()
            ));
        }
        crate::telemetry::progress(&format!("backup {set_id}: manifest"), total, total);
        write_manifest(&set_dir, &manifest)?;
        let signed = self.sealer.sign(&set_dir)?;
        if let Some(Ok(s3)) = &self.s3 {
            for name in std::iter::once(MANIFEST).chain(signed.as_ref().map(|_| seal::SIGNATURE)) {
                if let Err(e) = s3
                    .put_file(
                        &s3.key(&set_id, name),
                        &set_dir.join(name),
                        &archive::sha256_file(&set_dir.join(name)).await?,
                    )
                    .await
                {
                    outcome.ok = false;
                    outcome.warnings.push(format!("{name} not copied: {e}"));
                }
            }
        }
        match self.prune().await {
            Ok(pruned) if !pruned.is_empty() => {
                tracing::info!(?pruned, "old backups pruned by the retention policy")
            }
            Ok(_) => {}
            Err(e) => outcome
                .warnings
                .push(format!("pruning old backups failed: {e}")),
        }
        Ok(outcome)
    }

    /// Estimated size of the archives (uncompressed, a generous upper bound) against the free
    /// space of the backup directory's file system.
    async fn check_space(&self, kinds: &[Kind]) -> Result<(), Error> {
        let mut estimate = 0u64;
        for kind in kinds {
            estimate += match kind {
                Kind::Database => {
                    backups::table_bytes(&self.db, &[], &["product_embeddings", "backups"]).await?
                }
                Kind::Vectors => {
                    backups::table_bytes(&self.db, &["product_embeddings"], &[]).await?
                }
                Kind::Images => dir_bytes(&self.target.images_dir),
                Kind::Secrets => 64 * 1024,
            };
        }
        let need = estimate.saturating_mul(self.cfg.disk_margin_percent as u64) / 100
            + self.cfg.min_free_mb.saturating_mul(1 << 20);
        let stat = nix::sys::statvfs::statvfs(&self.dir)
            .map_err(|e| Error::Io(format!("{}: {e}", self.dir.display())))?;
        let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
        if free < need {
            return Err(Error::Refused(format!(
                "not enough disk space for a backup in {}: {} MiB free, {} MiB needed \
                 (estimated {} MiB x {}% + backup.min_free_mb {}); free some space or point \
                 backup.dir at a larger disk",
                self.dir.display(),
                free >> 20,
                need >> 20,
                estimate >> 20,
                self.cfg.disk_margin_percent,
                self.cfg.min_free_mb
            )));
        }
        Ok(())
    }

    async fn make(
        &self,
        kind: Kind,
        path: &Path,
        manifest: &mut Manifest,
    ) -> Result<archive::Written, Error> {
        let level = self.cfg.compression_level;
        let t = &self.target;
        match kind {
            Kind::Database => {
                let tables = backups::tables(&self.db).await?;
                let cnf = t.options_file(&self.dir)?;
                let separate: Vec<&str> = ["product_embeddings", "backups"]
                    .into_iter()
                    .filter(|x| tables.iter().any(|t| t == x))
                    .collect();
                let mut sources = Vec::new();
                if !separate.is_empty() {
                    // Their definitions only: the vectors go in their own archive, the
                    // history of backups is rebuilt from the manifests on restore.
                    let mut schema = t.dump(cnf.path());
                    schema.arg("--no-data").arg(&t.database).args(&separate);
                    sources.push(Source::Cmd(schema));
                }
                let mut full = t.dump(cnf.path());
                // The binlog coordinates of the dump's snapshot, for point-in-time recovery.
                let binlog = binlog::dump_server(&self.db, t).await?;
                if binlog.is_some() {
                    full.arg("--master-data=2");
                }
                for x in &separate {
                    full.arg(format!("--ignore-table={}.{x}", t.database));
                }
                full.arg(&t.database);
                sources.push(Source::Cmd(full));
                let (w, c) =
                    archive::compress(path, level, sources, &self.sealer, Expect::SqlDump).await?;
                manifest.tables = c.tables.clone();
                // Two dumps in one archive: the first one's completion line is mid-file.
                if c.create_tables != tables.len() as u64 {
                    return Err(Error::Corrupt(format!(
                        "{}: {} table definitions in the dump, {} tables in the database",
                        path.display(),
                        c.create_tables,
                        tables.len()
                    )));
                }
                if let Some(server_id) = binlog {
                    manifest.binlog = Some(
                        binlog::dump_position(&self.db, path, server_id, &self.box_opener).await?,
                    );
                }
                Ok(w)
            }
            Kind::Vectors => {
                manifest.vectors = backups::embedding_profiles(&self.db).await?;
                let cnf = t.options_file(&self.dir)?;
                let mut cmd = t.dump(cnf.path());
                cmd.args(["--no-create-info", "--skip-triggers"])
                    .arg(&t.database)
                    .arg("product_embeddings");
                let (w, c) = archive::compress(
                    path,
                    level,
                    vec![Source::Cmd(cmd)],
                    &self.sealer,
                    Expect::SqlDump,
                )
                .await?;
                let rows: i64 = manifest.vectors.iter().map(|v| v.2).sum();
                if rows > 0 && c.insert_lines == 0 {
                    return Err(Error::Corrupt(format!(
                        "{}: no rows in the dump, {rows} vectors in the database",
                        path.display()
                    )));
                }
                Ok(w)
            }
            Kind::Images => {
                std::fs::create_dir_all(&t.images_dir)
                    .map_err(|e| Error::Io(format!("{}: {e}", t.images_dir.display())))?;
                let files = count_files(&t.images_dir);
                let mut cmd = crate::process_env::command("tar");
                cmd.arg("-C").arg(&t.images_dir).args(["-cf", "-", "."]);
                let (w, c) = archive::compress(
                    path,
                    level,
                    vec![Source::Cmd(cmd)],
                    &self.sealer,
                    Expect::Tar,
                )
                .await?;
                if files > 0 && c.tar_files == 0 {
                    return Err(Error::Corrupt(format!(
                        "{}: the archive holds no files, the image store {files}",
                        path.display()
                    )));
                }
                Ok(w)
            }
            Kind::Secrets => {
                let original = std::fs::read(&t.secrets_path).map_err(|e| {
                    Error::Io(format!(
                        "NO SECRETS BACKED UP: cannot read {}: {e}",
                        t.secrets_path.display()
                    ))
                })?;
                let (w, c) = archive::compress(
                    path,
                    level,
                    vec![Source::File(t.secrets_path.clone())],
                    &self.sealer,
                    Expect::Raw,
                )
                .await?;
                if c.sha256 != sigv4::sha256_hex(&original) {
                    return Err(Error::Corrupt(format!(
                        "{}: does not hold the secrets file as it is",
                        path.display()
                    )));
                }
                Ok(w)
            }
        }
    }

    /// Retention: per kind, keep the newest `keep` good archives, and none older than
    /// `max_days`, but never the newest good one. Returns the files deleted.
    pub async fn prune(&self) -> Result<Vec<String>, Error> {
        let now = crate::clock::now_unix() as i64;
        let max_age = self.cfg.retention.max_days as i64 * 86_400;
        let mut pruned = Vec::new();
        for kind in Kind::ALL {
            let rows = backups::good(&self.db, kind).await?;
            for (i, row) in rows.iter().enumerate().skip(1) {
                if i < self.cfg.retention.keep as usize && now - row.started_at <= max_age {
                    continue;
                }
                if let Some(p) = &row.path {
                    let path = Path::new(p);
                    match std::fs::remove_file(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::Io(format!("{p}: {e}"))),
                    }
                    if let Some(dir) = path.parent() {
                        remove_set_if_empty(dir);
                    }
                    pruned.push(p.clone());
                }
                // Its copy in S3 goes with it (a failed delete is caught up by the S3 pass
                // below, once every archive of the set is pruned).
                if let (Some(at), Some(Ok(s3))) = (&row.copied_to, &self.s3)
                    && let Some(key) = remote::key_of(s3, at)
                {
                    match s3.delete(key).await {
                        Ok(()) => pruned.push(at.clone()),
                        Err(e) => tracing::warn!("pruning {at}: {e}"),
                    }
                }
                backups::mark_pruned(&self.db, row.id).await?;
            }
        }
        if let Some(Ok(s3)) = &self.s3 {
            let known = backups::set_ids(&self.db).await?;
            pruned.extend(remote::prune(s3, &self.cfg.retention, &known, now).await?);
        }
        // The binary logs go with their base dumps.
        pruned.extend(self.prune_binlogs().await?);
        Ok(pruned)
    }
}
