//! Restore: a whole set (its directory) or one archive. Every archive is checked (checksum,
//! decompression, sanity parse) and the dump's schema version compared with this soko's before
//! anything is touched. Then: the database (all tables dropped, the dump loaded), the vectors
//! (`product_embeddings`; every public product queued for the vector index, which the outbox
//! worker rebuilds), migrations (an older dump is brought up to date), the backup history (from
//! the manifests on disk), and the images (unpacked beside the store, then swapped in).
//! The secrets are restored by the caller first, and only where there are none (see `cli`).

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sqlx::MySqlPool;

use crate::process_env;

use super::archive::{self, Expect};
pub use super::seal::Opener;
use super::{Error, MANIFEST, Manifest, Target, file_name, read_manifest};
use crate::config::backup::Kind;
use crate::market::states::BackupStatus;
use crate::store::{self, backups};

#[derive(Debug, Clone)]
pub struct Part {
    pub kind: Kind,
    pub path: PathBuf,
    pub sha256: String,
    /// The set it comes from (an older one when the chosen set lacks this kind).
    pub set_id: String,
    /// The schema version recorded with that set.
    pub schema_version: i64,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub manifest: Manifest,
    pub parts: Vec<Part>,
}

impl Plan {
    pub fn part(&self, kind: Kind) -> Option<&Part> {
        self.parts.iter().find(|p| p.kind == kind)
    }
}

/// What to restore from `path`: a set directory (or its manifest), or one archive in a set.
pub fn plan(path: &Path) -> Result<Plan, Error> {
    let path = std::fs::canonicalize(path)
        .map_err(|e| Error::Refused(format!("{}: {e}", path.display())))?;
    let (set_dir, only) = if path.is_dir() {
        (path.clone(), None)
    } else {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let kind = Kind::ALL.into_iter().find(|k| file_name(*k) == name);
        if name != MANIFEST && kind.is_none() {
            return Err(Error::Refused(format!(
                "{}: not a backup set directory, its manifest.json or one of its archives ({})",
                path.display(),
                Kind::ALL.map(file_name).join(", ")
            )));
        }
        (path.parent().unwrap_or(Path::new("/")).to_owned(), kind)
    };
    let manifest = read_manifest(&set_dir)?;
    let mut parts = Vec::new();
    for e in &manifest.archives {
        // The secrets of an unencrypted set are kept off S3: a set downloaded from there
        // lacks them, and a restore goes without (it writes the secrets only where there are
        // none anyway).
        if e.kind == Kind::Secrets && only.is_none() && !set_dir.join(&e.file).exists() {
            continue;
        }
        if only.is_none_or(|k| k == e.kind) {
            parts.push(Part {
                kind: e.kind,
                path: set_dir.join(&e.file),
                sha256: e.sha256.clone(),
                set_id: manifest.set_id.clone(),
                schema_version: manifest.schema_version,
            });
        }
    }
    if let Some(k) = only
        && parts.is_empty()
    {
        return Err(Error::Refused(format!(
            "{}: the manifest of set {} has no good {k} archive",
            path.display(),
            manifest.set_id
        )));
    }
    // A daily set lacks the weekly vectors (and the database and images run at their own
    // times): take what is missing from the newest older set that has it.
    if only.is_none()
        && let Some(parent) = set_dir.parent()
    {
        for kind in [Kind::Database, Kind::Vectors, Kind::Images] {
            if parts.iter().any(|p| p.kind == kind) {
                continue;
            }
            if let Some(p) = older_part(parent, &manifest.set_id, kind) {
                parts.push(p);
            }
        }
    }
    if parts.is_empty() {
        return Err(Error::Refused(format!(
            "set {} has no good archive to restore",
            manifest.set_id
        )));
    }
    Ok(Plan { manifest, parts })
}

/// The manifests of every set under `dir`, oldest first.
pub fn manifests(dir: &Path) -> Vec<(PathBuf, Manifest)> {
    let mut out: Vec<(PathBuf, Manifest)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            read_manifest(&p).ok().map(|m| (p, m))
        })
        .collect();
    out.sort_by(|a, b| a.1.set_id.cmp(&b.1.set_id));
    out
}

fn older_part(dir: &Path, set_id: &str, kind: Kind) -> Option<Part> {
    manifests(dir)
        .into_iter()
        .rev()
        .filter(|(_, m)| m.set_id.as_str() < set_id)
        .find_map(|(p, m)| {
            let e = m.archives.iter().find(|e| e.kind == kind)?;
            let path = p.join(&e.file);
            path.exists().then(|| Part {
                kind,
                path,
                sha256: e.sha256.clone(),
                set_id: m.set_id.clone(),
                schema_version: m.schema_version,
            })
        })
}

/// Check the signature of every manifest the plan draws on, every archive (checksum,
/// decryption, decompression, parse) and the schema version; nothing is changed. Warnings
/// (a set restored unverified on `--trust-unverified`) are returned.
pub async fn verify(plan: &Plan, known_schema: i64, opener: &Opener) -> Result<Vec<String>, Error> {
    let mut warnings = Vec::new();
    let mut sets: Vec<&Path> = plan.parts.iter().filter_map(|p| p.path.parent()).collect();
    sets.sort();
    sets.dedup();
    for dir in sets {
        warnings.extend(opener.check_manifest(dir)?);
    }
    if let Some(db) = plan.part(Kind::Database)
        && db.schema_version > known_schema
    {
        return Err(Error::Refused(format!(
            "the dump of set {} is at schema version {}, newer than this soko knows ({}): \
             restore it with a newer soko (this set was made by soko {})",
            db.set_id, db.schema_version, known_schema, plan.manifest.soko_version
        )));
    }
    for p in &plan.parts {
        let expect = match p.kind {
            Kind::Database | Kind::Vectors => Expect::SqlDump,
            Kind::Images => Expect::Tar,
            Kind::Secrets => Expect::Raw,
        };
        archive::verify(&p.path, &p.sha256, expect, opener).await?;
    }
    Ok(warnings)
}

/// Restore the secrets file to `dest` when there is none there. True when it was written.
pub async fn secrets(plan: &Plan, dest: &Path, opener: &Opener) -> Result<bool, Error> {
    let Some(p) = plan.part(Kind::Secrets) else {
        return Ok(false);
    };
    if dest.exists() {
        return Ok(false);
    }
    if let Some(dir) = dest.parent() {
        super::make_private_dir(dir)?;
    }
    let tmp = dest.with_extension("restoring");
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::Io(format!("{}: {e}", tmp.display())))?;
    let (mut zstd, feeder) = archive::unpack(&p.path, opener)?;
    let mut from = zstd.stdout.take().expect("piped");
    let mut to = tokio::fs::File::from_std(out);
    let copied = tokio::io::copy(&mut from, &mut to).await;
    let status = zstd
        .wait()
        .await
        .map_err(|e| Error::Io(format!("cannot run zstd: {e}")))?;
    archive::joined(feeder)?;
    if copied.is_err() || !status.success() {
        return Err(Error::Corrupt(format!(
            "{}: does not decompress",
            p.path.display()
        )));
    }
    std::fs::rename(&tmp, dest).map_err(|e| Error::Io(format!("{}: {e}", dest.display())))?;
    Ok(true)
}

#[derive(Debug, Default)]
pub struct Report {
    pub restored: Vec<String>,
    pub requeued: u64,
    pub dangling_vectors: u64,
    pub schema_version: i64,
    pub image_files: u64,
    /// `--until`: the binlogs replayed after the dump.
    pub replayed: Option<super::replay::ReplayReport>,
}

/// Restore the database, vectors and images of a verified plan.
pub async fn restore(
    plan: &Plan,
    db: &MySqlPool,
    target: &Target,
    backup_dir: &Path,
    opener: &Opener,
) -> Result<Report, Error> {
    restore_until(plan, db, target, backup_dir, opener, None).await
}

/// The same, replaying the binlogs of a verified `replay` plan after the dump is loaded
/// (point-in-time recovery).
pub async fn restore_until(
    plan: &Plan,
    db: &MySqlPool,
    target: &Target,
    backup_dir: &Path,
    opener: &Opener,
    replay: Option<&super::replay::ReplayPlan>,
) -> Result<Report, Error> {
    let mut report = Report::default();
    let progress = crate::telemetry::progress;
    if let Some(p) = plan.part(Kind::Database) {
        progress(&format!("restore: database from set {}", p.set_id), 0, 0);
        backups::drop_all_tables(db).await?;
        load_sql(target, backup_dir, &p.path, opener).await?;
        report
            .restored
            .push(format!("database from set {}", p.set_id));
        if let Some(rp) = replay {
            progress("restore: replaying binary logs", 0, 0);
            report.replayed = Some(super::replay::replay(rp, target, backup_dir, opener).await?);
        }
    }
    if let Some(p) = plan.part(Kind::Vectors) {
        progress(&format!("restore: vectors from set {}", p.set_id), 0, 0);
        backups::clear_embeddings(db).await?;
        load_sql(target, backup_dir, &p.path, opener).await?;
        report
            .restored
            .push(format!("vectors from set {}", p.set_id));
    }
    if plan.part(Kind::Database).is_some() || plan.part(Kind::Vectors).is_some() {
        progress("restore: migrations and the vector sync queue", 0, 0);
        report.schema_version = store::migrate::run(db).await?.applied;
        report.dangling_vectors = backups::delete_dangling_embeddings(db).await?;
        report.requeued = backups::enqueue_public_products(db).await?;
    }
    if plan.part(Kind::Database).is_some() {
        // The dump leaves the history out: rebuild it from the sets on disk.
        let rows: Vec<backups::Row> = manifests(backup_dir)
            .into_iter()
            .flat_map(|(dir, m)| {
                m.archives
                    .iter()
                    .filter(|e| dir.join(&e.file).exists())
                    .map(|e| backups::Row {
                        id: 0,
                        set_id: m.set_id.clone(),
                        kind: e.kind,
                        status: BackupStatus::Ok,
                        reason: super::row_reason(&m.reason).to_owned(),
                        path: Some(dir.join(&e.file).display().to_string()),
                        bytes: Some(e.bytes),
                        sha256: Some(e.sha256.clone()),
                        schema_version: Some(m.schema_version),
                        started_at: m.created_at,
                        finished_at: Some(m.created_at),
                        error: None,
                        copied_to: e.copied_to.clone(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        // Replayed binlogs may hold rows of later runs: the manifests are the history.
        backups::clear_history(db).await?;
        backups::insert_history(db, &rows).await?;
        let binlogs = super::binlog::sidecars(&backup_dir.join(super::binlog::DIR));
        crate::store::backup_binlogs::replace_all(db, &binlogs).await?;
    }
    if let Some(p) = plan.part(Kind::Images) {
        progress(&format!("restore: images from set {}", p.set_id), 0, 0);
        report.image_files = images(&target.images_dir, &p.path, opener).await?;
        report
            .restored
            .push(format!("images from set {}", p.set_id));
    }
    Ok(report)
}

/// `zstd -dc archive | mariadb --sandbox database` (decrypted first when sealed). In sandbox
/// mode the client refuses its own commands that reach the file system or a shell (`\!`,
/// `source`, `tee`, `LOAD DATA LOCAL`...): a dump cannot run anything on this box.
pub async fn load_sql(
    target: &Target,
    dir: &Path,
    archive: &Path,
    opener: &Opener,
) -> Result<(), Error> {
    let cnf = target.options_file(dir)?;
    let (mut zstd, feeder) = archive::unpack(archive, opener)?;
    let input: Stdio = zstd
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
    let unpacked = zstd.wait().await.map_err(|e| Error::Io(e.to_string()))?;
    archive::joined(feeder)?;
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "loading {} failed: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if !unpacked.success() {
        return Err(Error::Corrupt(format!(
            "{}: does not decompress",
            archive.display()
        )));
    }
    Ok(())
}

/// Unpack into `<images>.restoring`, then swap it with the store. The number of files.
async fn images(images_dir: &Path, archive: &Path, opener: &Opener) -> Result<u64, Error> {
    let name = images_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "images".into());
    let tmp = images_dir.with_file_name(format!("{name}.restoring"));
    let old = images_dir.with_file_name(format!("{name}.before-restore"));
    let _ = std::fs::remove_dir_all(&tmp);
    super::make_private_dir(&tmp)?;
    let (mut zstd, feeder) = archive::unpack(archive, opener)?;
    let input: Stdio = zstd
        .stdout
        .take()
        .expect("piped")
        .try_into()
        .map_err(|e| Error::Io(format!("pipe: {e}")))?;
    let out = process_env::command("tar")
        .arg("-C")
        .arg(&tmp)
        .args(["-xf", "-"])
        .stdin(input)
        .output()
        .await
        .map_err(|e| Error::Io(format!("cannot run tar: {e}")))?;
    let _ = zstd.wait().await;
    archive::joined(feeder)?;
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "unpacking {} failed: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let files = super::files::count_files(&tmp);
    let _ = std::fs::remove_dir_all(&old);
    if images_dir.exists() {
        std::fs::rename(images_dir, &old)
            .map_err(|e| Error::Io(format!("{}: {e}", images_dir.display())))?;
    }
    std::fs::rename(&tmp, images_dir)
        .map_err(|e| Error::Io(format!("{}: {e}", images_dir.display())))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(files)
}
