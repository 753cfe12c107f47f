//! `soko search rebuild`: every node's text-search index rebuilds from MySQL (a running one
//! within a second, a stopped one when it starts): an "everything changed" row in the
//! `search_changes` log. Search answers from SQL while an index rebuilds.

use std::process::ExitCode;

use super::migrate::{close_database, open_database};
use crate::config::Config;
use crate::config::secrets::Secrets;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Rebuild every node's text-search index from MySQL.
    Rebuild,
}

pub async fn run(cfg: Config, args: Args) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_terminal("warn");
    match args.command {
        Sub::Rebuild => {
            let secrets = Secrets::load(&cfg.secrets_path())?;
            let (pool, opened) = open_database(&cfg, &secrets).await?;
            let result = crate::store::search::record_all(&pool).await;
            close_database(pool, opened).await;
            result?;
            println!(
                "search index rebuild requested: a running soko rebuilds within a second \
                 (searches answer from SQL meanwhile; `soko status` shows progress), a stopped \
                 one when it starts"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
