//! `soko doctor`: preflight checks plus, when the appliance runs, its readiness; every failure
//! with the fix.

use std::process::ExitCode;
use std::time::Duration;

use super::Loaded;
use crate::ops::status::{CheckView, Level};
use crate::ops::{admin, checklist, preflight};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the checks as JSON (for scripts and monitoring): `ok`, the config, and each
    /// check's name, level, detail and fix.
    #[arg(long)]
    json: bool,
}

pub async fn run(loaded: Loaded, args: Args) -> anyhow::Result<ExitCode> {
    let Loaded {
        path,
        mut cfg,
        found,
    } = loaded;
    if !args.json {
        println!(
            "config: {} ({})",
            path.display(),
            if found {
                "valid"
            } else {
                "absent: embedded defaults"
            }
        );
    }
    let running = admin::fetch_status(&cfg.admin_socket(), Duration::from_secs(10))
        .await
        .ok();
    let runtime = runtime_check(&mut cfg, running.as_ref()).await;
    let mut checks = preflight::run(&cfg, running.is_some());
    checks.push(runtime);
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
            checks.push(images_check(&cfg).await);
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
    if args.json {
        let doc = checks_json(&checks, &path, found);
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(exit_code(&checks));
    }
    Ok(print_checks(&checks))
}

/// The checks as `soko doctor --json` prints them.
fn checks_json(checks: &[CheckView], path: &std::path::Path, found: bool) -> serde_json::Value {
    serde_json::json!({
        "ok": !checks.iter().any(|c| c.level == Level::Red),
        "config": { "path": path.display().to_string(), "found": found },
        "checks": checks
            .iter()
            .map(|c| serde_json::json!({
                "name": c.name,
                "level": c.level,
                "detail": c.detail,
                "fix": if c.level == Level::Green { None } else { checklist::fix(&c.name) },
            }))
            .collect::<Vec<_>>(),
    })
}

/// Exit 1 when any check is red.
fn exit_code(checks: &[CheckView]) -> ExitCode {
    if checks.iter().any(|c| c.level == Level::Red) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Which runtime runs (or would run) MariaDB and Milvus, and why. Not running: resolved as
/// `soko up` would, and the config then says which (so the binaries check fits the runtime).
async fn runtime_check(
    cfg: &mut crate::config::Config,
    running: Option<&crate::ops::status::Snapshot>,
) -> CheckView {
    use crate::config::RuntimeChoice;
    use crate::supervisor::container::engine::{Choice, choose};
    let check = |level, detail| CheckView {
        name: "runtime".into(),
        level,
        detail,
    };
    if let Some(s) = running {
        let parts: Vec<String> = s
            .services
            .iter()
            .filter(|v| v.status.state != crate::supervisor::State::External)
            .map(|v| match &v.status.container_id {
                Some(id) => format!("{} in container {id}", v.status.name),
                None => format!("{} as a {}", v.status.name, v.status.runtime),
            })
            .collect();
        let why = s
            .services
            .iter()
            .find_map(|v| v.status.runtime_reason.clone())
            .unwrap_or_default();
        return check(Level::Green, format!("{} ({why})", parts.join(", ")));
    }
    let setting = cfg.supervisor.runtime;
    match choose(cfg).await {
        Ok(Choice::Container { reason, .. }) => {
            cfg.supervisor.runtime = RuntimeChoice::Container;
            check(Level::Green, format!("containers: {reason}"))
        }
        Ok(Choice::Process { reason }) => {
            cfg.supervisor.runtime = RuntimeChoice::Process;
            let level = if setting == RuntimeChoice::Auto {
                Level::Amber
            } else {
                Level::Green
            };
            check(level, format!("processes: {reason}"))
        }
        Err(why) => check(Level::Red, why),
    }
}

/// The image store, probed from here (the bucket's keys and whether it answers).
async fn images_check(cfg: &crate::config::Config) -> CheckView {
    let secrets = crate::config::secrets::Secrets::load(&cfg.secrets_path()).unwrap_or_default();
    let (ok, detail) = match crate::objects::images::ImageStore::from_config(cfg, &secrets) {
        Ok(store) => store.status().await,
        Err(e) => (
            false,
            format!("images.store {}: {e}", cfg.images.store.as_str()),
        ),
    };
    CheckView {
        name: "images".into(),
        level: if ok { Level::Green } else { Level::Red },
        detail,
    }
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
    exit_code(checks)
}
