//! `soko images build`: the MariaDB and Milvus standalone images of the container runtime,
//! built on this machine (no registry needed); `soko images status`: are they there?

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
    /// Print the containers soko creates for this configuration as a Compose file.
    Compose {
        /// For the embedded defaults on a 2 GiB machine (what compose/compose.yaml holds).
        #[arg(long)]
        reference: bool,
    },
}

pub async fn run(cfg: Config, args: Args) -> anyhow::Result<ExitCode> {
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
        Action::Compose { .. } => unreachable!("answered above, without an engine"),
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
