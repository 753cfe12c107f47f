use super::plan::{Kind, plan};
use super::*;
use crate::ops::snapshot::Snapshot;
use crate::store::alerts::AlertRow;

fn limits() -> Thresholds {
    Thresholds::from(&crate::config::alerts::Alerts::default())
}

fn keys(c: &[Condition]) -> Vec<&str> {
    c.iter().map(|c| c.key.as_str()).collect()
}

#[test]
fn certificate_fires_below_fourteen_days_and_turns_red_below_three() {
    let t = limits();
    let at = |d| {
        cert_rule(
            &AlertInputs {
                cert_days_left: Some(d),
                ..Default::default()
            },
            &t,
        )
    };
    assert_eq!(at(14), None, "14 days left is not below 14");
    assert_eq!(at(13).unwrap().level, Level::Amber);
    assert_eq!(at(3).unwrap().level, Level::Amber);
    assert_eq!(at(2).unwrap().level, Level::Red);
    assert!(at(-1).unwrap().summary.contains("expired"));
    assert_eq!(
        cert_rule(&AlertInputs::default(), &t),
        None,
        "no certificate: quiet"
    );
}

#[test]
fn disk_fires_strictly_above_the_threshold() {
    let t = limits();
    let at = |p| {
        disk_rule(
            &AlertInputs {
                disk_used_percent: Some(p),
                ..Default::default()
            },
            &t,
        )
    };
    assert_eq!(at(85.0), None);
    assert_eq!(at(85.01).unwrap().level, Level::Amber);
    assert_eq!(at(96.0).unwrap().level, Level::Red);
    let zero = Thresholds {
        disk_percent: 0.0,
        ..limits()
    };
    let any = AlertInputs {
        disk_used_percent: Some(0.5),
        ..Default::default()
    };
    assert!(disk_rule(&any, &zero).is_some());
}

#[test]
fn error_rate_fires_above_the_threshold_only_when_known() {
    let t = limits();
    let at = |r| {
        error_rate_rule(
            &AlertInputs {
                http_error_rate: Some(r),
                ..Default::default()
            },
            &t,
        )
    };
    assert_eq!(at(0.05), None);
    assert_eq!(at(0.06).unwrap().level, Level::Amber);
    assert_eq!(at(0.5).unwrap().level, Level::Red);
    assert_eq!(error_rate_rule(&AlertInputs::default(), &t), None);
}

#[test]
fn each_crash_looping_service_is_its_own_alert() {
    let i = AlertInputs {
        services: vec![
            ("mysql".into(), State::CrashLoop),
            ("milvus".into(), State::Backoff),
            ("web".into(), State::CrashLoop),
        ],
        ..Default::default()
    };
    assert_eq!(
        keys(&crash_loop_rules(&i)),
        ["crash-loop:mysql", "crash-loop:web"]
    );
}

#[test]
fn backups_fire_on_failure_and_when_overdue() {
    let day = 86_400;
    let now = 10 * day;
    let with = |b: BackupInputs| AlertInputs {
        backup: Some(b),
        ..Default::default()
    };
    let ok = BackupInputs {
        last_success: Some(now - day),
        interval_secs: day as u64,
        ..Default::default()
    };
    assert!(backup_rules(&with(ok.clone()), now).is_empty());
    let edge = BackupInputs {
        last_success: Some(now - day - BACKUP_GRACE_SECS),
        ..ok.clone()
    };
    assert!(
        backup_rules(&with(edge), now).is_empty(),
        "exactly at the grace: not yet"
    );
    let late = BackupInputs {
        last_success: Some(now - day - BACKUP_GRACE_SECS - 1),
        ..ok.clone()
    };
    assert_eq!(keys(&backup_rules(&with(late), now)), ["backup-overdue"]);
    let failed = BackupInputs {
        last_failure: Some(now - 10),
        last_error: Some("disk full".into()),
        ..ok.clone()
    };
    let c = backup_rules(&with(failed), now);
    assert_eq!(keys(&c), ["backup-failed"]);
    assert!(c[0].summary.contains("disk full"));
    let recovered = BackupInputs {
        last_failure: Some(now - 2 * day),
        ..ok
    };
    assert!(backup_rules(&with(recovered), now).is_empty());
    assert!(
        backup_rules(&AlertInputs::default(), now).is_empty(),
        "no backups: quiet"
    );
}

fn cond(key: &str, level: Level) -> Condition {
    Condition {
        key: key.into(),
        level,
        summary: format!("{key} holds"),
    }
}

/// Apply a plan to the stored rows, as the store does.
fn apply(stored: &mut Vec<AlertRow>, changes: &[plan::Change]) {
    for c in changes {
        stored.retain(|r| r.alert_key != c.row.alert_key);
        stored.push(c.row.clone());
    }
}

#[test]
fn an_alert_fires_once_holds_quietly_reminds_and_recovers_once() {
    let mut stored = Vec::new();
    let disk = [cond("disk-full", Level::Amber)];
    let remind = 3600;
    let p = plan(&stored, &disk, &[], 1000, remind);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].notify, Some(Kind::Firing));
    assert_eq!(p[0].row.count, 1);
    apply(&mut stored, &p);
    // Held: nothing to write, nothing to say.
    assert!(plan(&stored, &disk, &[], 1030, remind).is_empty());
    assert!(plan(&stored, &disk, &[], 1000 + 3599, remind).is_empty());
    // The reminder is due exactly at remind_after.
    let p = plan(&stored, &disk, &[], 1000 + 3600, remind);
    assert_eq!(p[0].notify, Some(Kind::Reminder));
    apply(&mut stored, &p);
    assert!(plan(&stored, &disk, &[], 1000 + 3601, remind).is_empty());
    // Cleared: one recovery notice, then silence.
    let p = plan(&stored, &[], &[], 9000, remind);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].notify, Some(Kind::Resolved));
    assert_eq!(p[0].row.state, "resolved");
    assert_eq!(p[0].row.since, 9000);
    apply(&mut stored, &p);
    assert!(plan(&stored, &[], &[], 9030, remind).is_empty());
    // Fires again: counted.
    let p = plan(&stored, &disk, &[], 9060, remind);
    assert_eq!((p[0].notify, p[0].row.count), (Some(Kind::Firing), 2));
}

#[test]
fn no_reminders_when_switched_off_and_a_rise_to_red_is_notified() {
    let mut stored = Vec::new();
    let p = plan(&stored, &[cond("disk-full", Level::Amber)], &[], 0, 0);
    apply(&mut stored, &p);
    assert!(
        plan(
            &stored,
            &[cond("disk-full", Level::Amber)],
            &[],
            1_000_000,
            0
        )
        .is_empty()
    );
    let p = plan(&stored, &[cond("disk-full", Level::Red)], &[], 10, 0);
    assert_eq!(
        (p[0].notify, p[0].row.level.as_str()),
        (Some(Kind::Firing), "red")
    );
    apply(&mut stored, &p);
    // Back down to amber: recorded, not notified.
    let p = plan(&stored, &[cond("disk-full", Level::Amber)], &[], 20, 0);
    assert_eq!((p[0].notify, p[0].row.level.as_str()), (None, "amber"));
}

#[test]
fn a_changed_summary_is_written_without_a_notice() {
    let mut stored = Vec::new();
    let p = plan(&stored, &[cond("a", Level::Amber)], &[], 0, 3600);
    apply(&mut stored, &p);
    let mut c = cond("a", Level::Amber);
    c.summary = "now 90 %".into();
    let p = plan(&stored, &[c], &[], 10, 3600);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].notify, None);
    assert_eq!(p[0].row.last_notified, Some(0));
    assert_eq!(p[0].row.summary, "now 90 %");
}

#[test]
fn inputs_from_a_snapshot_skip_the_temporary_certificate() {
    use crate::ops::status::TlsView;
    let waiting = TlsView {
        mode: "acme".into(),
        issued: false,
        days_left: Some(1),
        ..Default::default()
    };
    let issued = TlsView {
        issued: true,
        ..waiting.clone()
    };
    // Built from JSON so that fields other modules add to the snapshot do not matter here.
    let snap = |tls: TlsView| -> Snapshot {
        let check = serde_json::json!({"ok": true, "detail": ""});
        serde_json::from_value(serde_json::json!({
            "version": "", "pid": 0, "started_at": 0, "uptime_secs": 0, "rss_bytes": null,
            "config_path": "", "data_dir": "", "web_url": "", "local_mode": false,
            "services": [], "checks": [], "tls": tls,
            "readiness": {"ready": true, "mysql": check, "migrations": check, "milvus": check},
        }))
        .unwrap()
    };
    assert_eq!(
        AlertInputs::from_snapshot(&snap(waiting)).cert_days_left,
        None
    );
    assert_eq!(
        AlertInputs::from_snapshot(&snap(issued)).cert_days_left,
        Some(1)
    );
}

#[test]
fn disk_usage_is_measured() {
    let p = disk_used_percent(std::path::Path::new("/")).unwrap();
    assert!((0.0..=100.0).contains(&p), "{p}");
}

#[test]
fn a_service_between_states_neither_resolves_nor_fires_again() {
    let looping = AlertInputs {
        services: vec![("milvus".into(), State::CrashLoop)],
        ..Default::default()
    };
    let t = limits();
    let mut stored = Vec::new();
    let p = plan(
        &stored,
        &evaluate(&looping, &t, 0),
        &unsettled(&looping),
        0,
        3600,
    );
    assert_eq!(p[0].notify, Some(Kind::Firing));
    apply(&mut stored, &p);
    // soko restarted: the service starts again and fails again before it is a loop again.
    for state in [State::Starting, State::Backoff, State::Starting] {
        let i = AlertInputs {
            services: vec![("milvus".into(), state)],
            ..Default::default()
        };
        assert!(plan(&stored, &evaluate(&i, &t, 10), &unsettled(&i), 10, 3600).is_empty());
    }
    assert!(
        plan(
            &stored,
            &evaluate(&looping, &t, 20),
            &unsettled(&looping),
            20,
            3600
        )
        .is_empty()
    );
    // Running again: resolved.
    let up = AlertInputs {
        services: vec![("milvus".into(), State::Running)],
        ..Default::default()
    };
    let p = plan(&stored, &evaluate(&up, &t, 30), &unsettled(&up), 30, 3600);
    assert_eq!(p[0].notify, Some(Kind::Resolved));
}

#[test]
fn status_text_lists_alerts_by_level_and_firing_ones_set_the_level() {
    use crate::ops::status::render_text;
    let check = serde_json::json!({"ok": true, "detail": ""});
    let alert = |key: &str, level: &str, state: &str| serde_json::json!({"key": key, "level": level, "state": state, "summary": format!("{key} summary"), "since": 0, "count": 1});
    let mut snap: Snapshot = serde_json::from_value(serde_json::json!({
        "version": "0.1.0", "pid": 1, "started_at": 0, "uptime_secs": 5, "rss_bytes": null,
        "config_path": "a.yaml", "data_dir": "/d", "web_url": "http://x", "local_mode": true,
        "services": [], "checks": [],
        "readiness": {"ready": true, "mysql": check, "migrations": check, "milvus": check},
        "alerts": [alert("disk-full", "amber", "firing"), alert("crash-loop:mysql", "red", "resolved")],
    }))
    .unwrap();
    assert_eq!(
        snap.level(),
        Level::Amber,
        "a resolved red alert does not count"
    );
    let text = render_text(&snap, 10);
    assert!(text.contains("ALERTS"), "{text}");
    assert!(text.contains("AMBER disk-full"), "{text}");
    assert!(text.contains("ok    crash-loop:mysql"), "{text}");
    assert!(text.contains("resolved"), "{text}");
    snap.alerts[0].level = Level::Red;
    assert_eq!(snap.level(), Level::Red);
    assert!(render_text(&snap, 10).contains("RED   disk-full"));
}

#[test]
fn the_catalogue_recheck_fires_when_no_round_completed_within_its_limit() {
    let view = |lag| crate::ops::catalogue_view::CatalogueView {
        recheck_lag_secs: lag,
        alert_after_secs: 24 * 3600,
        ..Default::default()
    };
    let snap = |lag| Snapshot {
        catalogue: Some(view(lag)),
        ..crate::console::sample::snapshot()
    };
    let fired = |lag| evaluate(&AlertInputs::from_snapshot(&snap(lag)), &limits(), 0);
    assert!(
        !keys(&fired(None)).contains(&"catalogue-recheck"),
        "nothing imported"
    );
    assert!(!keys(&fired(Some(23 * 3600))).contains(&"catalogue-recheck"));
    let c = fired(Some(30 * 3600));
    let c = c.iter().find(|c| c.key == "catalogue-recheck").unwrap();
    assert_eq!(c.level, Level::Amber);
    assert!(c.summary.contains("30 h"), "{}", c.summary);
}
