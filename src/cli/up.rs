//! `soko up`: the one command an operator runs. The appliance itself is built and run by
//! `app` (see its module comment for the order); this prints why it did not start.

use std::process::ExitCode;

use super::{EXIT_CONFIG, Loaded};
use crate::app::{self, Host, StartError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What this node runs: `all` (web, workers, singleton work under leases) or `web` (the
    /// web server only, for a node beside others that share the database). Default:
    /// `node.role` in appliance.yaml.
    #[arg(long, value_enum)]
    pub role: Option<crate::config::node::Role>,
}

pub async fn run(loaded: Loaded, args: Args) -> anyhow::Result<ExitCode> {
    let Loaded {
        path,
        mut cfg,
        found,
    } = loaded;
    if let Some(role) = args.role {
        cfg.node.role = role;
    }
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
