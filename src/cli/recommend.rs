//! `soko recommend`: run the recommendations worker's steps now and print what they did and
//! how long they took (`refresh`: fold in new events and recompute trending; `--full`: every
//! neighbour list too). `--generate-events N` first adds N synthetic events over the
//! catalogue, for benchmarks (scripts/bench-recs); never use it on a real store.

use crate::config::Config;
use std::process::ExitCode;
use std::time::Instant;

use super::migrate::{close_database, open_database};
use crate::config::secrets::Secrets;
use crate::store::recommend as db;
use crate::workers::recommend::{self as worker, Settings};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Recompute every neighbour list, not only those of products with new events.
    #[arg(long)]
    full: bool,
    /// Benchmarks only: first add this many synthetic events (visitors browsing clusters of
    /// neighbouring products over the last 30 days).
    #[arg(long, default_value_t = 0)]
    generate_events: u64,
    /// Events per transaction while catching up (the running worker uses smaller batches).
    #[arg(long, default_value_t = 250_000)]
    batch: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: Config, args: Args) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_terminal("warn");
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, temporary) = open_database(&cfg, &secrets).await?;
    let s = Settings {
        batch: args.batch.max(1),
        ..Settings::from_config(&cfg.recommendations)
    };
    let result = async {
        let mut out = serde_json::Map::new();
        if args.generate_events > 0 {
            let t = Instant::now();
            let n = db::generate_events(&pool, args.generate_events).await?;
            out.insert("generated_events".into(), n.into());
            out.insert(
                "generate_ms".into(),
                (t.elapsed().as_millis() as u64).into(),
            );
        }
        let t = Instant::now();
        let mut events = 0usize;
        let progress = crate::telemetry::progress;
        loop {
            let n = worker::step(&pool, &s).await?;
            events += n;
            progress(&format!("recommendations: {events} events folded in"), 0, 0);
            if n == 0 {
                break;
            }
        }
        out.insert("events_folded".into(), events.into());
        out.insert(
            "incremental_ms".into(),
            (t.elapsed().as_millis() as u64).into(),
        );
        let t = Instant::now();
        progress("recommendations: trending", 0, 0);
        let n = worker::refresh_trending(&pool, &s).await?;
        out.insert("trending_products".into(), n.into());
        out.insert(
            "trending_ms".into(),
            (t.elapsed().as_millis() as u64).into(),
        );
        if args.full {
            let t = Instant::now();
            progress("recommendations: every neighbour list (--full)", 0, 0);
            let n = worker::full_refresh(&pool, &s).await?;
            out.insert("full_products".into(), n.into());
            out.insert("full_ms".into(), (t.elapsed().as_millis() as u64).into());
        }
        anyhow::Ok(out)
    }
    .await;
    close_database(pool, temporary).await;
    let out = result?;
    if args.json {
        println!("{}", serde_json::Value::Object(out));
    } else {
        for (k, v) in out {
            println!("{k}: {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
