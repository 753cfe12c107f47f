//! `soko console`: the terminal dashboard of the running appliance (see `crate::console`).

use std::io::IsTerminal;
use std::process::ExitCode;

use super::EXIT_CONFIG;
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(cfg: Config, _args: Args) -> anyhow::Result<ExitCode> {
    if !std::io::stdout().is_terminal() {
        eprintln!("soko: the console needs a terminal; use `soko status` (or --json) in scripts");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    crate::console::run(cfg.admin_socket()).await?;
    Ok(ExitCode::SUCCESS)
}
