//! `soko catalogue import --seller SLUG URL...`: import a seller's products from their own
//! pages (shop page, sitemap, product pages); `soko catalogue recheck`: start a heartbeat
//! re-check round now. Both record durable work a running soko's workers do; `--wait` does it
//! here and prints the counts.

use std::process::ExitCode;

use anyhow::Context;

use super::migrate::{close_database, open_database};
use crate::catalogue::Intake;
use crate::config::Config;
use crate::config::secrets::Secrets;
use crate::store::{imports, sellers};
use crate::workers::catalogue_import::{self, Importer};
use crate::workers::catalogue_recheck::{self, Rechecker};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Import products from a seller's shop page, sitemap or product pages.
    Import {
        /// The seller's slug (their page is /s/SLUG).
        #[arg(long)]
        seller: String,
        /// Do the import here and print its counts, rather than leave it to the running soko.
        #[arg(long)]
        wait: bool,
        /// http(s) URLs: the shop page, a sitemap, or product pages.
        #[arg(required = true)]
        urls: Vec<String>,
    },
    /// Start a heartbeat re-check round of every imported product now.
    Recheck {
        /// Run the round here and print its counts.
        #[arg(long)]
        wait: bool,
    },
}

pub async fn run(cfg: Config, args: Args) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_terminal("warn");
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, opened) = open_database(&cfg, &secrets).await?;
    let result = match args.command {
        Sub::Import { seller, wait, urls } => import(&cfg, &pool, &seller, wait, &urls).await,
        Sub::Recheck { wait } => recheck(&cfg, &pool, wait).await,
    };
    close_database(pool, opened).await;
    result
}

async fn import(
    cfg: &Config,
    pool: &sqlx::MySqlPool,
    slug: &str,
    wait: bool,
    urls: &[String],
) -> anyhow::Result<ExitCode> {
    let seller = sellers::by_slug(pool, slug)
        .await?
        .with_context(|| format!("--seller: no seller has the slug {slug:?}"))?;
    let urls = Intake::from_config(&cfg.catalogue)
        .urls(urls.iter().map(String::as_str))
        .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
    let id = imports::create_import(pool, seller.id, "cli", &urls).await?;
    if !wait {
        println!(
            "import {id} queued for {slug}: a running soko reads the pages (progress in `soko \
             status` and on /sell/import); `--wait` does it here"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let imp = Importer::from_config(cfg, pool.clone()).map_err(anyhow::Error::msg)?;
    catalogue_import::drain(&imp).await?;
    let p = imports::progress(pool, seller.id, id)
        .await?
        .context("the import vanished")?;
    println!(
        "import {id} for {slug}: {} ({} pages: {} new, {} updated, {} unchanged, {} without a \
         product, {} gone, {} refused, {} failed, {} to retry later)",
        p.state,
        p.pages,
        p.created,
        p.updated,
        p.unchanged,
        p.no_product,
        p.gone,
        p.refused,
        p.failed,
        p.queued
    );
    Ok(ExitCode::SUCCESS)
}

async fn recheck(cfg: &Config, pool: &sqlx::MySqlPool, wait: bool) -> anyhow::Result<ExitCode> {
    let run = imports::start_run(pool, "manual").await?;
    if !wait {
        println!("re-check round {run} started: a running soko does it (`soko status` shows it)");
        return Ok(ExitCode::SUCCESS);
    }
    let r = Rechecker::from_config(cfg, pool.clone()).map_err(anyhow::Error::msg)?;
    catalogue_recheck::run_round(&r).await?;
    if let Some(run) = imports::runs(pool, 1).await?.first() {
        println!(
            "re-check round {}: {} ({} checked, {} unchanged, {} updated, {} gone, {} back, {} \
             errors, {} taken down)",
            run.id,
            run.state,
            run.checked,
            run.unchanged,
            run.updated,
            run.gone,
            run.restored,
            run.errors,
            run.taken_down
        );
    }
    Ok(ExitCode::SUCCESS)
}
