//! `soko restore <set-or-archive>`: requires soko to be stopped (it holds the appliance lock
//! while it works, so `soko up` cannot start meanwhile). Checks every archive and the schema
//! version first, then restores the secrets (only where there are none), the database, the
//! vectors and the images, and says how to start soko again.

use crate::config::Config;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};

use super::EXIT_CONFIG;
use super::migrate::{close_database, open_database};
use crate::config::secrets::Secrets;
use crate::ops::admin;
use crate::store;
use crate::workers::backup::{Target, binlog, remote, replay, restore, s3};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A backup set directory (`<backup.dir>/<set>`), its manifest.json, or one archive in it
    /// (restores only that part); or `s3://<bucket>/<prefix><set>` (the endpoint and keys from
    /// `backup.s3` and the secrets); with `--from s3`, the set's id (the newest when left out).
    source: Option<String>,
    /// `s3`: take the set from the bucket of `backup.s3` (works on a fresh box that has only
    /// appliance.yaml and the S3 keys).
    #[arg(long, value_enum)]
    from: Option<From>,
    /// Do not ask for confirmation (needed when not run from a terminal).
    #[arg(long)]
    yes: bool,
    /// The age identity file from `soko backup keygen`: decrypts the archives, and its
    /// verifying-key line checks the manifests' signatures. Without it, this box's own keys
    /// (its secrets file) are used.
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Also trust manifests signed by this key (64 hex characters, printed by `soko backup
    /// keygen`): for a set made unencrypted, restored on a new box.
    #[arg(long, value_name = "KEY")]
    verify_key: Vec<String>,
    /// Restore a set whose manifest is unsigned or signed by an unknown key (a set made before
    /// manifests were signed). Archives are still checked against the manifest.
    #[arg(long)]
    trust_unverified: bool,
    /// Point-in-time recovery: after the dump, replay the shipped binlogs up to this instant
    /// (RFC 3339, e.g. 2026-12-04T10:15:00Z); without a value, to the end of the shipped logs.
    #[arg(long, num_args = 0..=1, default_missing_value = "end", value_name = "TIME")]
    until: Option<String>,
}

/// What the restore opens sets with: the `--identity` file's identity (else this box's), the
/// keys it trusts (this box's, the identity file's, `--verify-key`).
pub fn opener(
    cfg: &Config,
    identity: Option<&std::path::Path>,
    verify_keys: &[String],
    trust_unverified: bool,
) -> anyhow::Result<restore::Opener> {
    let own = Secrets::read(&cfg.secrets_path())?.unwrap_or_default();
    let mut opener = restore::Opener::from_box(&own)?;
    if let Some(path) = identity {
        opener.use_identity_file(path)?;
    }
    for k in verify_keys {
        opener.trust_key(k)?;
    }
    opener.unverified_ok = trust_unverified;
    Ok(opener)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum From {
    Local,
    S3,
}

/// Where the set comes from.
#[derive(Debug)]
enum Source {
    Local(PathBuf),
    /// (bucket and prefix when the URL named them, the set id or the newest).
    S3 {
        bucket: Option<String>,
        prefix: Option<String>,
        set: Option<String>,
    },
}

fn source(args: &Args) -> Result<Source, String> {
    match (args.from, args.source.as_deref()) {
        (Some(From::S3), set) => Ok(Source::S3 {
            bucket: None,
            prefix: None,
            set: set.map(str::to_owned),
        }),
        (_, Some(url)) if url.starts_with("s3://") => {
            let rest = &url["s3://".len()..];
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "{url}: no bucket: write s3://<bucket>/<prefix><set>, e.g. s3://shop-backups/soko/20261204T023000Z"
                ));
            }
            let (prefix, set) = match key.rsplit_once('/') {
                Some((p, s)) => (format!("{p}/"), s),
                None => (String::new(), key),
            };
            Ok(Source::S3 {
                bucket: Some(bucket.to_owned()),
                prefix: Some(prefix),
                set: (!set.is_empty()).then(|| set.to_owned()),
            })
        }
        (_, Some(path)) => Ok(Source::Local(PathBuf::from(path))),
        (_, None) => Err(
            "name what to restore: a set directory, s3://<bucket>/<prefix><set>, or --from s3 [SET]"
                .into(),
        ),
    }
}

/// Download the set from S3 into a private directory under the backup dir (removed when
/// dropped, after the restore). The set's directory there.
async fn from_s3(
    cfg: &Config,
    bucket: Option<String>,
    prefix: Option<String>,
    set: Option<String>,
) -> anyhow::Result<(PathBuf, Scratch)> {
    let Some(mut s3cfg) = cfg.backup.s3.clone() else {
        anyhow::bail!(
            "backup.s3 is not set in the configuration: restoring from S3 needs at least \
             backup.s3.endpoint and backup.s3.bucket, and the keys in SOKO_S3_ACCESS_KEY_ID / \
             SOKO_S3_SECRET_ACCESS_KEY (or the secrets file)"
        );
    };
    if let Some(b) = bucket {
        s3cfg.bucket = b;
    }
    if let Some(p) = prefix {
        s3cfg.prefix = p;
    }
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let client = s3::Client::new(&s3cfg, &secrets)?;
    let backup_dir = cfg.backup.dir_for(cfg);
    crate::workers::backup::make_private_dir(&backup_dir)?;
    let root = backup_dir.join(format!(".from-s3-{}", std::process::id()));
    let scratch = Scratch(root.clone());
    println!(
        "downloading {} from {} ...",
        set.as_deref().unwrap_or("the newest set"),
        client.location(&s3cfg.prefix)
    );
    let dir = remote::download(&client, set.as_deref(), &root).await?;
    Ok((dir, scratch))
}

/// A directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn run(cfg: Config, args: Args) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_terminal("warn");
    if admin::fetch_status(&cfg.admin_socket(), Duration::from_secs(5))
        .await
        .is_ok()
    {
        eprintln!(
            "soko: soko is running: stop it first (`systemctl stop soko` or Ctrl-C on `soko up`), \
             restore, then start it again"
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    crate::workers::backup::make_private_dir(&cfg.run_dir())?;
    let lock_path = cfg.run_dir().join("soko.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    let Ok(_lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
        eprintln!(
            "soko: another soko holds {}: stop it first",
            lock_path.display()
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    };

    let (path, _scratch) = match source(&args) {
        Ok(Source::Local(p)) => (p, None),
        Ok(Source::S3 {
            bucket,
            prefix,
            set,
        }) => {
            let (dir, scratch) = from_s3(&cfg, bucket, prefix, set).await?;
            (dir, Some(scratch))
        }
        Err(e) => {
            eprintln!("soko: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let plan = restore::plan(&path)?;
    println!(
        "backup set {} (made by soko {}, schema version {}):",
        plan.manifest.set_id, plan.manifest.soko_version, plan.manifest.schema_version
    );
    for p in &plan.parts {
        println!("  {:<9} {}", p.kind, p.path.display());
    }
    if plan.part(crate::config::backup::Kind::Secrets).is_none() {
        eprintln!("WARNING: this backup has NO copy of the secrets file");
    }
    let opener = opener(
        &cfg,
        args.identity.as_deref(),
        &args.verify_key,
        args.trust_unverified,
    )?;
    let replay = match &args.until {
        Some(u) => {
            let until = replay::Until::parse(u)?;
            let rp = replay::plan(&plan, until)?;
            println!(
                "point in time: {} (window of set {}: {} to {}), {} binlog file(s) after the dump at {}:{}",
                rp.stop
                    .map(binlog::rfc3339)
                    .unwrap_or_else(|| "the end of the shipped binlogs".into()),
                rp.set_id,
                binlog::rfc3339(rp.from),
                binlog::rfc3339(rp.until),
                rp.files.len(),
                rp.start.file,
                rp.start.pos
            );
            Some(rp)
        }
        None => None,
    };
    print!("checking the signature and the archives ... ");
    let warnings = restore::verify(&plan, store::migrate::expected_version(), &opener).await?;
    if let Some(rp) = &replay {
        replay::verify(rp, &opener).await?;
    }
    println!("ok");
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "soko: restoring replaces the database and images of {}; pass --yes to confirm",
                cfg.data_dir.display()
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        println!(
            "This replaces the database and images of {}. Type yes to go on:",
            cfg.data_dir.display()
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            println!("nothing was changed");
            return Ok(ExitCode::FAILURE);
        }
    }
    if restore::secrets(&plan, &cfg.secrets_path(), &opener).await? {
        println!("secrets file restored to {}", cfg.secrets_path().display());
    } else if plan.part(crate::config::backup::Kind::Secrets).is_some() {
        println!(
            "secrets file kept as it is ({} exists)",
            cfg.secrets_path().display()
        );
    }
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, temporary) = open_database(&cfg, &secrets).await?;
    let result = async {
        let target = Target::from_config(&cfg, &secrets)?;
        anyhow::Ok(
            restore::restore_until(
                &plan,
                &pool,
                &target,
                &cfg.backup.dir_for(&cfg),
                &opener,
                replay.as_ref(),
            )
            .await?,
        )
    }
    .await;
    close_database(pool, temporary).await;
    let report = result?;
    for r in &report.restored {
        println!("restored {r}");
    }
    if let Some(r) = &report.replayed {
        println!(
            "replayed {} binlog file(s) ({}): {} transactions, {} row changes, events up to {}{} in {:.2} s",
            r.files.len(),
            if r.files.is_empty() {
                "none after the dump".to_owned()
            } else {
                r.files.join(", ")
            },
            r.scan.transactions,
            r.scan.rows,
            r.scan
                .last_event_at
                .map(binlog::rfc3339)
                .unwrap_or_else(|| "-".into()),
            r.scan
                .last_gtid
                .as_deref()
                .map(|g| format!(" (last GTID {g})"))
                .unwrap_or_default(),
            r.secs
        );
    }
    println!(
        "schema version {} | {} image files | {} products queued to rebuild the vector index{}",
        report.schema_version,
        report.image_files,
        report.requeued,
        if report.dangling_vectors > 0 {
            format!(
                " | {} vectors of deleted products dropped",
                report.dangling_vectors
            )
        } else {
            String::new()
        }
    );
    println!("done: start soko again with `soko up` (or `systemctl start soko`)");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(source: Option<&str>, from: Option<From>) -> Args {
        Args {
            source: source.map(str::to_owned),
            from,
            yes: true,
            identity: None,
            verify_key: Vec::new(),
            trust_unverified: false,
            until: None,
        }
    }

    #[test]
    fn sources_local_s3_urls_and_from_s3() {
        let s3 = |a: &Args| match source(a).unwrap() {
            Source::S3 {
                bucket,
                prefix,
                set,
            } => (bucket, prefix, set),
            Source::Local(p) => panic!("local {p:?}"),
        };
        let (b, p, s) = s3(&args(Some("s3://shop-backups/soko/20261204T023000Z"), None));
        assert_eq!(b.as_deref(), Some("shop-backups"));
        assert_eq!(p.as_deref(), Some("soko/"));
        assert_eq!(s.as_deref(), Some("20261204T023000Z"));
        // No set: the newest under the prefix.
        let (_, p, s) = s3(&args(Some("s3://shop-backups/a/b/"), None));
        assert_eq!((p.as_deref(), s), (Some("a/b/"), None));
        let (_, p, s) = s3(&args(Some("s3://shop-backups/SET"), None));
        assert_eq!((p.as_deref(), s.as_deref()), (Some(""), Some("SET")));
        // --from s3: the configured bucket and prefix.
        let (b, p, s) = s3(&args(Some("SET"), Some(From::S3)));
        assert_eq!((b, p, s.as_deref()), (None, None, Some("SET")));
        let (_, _, s) = s3(&args(None, Some(From::S3)));
        assert_eq!(s, None);
        assert!(matches!(
            source(&args(Some("/var/backups/x"), None)),
            Ok(Source::Local(_))
        ));
        assert!(
            source(&args(Some("s3:///x"), None))
                .unwrap_err()
                .contains("no bucket")
        );
        assert!(
            source(&args(None, None))
                .unwrap_err()
                .contains("name what to restore")
        );
    }
}
