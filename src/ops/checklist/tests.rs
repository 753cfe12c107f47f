use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

fn cfg(yaml: &str) -> Config {
    Config::parse(yaml, Path::new("appliance.yaml")).unwrap()
}

fn facts() -> SecretsFacts {
    SecretsFacts {
        path: "/var/lib/soko/secrets.yaml".into(),
        mode: Some(0o600),
        owner: 1000,
        our_uid: 1000,
        missing: Vec::new(),
        weak: None,
    }
}

#[test]
fn secrets_must_exist_be_private_owned_and_complete() {
    assert_eq!(secrets_check(&facts()).level, Level::Green);
    let open = secrets_check(&SecretsFacts {
        mode: Some(0o644),
        ..facts()
    });
    assert_eq!(open.level, Level::Red);
    assert!(open.detail.contains("chmod 600"), "{}", open.detail);
    assert_eq!(
        secrets_check(&SecretsFacts {
            mode: Some(0o640),
            ..facts()
        })
        .level,
        Level::Red
    );
    let theirs = secrets_check(&SecretsFacts {
        owner: 0,
        ..facts()
    });
    assert_eq!(theirs.level, Level::Red);
    assert!(theirs.detail.contains("uid 0"));
    assert_eq!(
        secrets_check(&SecretsFacts {
            mode: None,
            ..facts()
        })
        .level,
        Level::Amber,
        "not created yet"
    );
    let lacking = secrets_check(&SecretsFacts {
        missing: vec!["jwt_secret"],
        ..facts()
    });
    assert!(lacking.detail.contains("jwt_secret"));
    let weak = secrets_check(&SecretsFacts {
        weak: Some("SOKO_JWT_SECRET is 5 bytes long: ...".into()),
        ..facts()
    });
    assert_eq!(weak.level, Level::Red);
    assert!(
        weak.detail.starts_with("SOKO_JWT_SECRET is 5 bytes"),
        "{}",
        weak.detail
    );
}

#[test]
fn rate_limit_cors_and_https_follow_the_config() {
    assert_eq!(rate_limit_check(&cfg("")).level, Level::Green);
    let off = rate_limit_check(&cfg("api:\n  rate_limit:\n    requests: 0\n"));
    assert_eq!(off.level, Level::Amber);
    assert!(off.detail.contains("api.rate_limit.requests"));
    assert_eq!(cors_check(&cfg("")).level, Level::Green);
    let plain =
        cfg("domain: shop.example.co.ke\napi:\n  cors_origins: [http://app.example.co.ke]\n");
    assert_eq!(cors_check(&plain).level, Level::Amber);
    let tls =
        cfg("domain: shop.example.co.ke\napi:\n  cors_origins: [https://app.example.co.ke]\n");
    assert_eq!(cors_check(&tls).level, Level::Green);
    assert_eq!(https_check(&cfg("")).level, Level::Amber, "local mode");
    assert_eq!(https_check(&tls).level, Level::Green);
    assert_eq!(
        https_check(&cfg("domain: shop.example.co.ke\ntls:\n  mode: off\n")).level,
        Level::Amber
    );
}

#[test]
fn error_tracking_and_alert_channels() {
    let c = cfg("");
    assert_eq!(error_tracking_check(false, &c).level, Level::Amber);
    assert_eq!(error_tracking_check(true, &c).level, Level::Green);
    assert_eq!(alerts_check(&c, None).level, Level::Amber);
    let hooked = cfg("alerts:\n  webhook:\n    url: https://hooks.example/x\n");
    assert_eq!(alerts_check(&hooked, Some(0)).level, Level::Green);
    assert_eq!(alerts_check(&hooked, Some(3)).level, Level::Amber);
}

#[test]
fn logging_wants_a_writable_directory_with_fresh_files() {
    let f = LogFacts {
        dir: "/l".into(),
        exists: true,
        writable: true,
        newest_age_secs: Some(5),
        total_bytes: 4096,
    };
    assert_eq!(logging_check(&f).level, Level::Green);
    assert_eq!(
        logging_check(&LogFacts {
            writable: false,
            ..f.clone()
        })
        .level,
        Level::Red
    );
    assert_eq!(
        logging_check(&LogFacts {
            newest_age_secs: None,
            ..f.clone()
        })
        .level,
        Level::Amber
    );
    assert_eq!(
        logging_check(&LogFacts {
            newest_age_secs: Some(86_401),
            ..f
        })
        .level,
        Level::Amber
    );
}

#[test]
fn heartbeat_fresh_stale_or_missing() {
    let beat = |age| vec![("vector-sync".to_string(), age)];
    assert_eq!(heartbeat_check(Some(&beat(10)), 600).level, Level::Green);
    assert_eq!(
        heartbeat_check(Some(&beat(HEARTBEAT_STALE_SECS)), 600).level,
        Level::Green
    );
    assert_eq!(
        heartbeat_check(Some(&beat(HEARTBEAT_STALE_SECS + 1)), 600).level,
        Level::Red
    );
    assert_eq!(heartbeat_check(Some(&[]), 600).level, Level::Amber);
    assert_eq!(
        heartbeat_check(Some(&[]), 30).level,
        Level::Green,
        "just started: no beat yet"
    );
    assert_eq!(heartbeat_check(None, 600).level, Level::Amber);
}

#[test]
fn backups_absent_recent_failed_or_overdue() {
    let day = 86_400;
    let now = 100 * day;
    let absent = backups_check(None, now);
    assert_eq!(absent.level, Level::Amber);
    assert!(absent.detail.contains("backups not configured"));
    let ok = BackupInputs {
        last_success: Some(now - 3600),
        interval_secs: day as u64,
        ..Default::default()
    };
    assert_eq!(backups_check(Some(&ok), now).level, Level::Green);
    let failed = BackupInputs {
        last_failure: Some(now - 60),
        last_error: Some("no room".into()),
        ..ok.clone()
    };
    assert_eq!(backups_check(Some(&failed), now).level, Level::Red);
    let old = BackupInputs {
        last_success: Some(now - 3 * day),
        ..ok.clone()
    };
    assert_eq!(backups_check(Some(&old), now).level, Level::Red);
    let never = BackupInputs {
        last_success: None,
        ..ok
    };
    assert_eq!(backups_check(Some(&never), now).level, Level::Amber);
}

#[test]
fn real_facts_are_gathered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.yaml");
    Secrets::ensure(&path).unwrap();
    let f = secrets_facts(&path);
    assert_eq!(f.mode, Some(0o600));
    assert!(f.missing.is_empty(), "{:?}", f.missing);
    assert_eq!(secrets_check(&f).level, Level::Green);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(secrets_check(&secrets_facts(&path)).level, Level::Red);
    assert_eq!(
        logging_check(&log_facts(&dir.path().join("none"))).level,
        Level::Amber
    );
    let logs = log_facts(dir.path());
    assert!(logs.writable);
    assert_eq!(logs.newest_age_secs, None);
    std::fs::write(dir.path().join("combined.2026-11-28.log"), b"{}\n").unwrap();
    assert_eq!(logging_check(&log_facts(dir.path())).level, Level::Green);
}

#[test]
fn every_checklist_item_has_a_fix() {
    for c in local(&cfg("")) {
        assert!(fix(&c.name).is_some(), "{}", c.name);
    }
    for name in [
        "heartbeat",
        "backups",
        "mysql",
        "migrations",
        "milvus",
        "certificate",
    ] {
        assert!(fix(name).is_some(), "{name}");
    }
}

#[test]
fn production_only_recommendations_are_green_in_local_mode() {
    let local = cfg("");
    let public = cfg("domain: shop.example.co.ke\n");
    for c in [
        https_check(&local),
        error_tracking_check(false, &local),
        alerts_check(&local, None),
        backups_check(None, 0),
    ] {
        let name = c.name.clone();
        let relaxed = relaxed_in_local_mode(&local, c.clone());
        assert_eq!(relaxed.level, Level::Green, "{name}");
        assert!(
            relaxed.detail.starts_with("local mode"),
            "{}",
            relaxed.detail
        );
        assert_eq!(
            relaxed_in_local_mode(&public, c).level,
            Level::Amber,
            "{name}"
        );
    }
    let open = rate_limit_check(&cfg("api:\n  rate_limit:\n    requests: 0\n"));
    assert_eq!(
        relaxed_in_local_mode(&local, open).level,
        Level::Amber,
        "security stays"
    );
}

#[test]
fn behind_a_proxy_without_trusted_proxies_is_red() {
    let behind = cfg("domain: shop.example.co.ke\ntls:\n  mode: off\n");
    let c = proxy_check(&behind);
    assert_eq!(c.level, Level::Red, "{c:?}");
    assert!(c.detail.contains("api.trusted_proxies"), "{}", c.detail);
    assert!(
        fix("proxy")
            .unwrap()
            .contains("trusted_proxies: [127.0.0.1]")
    );
    let named = cfg(
        "domain: shop.example.co.ke\ntls:\n  mode: off\napi:\n  trusted_proxies: [127.0.0.1]\n",
    );
    let c = proxy_check(&named);
    assert_eq!(c.level, Level::Green, "{c:?}");
    assert!(c.detail.contains("127.0.0.1"), "{}", c.detail);
    // HTTPS served here, or local mode: the connecting address is the client.
    assert_eq!(
        proxy_check(&cfg("domain: shop.example.co.ke\n")).level,
        Level::Green
    );
    assert_eq!(proxy_check(&cfg("")).level, Level::Green);
}

#[test]
fn os_updates_are_relaxed_only_in_local_mode() {
    let red = updates_check(&UpdateFacts {
        os: Some("Debian GNU/Linux 12 (bookworm)".into()),
        debian_like: true,
        installed: false,
        enabled: None,
        lists_refreshed: None,
        last_run: None,
    });
    assert_eq!(red.level, Level::Red);
    let local = relaxed_in_local_mode(&cfg(""), red.clone());
    assert_eq!(local.level, Level::Green);
    assert!(local.detail.starts_with("local mode"), "{}", local.detail);
    let public = cfg("domain: shop.example.co.ke\n");
    assert_eq!(relaxed_in_local_mode(&public, red).level, Level::Red);
}
