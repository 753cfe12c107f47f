//! `soko promote`: this standby becomes the primary. Through the admin socket when soko runs
//! (it starts serving at once); otherwise on the database directly (the next `soko up`
//! serves as the primary).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::EXIT_CONFIG;
use super::migrate::{close_database, open_database};
use crate::config::{Config, secrets::Secrets};
use crate::ops::admin::{self, ClientError};
use crate::store;
use crate::supervisor::{mysql, replication};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(cfg: Config, _args: Args) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_terminal("warn");
    match admin::promote(&cfg.admin_socket(), Duration::from_secs(60)).await {
        Ok(text) => {
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
        Err(ClientError::Status { body, .. }) => {
            eprint!("soko: {body}");
            return Ok(ExitCode::FAILURE);
        }
        Err(ClientError::NotRunning(_)) => {}
        Err(e) => return Err(e.into()),
    }
    if replication::role(&cfg.data_dir)? != replication::Role::Standby {
        eprintln!("soko: this node is already the primary");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, opened) = open_database(&cfg, &secrets).await?;
    let result = async {
        let root = secrets
            .mysql_root_password
            .as_ref()
            .context("mysql_root_password is missing from the secrets file")?;
        let mut conn =
            store::admin::connect_root(&mysql::Paths::new(&cfg).socket, root.expose()).await?;
        store::replication::promote(&mut conn).await?;
        // The standby's vector store never saw the primary's writes.
        let queued = store::backups::enqueue_public_products(&pool).await?;
        anyhow::Ok(queued)
    }
    .await;
    close_database(pool, opened).await;
    let queued = result?;
    replication::set_role(&cfg.data_dir, replication::Role::Primary)
        .context("cannot write the role file")?;
    println!(
        "promoted: replication stopped, the database accepts writes, {queued} products queued \
         for the vector index. Start soko: `soko up` (or `systemctl start soko`)"
    );
    Ok(ExitCode::SUCCESS)
}
