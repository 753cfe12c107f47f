//! The backup's own children (`mariadb-dump`, `zstd`, `tar`; on restore `mariadb` too) start
//! without soko's `SOKO_*` secrets. Each tool is reached through a wrapper first on `PATH` that
//! copies its own starting environment (`/proc/self/environ`, exactly what soko handed to
//! `execve`) to a file and then runs the real tool: real processes, a real backup and restore.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use soko::config::Mode;

use crate::common::{Appliance, random_suffix, scratch, shared, test_db};

const TOOLS: [&str; 4] = ["mariadb-dump", "mariadb", "zstd", "tar"];

fn which(tool: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} is not installed"))
}

/// `dir/bin/<tool>` for every tool: record the environment in `dir/seen/<tool>.<pid>`, then
/// exec the real one.
fn wrappers(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    let seen = dir.join("seen");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&seen).unwrap();
    for tool in TOOLS {
        let real = which(tool);
        let script = format!(
            "#!/bin/sh\ncat /proc/$$/environ > '{}/{tool}.'$$\nexec '{}' \"$@\"\n",
            seen.display(),
            real.display()
        );
        let path = bin.join(tool);
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// Every recorded start: tool name → the environments its runs were given.
fn recorded(dir: &Path) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut out: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("seen")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let tool = name.rsplit_once('.').unwrap().0.to_owned();
        let vars = std::fs::read(e.path())
            .unwrap()
            .split(|b| *b == 0)
            .filter(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        out.entry(tool).or_default().push(vars);
    }
    out
}

#[tokio::test]
async fn backup_and_restore_tools_start_without_sokos_secrets() {
    let (_pool, db_cfg) = test_db().await;
    let shared = shared();
    let dir = scratch("child-env-backup");
    let bin = wrappers(&dir);
    let mut app = Appliance::prepare("child-env-backup-app", |c| {
        c.database.mode = Mode::External;
        c.database.url = format!(
            "mysql://{}@127.0.0.1:{}/{}",
            db_cfg.database.user, db_cfg.database.embedded.port, db_cfg.database.name
        );
        c.vectors.mode = Mode::External;
        c.vectors.url = format!("http://127.0.0.1:{}", shared.cfg.vectors.embedded.port);
        c.vectors.collection = format!("h_{}", random_suffix());
        c.backup.dir = dir.join("backups");
        c.backup.scheduled = false;
    });
    let db_password = shared
        .secrets
        .database_password
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    let jwt = format!("jwt-canary-{}-{}", random_suffix(), random_suffix());
    let smtp = format!("smtp-canary-{}", random_suffix());
    let path = std::env::join_paths(
        std::iter::once(bin.clone())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let path = path.to_str().unwrap().to_owned();
    let env = [
        ("SOKO_DATABASE_PASSWORD", db_password.as_str()),
        ("SOKO_JWT_SECRET", jwt.as_str()),
        ("SOKO_SMTP_PASSWORD", smtp.as_str()),
        ("PATH", path.as_str()),
    ];
    app.start_with_env(&env);
    app.wait_ready(&reqwest::Client::new(), Duration::from_secs(90))
        .await;
    // soko itself was given them.
    let own = std::fs::read(format!("/proc/{}/environ", app.pid())).unwrap();
    assert!(String::from_utf8_lossy(&own).contains(&jwt));

    // A backup by the running soko (the CLI asks it over the admin socket; the CLI is given
    // the same environment, so that a run of its own would be caught as well).
    let out = app
        .command(&["backup", "--json"])
        .envs(env)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}\n{}", app.log_text());
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["ok"], true, "{outcome}");
    let set_dir = PathBuf::from(outcome["dir"].as_str().unwrap());

    // And a restore of it, by `soko restore` with soko stopped.
    app.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(app.wait_exit(Duration::from_secs(60)).await, Some(0));
    let out = app
        .command(&["restore", set_dir.to_str().unwrap(), "--yes"])
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let seen = recorded(&dir);
    for tool in TOOLS {
        let runs = seen.get(tool).map_or(&[][..], |r| &r[..]);
        assert!(!runs.is_empty(), "{tool} never ran: {seen:?}");
        for vars in runs {
            for v in vars {
                let key = v.split('=').next().unwrap();
                assert!(
                    !key.starts_with("SOKO_")
                        && !v.contains(&jwt)
                        && !v.contains(&smtp)
                        && !v.contains(&db_password),
                    "{tool} was given {v:?}: {vars:?}"
                );
                assert!(
                    soko::process_env::ALLOW.contains(&key),
                    "{tool} was given {v:?}, outside the allow-list"
                );
            }
            assert!(vars.iter().any(|v| v.starts_with("PATH=")), "{vars:?}");
        }
    }
}
