//! `soko doctor`: preflight checks plus, when the appliance runs, its readiness; every failure
//! with the fix.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use super::load_config;
use crate::ops::status::{CheckView, Level};
use crate::ops::{admin, checklist, preflight};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(path: &Path, _args: Args) -> anyhow::Result<ExitCode> {
    let (cfg, found) = match load_config(path) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    println!(
        "config: {} ({})",
        path.display(),
        if found {
            "valid"
        } else {
            "absent: embedded defaults"
        }
    );
    let running = admin::fetch_status(&cfg.admin_socket(), Duration::from_secs(10))
        .await
        .ok();
    let mut checks = preflight::run(&cfg, running.is_some());
    match &running {
        Some(snapshot) => checks.extend(snapshot.checks.iter().cloned()),
        None => {
            checks.push(CheckView {
                name: "running".into(),
                level: Level::Amber,
                detail: "soko is not running: start it with `soko up`".into(),
            });
            // What can be checked without it: the checklist's configuration items.
            checks.extend(checklist::local(&cfg));
        }
    }
    if let Some(snapshot) = &running {
        for a in snapshot.alerts.iter().filter(|a| a.firing()) {
            checks.push(CheckView {
                name: format!("alert {}", a.key),
                level: a.level,
                detail: a.summary.clone(),
            });
        }
    }
    // The checklist's secrets check also covers the owner and missing values: it replaces
    // the preflight one.
    if checks.iter().filter(|c| c.name == "secrets").count() > 1
        && let Some(first) = checks.iter().position(|c| c.name == "secrets")
    {
        checks.remove(first);
    }
    Ok(print_checks(&checks))
}

/// One line a check; exit 1 when any is red.
pub fn print_checks(checks: &[CheckView]) -> ExitCode {
    for c in checks {
        let mark = match c.level {
            Level::Green => "ok  ",
            Level::Amber => "warn",
            Level::Red => "FAIL",
        };
        println!("{mark}  {:<10} {}", c.name, c.detail);
        if c.level != Level::Green
            && let Some(fix) = checklist::fix(&c.name)
        {
            println!("      fix: {fix}");
        }
    }
    if checks.iter().any(|c| c.level == Level::Red) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
