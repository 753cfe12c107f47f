//! `soko images build`: the MariaDB and Milvus standalone images of the container runtime,
//! built on this machine (no registry needed); `soko images status`: are they there?
//! `soko images migrate --to s3|local`: the product photos copied to the other image store
//! (`objects::migrate`).

use crate::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

use super::EXIT_CONFIG;
use crate::supervisor::container::engine::first_answering;
use crate::supervisor::images::{self, build};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Build the images the config names (skipped when present at the right version).
    Build {
        /// Rebuild even when present.
        #[arg(long)]
        force: bool,
        /// Only this one: mariadb or milvus.
        #[arg(long, value_name = "NAME")]
        only: Option<String>,
        /// Scratch space for the root filesystems (about 1 GB while building).
        #[arg(long, default_value = "/var/tmp/soko-images")]
        work_dir: PathBuf,
        /// A Python with pip, to fetch the Milvus wheel (default: the milvus-lite virtualenv's
        /// when present, else python3).
        #[arg(long, env = "SOKO_PYTHON")]
        python: Option<PathBuf>,
    },
    /// Say whether each image is on the engine and of the right version (exit 1 if not).
    Status,
    /// Copy every product photo (originals and WebP variants) from the current image store
    /// (`images.store`) to the other one, checking each original's SHA-256; resumable and
    /// safe to re-run. Then switch `images.store`.
    Migrate {
        /// The store to copy to: s3 (the bucket of images.s3) or local (<data_dir>/images).
        #[arg(long, value_parser = ["s3", "local"])]
        to: String,
        /// Count what would be copied; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the containers soko creates for this configuration as a Compose file.
    Compose {
        /// For the embedded defaults on a 2 GiB machine (what compose/compose.yaml holds).
        #[arg(long)]
        reference: bool,
    },
}

pub async fn run(cfg: Config, args: Args) -> anyhow::Result<ExitCode> {
    if let Action::Migrate { to, dry_run } = &args.action {
        return migrate(&cfg, to, *dry_run).await;
    }
    if let Action::Compose { reference } = args.action {
        use crate::supervisor::container::compose;
        let cfg = if reference {
            compose::reference_config()
        } else {
            cfg
        };
        print!("{}", compose::render(&cfg));
        return Ok(ExitCode::SUCCESS);
    }
    let engine = match first_answering(&cfg).await {
        Ok(e) => e,
        Err(why) => {
            eprintln!("soko: {why}, or set supervisor.engine_socket");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!("container engine: {engine:?}");
    let all = build::all(&cfg);
    match args.action {
        Action::Status => {
            let mut ok = true;
            for (image, kind) in &all {
                match engine.check_image(image, kind).await {
                    Ok(()) => println!("{image}: ok ({} {})", kind.name, kind.version),
                    Err(why) => {
                        ok = false;
                        println!("{image}: {why}");
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Action::Compose { .. } | Action::Migrate { .. } => {
            unreachable!("answered above, without an engine")
        }
        Action::Build {
            force,
            only,
            work_dir,
            python,
        } => {
            let wanted: Vec<_> = match &only {
                None => all,
                Some(name) => {
                    let picked: Vec<_> = all.into_iter().filter(|(_, k)| k.name == name).collect();
                    if picked.is_empty() {
                        eprintln!(
                            "soko: --only takes {} or {}, got {name:?}",
                            images::MARIADB.name,
                            images::MILVUS.name
                        );
                        return Ok(ExitCode::from(EXIT_CONFIG));
                    }
                    picked
                }
            };
            let python = python.unwrap_or_else(|| default_python(&cfg));
            let opts = build::Options {
                work_dir,
                python,
                force,
            };
            build::build(&engine, &wanted, &opts).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The milvus-lite virtualenv's Python (it has pip), next to `vectors.embedded.command`.
fn default_python(cfg: &crate::config::Config) -> PathBuf {
    cfg.vectors
        .embedded
        .command
        .parent()
        .map(|bin| bin.join("python3"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| "python3".into())
}

/// `soko images migrate`: from the store `images.store` names to the other one.
async fn migrate(cfg: &Config, to: &str, dry_run: bool) -> anyhow::Result<ExitCode> {
    use crate::config::images::StoreKind;
    use crate::config::secrets::Secrets;
    use crate::objects::images::ImageStore;
    crate::telemetry::init_terminal("warn");
    let current = cfg.images.store;
    if current.as_str() == to {
        eprintln!(
            "soko: images.store is already {to}: the photos are there. To copy them to the other \
             store, run `soko images migrate --to {}`.",
            if to == "s3" { "local" } else { "s3" }
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let Some(s3cfg) = &cfg.images.s3 else {
        eprintln!(
            "soko: images.s3 is not set in the config: name the bucket (endpoint, bucket, region, \
             prefix) first; the keys go in the secrets file"
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let bucket = ImageStore::s3(s3cfg, &secrets)?;
    let local = ImageStore::local(crate::store::images::Files::new(
        cfg.data_dir.join("images"),
    ));
    let (from, dest) = match current {
        StoreKind::Local => (local, bucket),
        StoreKind::S3 => (bucket, local),
    };
    if let Err(e) = dest.probe().await {
        eprintln!(
            "soko: the destination ({}) does not answer: {e}",
            dest.describe()
        );
        return Ok(ExitCode::FAILURE);
    }
    if let Err(e) = from.probe().await {
        eprintln!(
            "soko: the source ({}) does not answer: {e}",
            from.describe()
        );
        return Ok(ExitCode::FAILURE);
    }
    eprintln!(
        "{} photos from {} to {}",
        if dry_run {
            "counting (dry run)"
        } else {
            "copying"
        },
        from.describe(),
        dest.describe()
    );
    let (pool, temporary) = super::migrate::open_database_saying(cfg, &secrets, true).await?;
    let mut last = std::time::Instant::now();
    let report = crate::objects::migrate::run(&pool, &from, &dest, dry_run, |r, done, total| {
        // A line per 100 photos or per 2 s, and the last one.
        if done == total || r.photos % 100 == 0 || last.elapsed().as_secs() >= 2 {
            last = std::time::Instant::now();
            crate::telemetry::progress(
                &format!(
                    "images migrate: {} copied, {} already there",
                    r.copied, r.skipped
                ),
                done,
                total,
            );
        }
    })
    .await;
    super::migrate::close_database(pool, temporary).await;
    let report = report?;
    let verb = if dry_run { "would copy" } else { "copied" };
    println!(
        "{} photos: {verb} {} objects ({} bytes), {} already there, {} originals missing from \
         the source, {} variants queued to be made again",
        report.photos,
        report.copied,
        report.copied_bytes,
        report.skipped,
        report.missing,
        report.variants_requeued
    );
    for c in &report.corrupt {
        println!("corrupt (not copied): {c}");
    }
    for f in &report.failed {
        println!("failed: {f}");
    }
    if !report.ok() {
        eprintln!(
            "soko: {} corrupt and {} failed objects: keep images.store: {}; run the command again \
             (it resumes) after looking at them",
            report.corrupt.len(),
            report.failed.len(),
            current.as_str()
        );
        return Ok(ExitCode::FAILURE);
    }
    if dry_run {
        println!("dry run: nothing written; run without --dry-run to copy");
    } else {
        println!(
            "done: every photo is in {}. Now set `images.store: {to}` in appliance.yaml and \
             restart soko (on every node). The source copy is kept; running this again copies \
             only what is new.",
            dest.describe()
        );
    }
    Ok(ExitCode::SUCCESS)
}
