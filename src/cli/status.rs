//! `soko status`: the running appliance's snapshot over the admin socket, as text or JSON.

use crate::config::Config;
use std::process::ExitCode;
use std::time::Duration;

use super::EXIT_NOT_RUNNING;
use crate::clock::now_unix;
use crate::ops::admin::{self, ClientError};
use crate::ops::status::{Level, render_text};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the snapshot as JSON (for scripts and monitoring).
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: Config, args: Args) -> anyhow::Result<ExitCode> {
    let snapshot = match admin::fetch_status(&cfg.admin_socket(), Duration::from_secs(10)).await {
        Ok(s) => s,
        Err(e @ ClientError::NotRunning(_)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "running": false, "error": e.to_string() })
                );
            } else {
                eprintln!("soko: {e}; start it with `soko up`");
            }
            return Ok(ExitCode::from(EXIT_NOT_RUNNING));
        }
        Err(e) => {
            eprintln!("soko: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&snapshot)?);
    } else {
        print!("{}", render_text(&snapshot, now_unix()));
    }
    Ok(if snapshot.level() == Level::Red {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
