//! `soko up`: the one command an operator runs. The appliance itself is built and run by
//! `app` (see its module comment for the order); this prints why it did not start.

use std::process::ExitCode;

use super::{EXIT_CONFIG, Loaded};
use crate::app::{self, Host, StartError};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(loaded: Loaded, _args: Args) -> anyhow::Result<ExitCode> {
    let Loaded { path, cfg, found } = loaded;
    let up = async {
        let _host = Host::prepare(&cfg, &path, found)?;
        let config_path = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        app::build(cfg, config_path).await?.run_until_signal().await
    };
    match up.await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(StartError::Refused(lines)) => {
            for line in lines {
                eprintln!("soko: {line}");
            }
            Ok(ExitCode::from(EXIT_CONFIG))
        }
        Err(e) => Err(e.into()),
    }
}
