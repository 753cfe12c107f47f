//! `soko console`: the terminal dashboard of the running appliance (see `crate::console`).

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use super::{EXIT_CONFIG, load_config};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(path: &Path, _args: Args) -> anyhow::Result<ExitCode> {
    let (cfg, _) = match load_config(path) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    if !std::io::stdout().is_terminal() {
        eprintln!("soko: the console needs a terminal; use `soko status` (or --json) in scripts");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    crate::console::run(cfg.admin_socket()).await?;
    Ok(ExitCode::SUCCESS)
}
