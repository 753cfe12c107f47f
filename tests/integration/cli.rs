//! The command line without a running appliance: bad configs refused before anything starts,
//! `soko init`, `soko status` when stopped, `soko migrate` on its own.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::common::{Appliance, scratch, soko_bin};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(soko_bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `soko up` on a bad file: exit 2, the message names key and line, nothing created.
fn refused(yaml: &str, expect: &[&str]) {
    let dir = scratch("badcfg");
    let data = dir.join("data");
    let config = dir.join("appliance.yaml");
    std::fs::write(&config, format!("data_dir: {}\n{yaml}", data.display())).unwrap();
    let (code, _, stderr) = run(&["--config", config.to_str().unwrap(), "up"]);
    assert_eq!(code, 2, "{stderr}");
    for e in expect {
        assert!(stderr.contains(e), "expected {e:?} in: {stderr}");
    }
    assert!(stderr.contains("nothing was started"), "{stderr}");
    assert!(
        !data.exists(),
        "a refused start must not create the data directory"
    );
}

#[test]
fn an_unknown_key_is_refused_with_key_and_line() {
    refused(
        "database:\n  mode: embedded\n  prot: 3306\n",
        &["prot", "line 4"],
    );
}

#[test]
fn a_wrong_type_is_refused_with_key_line_and_expectation() {
    refused(
        "http:\n  listen: everywhere\n",
        &["listen", "line 3", "socket address"],
    );
}

#[test]
fn a_missing_required_value_is_refused_with_key_and_line() {
    refused(
        "vectors:\n  mode: external\n",
        &["vectors.url", "is required", ":2"],
    );
}

#[test]
fn help_explains_each_command() {
    for cmd in ["init", "up", "status", "migrate", "doctor"] {
        let (code, stdout, _) = run(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(stdout.contains("Usage: soko"), "{cmd}: {stdout}");
        assert!(stdout.contains("--config"), "{cmd}: {stdout}");
    }
}

#[test]
fn init_writes_config_and_private_secrets_and_never_overwrites_them() {
    let dir = scratch("init");
    let config = dir.join("etc/appliance.yaml");
    let data = dir.join("data");
    let args = [
        "--config",
        config.to_str().unwrap(),
        "init",
        "--domain",
        "shop.example.co.ke",
        "--email",
        "ops@example.co.ke",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let (_, stdout, stderr) = run(&args);
    assert!(stdout.contains("wrote"), "{stdout}{stderr}");
    assert!(stdout.contains("preflight"), "{stdout}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("domain: \"shop.example.co.ke\""), "{text}");
    let secrets_path = data.join("secrets.yaml");
    let secrets = std::fs::read_to_string(&secrets_path).unwrap();
    let mode = std::fs::metadata(&secrets_path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    for line in secrets.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.split_once(": ").unwrap();
        if name == "backup_box_identity" || name == "tls_store_key" {
            // Age identities (Bech32 X25519 keys): the box's own for the restore drill, and
            // the one certificates are sealed to in the database (`tls.store: database`).
            assert!(
                value.starts_with("AGE-SECRET-KEY-1") && value.len() == 74,
                "{name}"
            );
        } else {
            assert!(
                value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()),
                "{name}: generated secrets are 32 random bytes in hex"
            );
        }
        assert!(!text.contains(value), "a secret leaked into appliance.yaml");
    }
    // Second run: config kept, secrets byte-for-byte identical.
    let (_, stdout, _) = run(&args);
    assert!(stdout.contains("kept"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&secrets_path).unwrap(), secrets);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
}

#[test]
fn status_says_not_running_with_exit_code_3() {
    let app = Appliance::prepare("stopped", |_| {});
    let out = app.command(&["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
}

#[test]
fn migrate_starts_the_embedded_database_for_itself_and_stops_it() {
    let app = Appliance::prepare("migrate", |_| {});
    let out = app.command(&["migrate"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = format!(
        "database at version {}",
        soko::store::migrate::expected_version()
    );
    assert!(stdout.contains(&expected), "{stdout}");
    // Nothing left running: the pid file is gone and the port is free again.
    assert!(!app.cfg.run_dir().join("mysql.pid").exists());
    assert!(soko::supervisor::ports::ensure_free(app.cfg.database.embedded.port, "mysql").is_ok());
    let status = app.command(&["migrate", "--status"]).output().unwrap();
    assert_eq!(status.status.code(), Some(0));
}

#[test]
fn doctor_explains_a_taken_port_and_a_missing_server() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let app = Appliance::prepare("doctor", |c| {
        c.database.embedded.port = port;
        c.vectors.embedded.command = "/nonexistent/milvus-lite".into();
    });
    let out = app.command(&["doctor"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("port {port} needed by mysql")),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "/nonexistent/milvus-lite is missing (vectors.embedded.command): run scripts/setup"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("ok    memory"), "{stdout}");
    assert!(stdout.contains("not running"), "{stdout}");
}

#[test]
fn seed_demo_fills_a_store_once() {
    let app = Appliance::prepare("seed", |_| {});
    let first = app.command(&["seed", "--demo"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.contains("24 new products"), "{stdout}");
    // Each product has its own generated photo, stored like an upload (content-addressed).
    let photos = walk(&app.cfg.data_dir.join("images"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .count();
    assert_eq!(photos, 24);
    // Its progress, on stderr (not a terminal here): plain lines, one a step, nothing redrawn;
    // stdout holds only the result.
    let stderr = String::from_utf8_lossy(&first.stderr);
    for step in [
        "] seed: migrations\n",
        "] seed: demo seller Kiondo Crafts (0/6, 0%)\n",
        "] seed: demo seller Nyumba Decor (5/6, 83%)\n",
        "] seed: demo sellers (6/6, 100%)\n",
    ] {
        assert!(stderr.contains(step), "{step:?} in: {stderr}");
    }
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
    assert!(!stdout.contains("seed:"), "{stdout}");
    let again = app
        .command(&["seed", "--demo", "--products", "2500"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("2500 new products"));
    let stderr = String::from_utf8_lossy(&again.stderr);
    for step in [
        "] seed: generated products (2000/2500, 80%)\n",
        "] seed: generated products (2500/2500, 100%)\n",
    ] {
        assert!(stderr.contains(step), "{step:?} in: {stderr}");
    }
}

#[test]
fn migrate_and_doctor_answer_in_json_with_nothing_else_on_stdout() {
    let app = Appliance::prepare("json", |_| {});
    let out = app.command(&["migrate", "--json"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    let expected = soko::store::migrate::expected_version();
    assert_eq!(doc["applied"], expected, "{doc}");
    assert_eq!(doc["expected"], expected, "{doc}");
    assert_eq!(doc["current"], true, "{doc}");
    assert_eq!(doc["pending"], serde_json::json!([]), "{doc}");
    let out = app
        .command(&["migrate", "--status", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["current"], true, "{doc}");

    let out = app.command(&["doctor", "--json"]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    });
    let checks = doc["checks"].as_array().unwrap();
    assert!(checks.iter().any(|c| c["name"] == "memory"), "{doc}");
    let running = checks.iter().find(|c| c["name"] == "running").unwrap();
    assert_eq!(running["level"], "amber", "{doc}");
    // The exit code and `ok` agree: 1 exactly when a check is red.
    let red = checks.iter().any(|c| c["level"] == "red");
    assert_eq!(doc["ok"], !red, "{doc}");
    assert_eq!(out.status.code(), Some(if red { 1 } else { 0 }), "{doc}");
}

#[test]
fn completions_and_man_pages_come_from_the_commands() {
    let (code, bash, _) = run(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(
        bash.contains("complete") && bash.contains("doctor"),
        "{bash}"
    );
    let (code, _, stderr) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("invalid value 'tcsh'"), "{stderr}");
    let (code, page, _) = run(&["man"]);
    assert_eq!(code, 0);
    assert!(
        page.starts_with(".ie") || page.contains(".TH soko 1"),
        "{page}"
    );
    let dir = scratch("man");
    let (code, _, stderr) = run(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    for page in [
        "soko.1",
        "soko-backup.1",
        "soko-doctor.1",
        "soko-completions.1",
    ] {
        assert!(dir.join(page).exists(), "{page}");
    }
}

/// `soko init --domain` checks the name: `localhost` resolves, but to loopback; a name in the
/// reserved `.invalid` domain never resolves (or, without a resolver, cannot be checked).
#[test]
fn init_checks_that_the_domain_points_at_this_host() {
    for (domain, expect) in [
        (
            "localhost",
            &[
                "points at a loopback address",
                "not this host's public address",
            ][..],
        ),
        ("soko-test.invalid", &["soko-test.invalid"][..]),
    ] {
        let dir = scratch("init-domain");
        let config = dir.join("appliance.yaml");
        let data = dir.join("data");
        let (_, stdout, stderr) = run(&[
            "--config",
            config.to_str().unwrap(),
            "init",
            "--domain",
            domain,
            "--email",
            "ops@example.co.ke",
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        let lines: Vec<&str> = stdout.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains(" domain "))
            .unwrap_or_else(|| panic!("no domain check: {stdout}{stderr}"));
        let line = lines[at];
        // What to do about it, on the next line.
        assert!(
            lines
                .get(at + 1)
                .is_some_and(|f| f.trim_start().starts_with("fix: ") && f.contains("A record")),
            "{stdout}"
        );
        for e in expect {
            assert!(line.contains(e), "{e:?} in {line}");
        }
        if domain.ends_with(".invalid") {
            assert!(
                line.contains("does not resolve") || line.contains("cannot check whether"),
                "{line}"
            );
        } else {
            assert!(line.starts_with("FAIL"), "{line}");
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
