//! Alerts against real parts: the evaluator on a real MariaDB database, notices to a real HTTP
//! server (webhook) and a real SMTP server in the test; and a whole `soko up` whose disk rule
//! is set to fire (threshold 0 %) and whose Milvus crash-loops, restarted to show that the
//! de-duplication survives restarts.

use std::time::Duration;

use soko::config::Config;
use soko::config::alerts::SmtpSecurity;
use soko::config::secrets::{Secret, Secrets};
use soko::ops::alerts::deliver::{SIGNATURE_HEADER, sign};
use soko::ops::alerts::engine::Engine;
use soko::ops::alerts::{AlertInputs, BackupInputs};
use soko::store;

use crate::common::{Appliance, test_db};
use crate::receivers::{HttpSink, Request, SmtpSink};

fn wire(cfg: &mut Config, hook: &HttpSink, smtp: &SmtpSink) {
    cfg.alerts.webhook.url = format!("{}/hooks/soko", hook.url);
    cfg.alerts.webhook.retries = 0;
    cfg.alerts.webhook.timeout_secs = 5;
    cfg.alerts.email.host = "127.0.0.1".into();
    cfg.alerts.email.port = smtp.port;
    cfg.alerts.email.security = SmtpSecurity::None;
    cfg.alerts.email.from = "soko@localhost".into();
    cfg.alerts.email.to = vec!["ops@example.co.ke".into()];
}

fn of(requests: &[Request], alert: &str, kind: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.json()["alert"] == alert && r.json()["kind"] == kind)
        .count()
}

fn secrets() -> Secrets {
    Secrets {
        alerts_webhook_secret: Some(Secret::new("hook-key")),
        ..Secrets::default()
    }
}

#[tokio::test]
async fn an_alert_is_notified_once_reminded_and_recovered_through_webhook_and_email() {
    let (db, mut cfg) = test_db().await;
    store::migrate::run(&db).await.unwrap();
    let (hook, smtp) = (HttpSink::start().await, SmtpSink::start().await);
    wire(&mut cfg, &hook, &smtp);
    cfg.alerts.disk_percent = 0.0;
    cfg.alerts.remind_after_secs = 3600;
    let now = 1_900_000_000;
    let engine = Engine::new(db.clone(), &cfg, &secrets());

    let r = engine.round(AlertInputs::default(), now).await.unwrap();
    assert_eq!((r.queued, r.sent, r.failed), (2, 2, 0), "{r:?}");
    let got = hook.all();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/hooks/soko");
    let body = got[0].json();
    assert_eq!(body["kind"], "firing");
    assert_eq!(body["alert"], "disk-full");
    assert_eq!(body["count"], 1);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let signature = got[0].headers[SIGNATURE_HEADER].to_str().unwrap();
    assert_eq!(
        signature,
        format!("sha256={}", sign(b"hook-key", &got[0].body))
    );
    let mails = smtp.all();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].to[0].contains("ops@example.co.ke"),
        "{:?}",
        mails[0]
    );
    assert!(
        mails[0].from.contains("soko@localhost"),
        "the envelope sender is alerts.email.from: {:?}",
        mails[0]
    );
    assert!(
        mails[0].data.contains("FIRING: disk-full"),
        "{}",
        mails[0].data
    );

    // A second round, and a new evaluator on the same database (a restart): nothing new.
    engine
        .round(AlertInputs::default(), now + 30)
        .await
        .unwrap();
    let restarted = Engine::new(db.clone(), &cfg, &secrets());
    let r = restarted
        .round(AlertInputs::default(), now + 60)
        .await
        .unwrap();
    assert_eq!((r.firing, r.queued), (1, 0), "{r:?}");
    assert_eq!(hook.all().len(), 1);
    assert_eq!(smtp.all().len(), 1);

    // Still firing after remind_after_secs: one reminder.
    restarted
        .round(AlertInputs::default(), now + 3600)
        .await
        .unwrap();
    restarted
        .round(AlertInputs::default(), now + 3630)
        .await
        .unwrap();
    assert_eq!(of(&hook.all(), "disk-full", "reminder"), 1);

    // Cleared: one recovery notice on each channel, then silence.
    cfg.alerts.disk_percent = 100.0;
    let cleared = Engine::new(db.clone(), &cfg, &secrets());
    cleared
        .round(AlertInputs::default(), now + 3700)
        .await
        .unwrap();
    cleared
        .round(AlertInputs::default(), now + 3730)
        .await
        .unwrap();
    let got = hook.all();
    assert_eq!(
        got.len(),
        3,
        "{:?}",
        got.iter().map(Request::text).collect::<Vec<_>>()
    );
    assert_eq!(of(&got, "disk-full", "firing"), 1);
    assert_eq!(of(&got, "disk-full", "resolved"), 1);
    let mails = smtp.all();
    assert_eq!(mails.len(), 3);
    assert!(
        mails[2].data.contains("RESOLVED: disk-full"),
        "{}",
        mails[2].data
    );
    let views = cleared.views();
    let views = views.read().unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!((views[0].state.as_str(), views[0].count), ("resolved", 1));
}

#[tokio::test]
async fn backup_and_certificate_rules_fire_from_their_inputs() {
    let (db, mut cfg) = test_db().await;
    store::migrate::run(&db).await.unwrap();
    let (hook, smtp) = (HttpSink::start().await, SmtpSink::start().await);
    wire(&mut cfg, &hook, &smtp);
    cfg.alerts.disk_percent = 100.0;
    let now = 1_900_000_000;
    let inputs = AlertInputs {
        cert_days_left: Some(5),
        backup: Some(BackupInputs {
            last_success: Some(now - 3 * 86_400),
            last_failure: Some(now - 600),
            last_error: Some("no room left on device".into()),
            interval_secs: 86_400,
        }),
        http_error_rate: Some(0.2),
        ..AlertInputs::default()
    };
    let engine = Engine::new(db.clone(), &cfg, &Secrets::default());
    let r = engine.round(inputs, now).await.unwrap();
    assert_eq!(r.firing, 4, "{r:?}");
    let got = hook.all();
    for key in [
        "cert-expiring",
        "backup-failed",
        "backup-overdue",
        "http-error-rate",
    ] {
        assert_eq!(of(&got, key, "firing"), 1, "{key}");
    }
    assert!(
        got.iter()
            .all(|r| !r.headers.contains_key(SIGNATURE_HEADER)),
        "no secret, no signature"
    );
}

#[tokio::test]
async fn an_undeliverable_notice_waits_in_the_outbox_and_is_sent_later() {
    let (db, mut cfg) = test_db().await;
    store::migrate::run(&db).await.unwrap();
    let (hook, smtp) = (HttpSink::start().await, SmtpSink::start().await);
    wire(&mut cfg, &hook, &smtp);
    cfg.alerts.disk_percent = 0.0;
    hook.answer(503);
    let engine = Engine::new(db.clone(), &cfg, &Secrets::default());
    let r = engine
        .round(AlertInputs::default(), 1_900_000_000)
        .await
        .unwrap();
    assert_eq!(
        (r.sent, r.failed),
        (1, 1),
        "email sent, webhook failed: {r:?}"
    );
    let stats = store::alerts::notice_stats(&db).await.unwrap();
    assert_eq!((stats.pending, stats.sent), (1, 1));
    let (attempts, error): (u32, String) = sqlx::query_as(
        "SELECT attempts, last_error FROM alert_notifications WHERE channel = 'webhook'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(attempts, 1);
    assert!(error.contains("503"), "{error}");
    // Not due yet: nothing is tried.
    assert_eq!(engine.flush().await.unwrap(), (0, 0));
    // The receiver is back and the retry time has come (brought forward here).
    hook.answer(200);
    sqlx::query("UPDATE alert_notifications SET next_attempt_at = UTC_TIMESTAMP(3)")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(engine.flush().await.unwrap(), (1, 0));
    assert_eq!(
        of(&hook.all(), "disk-full", "firing"),
        2,
        "one refused, one accepted"
    );
    assert_eq!(smtp.all().len(), 1, "email was not sent twice");
    let stats = store::alerts::notice_stats(&db).await.unwrap();
    assert_eq!((stats.pending, stats.sent), (0, 2));
}

/// The whole appliance: a disk rule set to fire and a Milvus that crash-loops. Each alert is
/// notified once, across evaluation rounds and across a restart of soko; `soko status` shows
/// them; clearing the disk condition sends one recovery notice.
#[tokio::test]
async fn soko_up_notifies_once_across_restarts_and_recovers() {
    use soko::config::Mode;
    let (_, db_cfg) = test_db().await;
    let shared = crate::common::shared();
    let url = format!(
        "mysql://{}@127.0.0.1:{}/{}",
        db_cfg.database.user, db_cfg.database.embedded.port, db_cfg.database.name
    );
    let (hook, smtp) = (HttpSink::start().await, SmtpSink::start().await);
    let mut app = Appliance::prepare("alerts-up", |c| {
        c.database.mode = Mode::External;
        c.database.url = url.clone();
        c.vectors.embedded.command = "/bin/false".into();
        c.supervisor.crash_loop_after = 2;
        c.supervisor.backoff_initial_ms = 50;
        c.supervisor.backoff_max_secs = 1;
        c.supervisor.start_timeout_secs = 5;
        c.alerts.interval_secs = 1;
        c.alerts.disk_percent = 0.0;
        wire(c, &hook, &smtp);
    });
    let password = shared
        .secrets
        .database_password
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    let env = [("SOKO_DATABASE_PASSWORD", password.as_str())];
    app.start_with_env(&env);
    let t = Duration::from_secs(90);
    hook.wait_for(t, "disk and crash-loop alerts", |r| {
        of(r, "disk-full", "firing") == 1 && of(r, "crash-loop:milvus", "firing") == 1
    })
    .await;
    smtp.wait_for(t, "two emails", |m| m.len() == 2).await;
    let (code, status) = app.status();
    assert_eq!(code, 1, "firing red alert: exit 1: {status}");
    let alerts = status["alerts"].as_array().unwrap();
    let disk = alerts.iter().find(|a| a["key"] == "disk-full").unwrap();
    assert_eq!(disk["state"], "firing", "{disk}");
    let text =
        String::from_utf8_lossy(&app.command(&["status"]).output().unwrap().stdout).into_owned();
    assert!(
        text.contains("ALERTS")
            && text.contains("RED   crash-loop:milvus")
            && text.contains("disk-full"),
        "{text}"
    );
    let checks = status["checks"].as_array().unwrap();
    for name in [
        "secrets",
        "rate-limit",
        "cors",
        "https",
        "error-tracking",
        "logging",
        "heartbeat",
        "backups",
        "alerts",
    ] {
        assert!(
            checks.iter().any(|c| c["name"] == name),
            "check {name} missing: {status}"
        );
    }
    // `soko doctor` lists the firing alerts with what to do.
    let out = app.command(&["doctor"]).output().unwrap();
    let doctor = String::from_utf8_lossy(&out.stdout);
    assert!(
        doctor.contains("FAIL  alert crash-loop:milvus")
            && doctor.contains("fix: fix the condition"),
        "{doctor}"
    );
    // More rounds, then a restart (SIGTERM, start again): Milvus crash-loops again after the
    // restart, and nothing is notified a second time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        app.wait_exit(Duration::from_secs(30)).await,
        Some(0),
        "{}",
        app.log_text()
    );
    app.start_with_env(&env);
    let start = std::time::Instant::now();
    while app.service("milvus")["state"] != "crash-loop" {
        assert!(
            start.elapsed() < t,
            "no crash loop after restart\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got = hook.all();
    assert_eq!(
        got.len(),
        2,
        "{:?}",
        got.iter().map(Request::text).collect::<Vec<_>>()
    );
    assert_eq!(smtp.all().len(), 2);

    // Clear the disk condition (threshold back to 100 %) and restart: one recovery notice;
    // Milvus still loops, so its alert stays firing and silent.
    app.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(app.wait_exit(Duration::from_secs(30)).await, Some(0));
    let text = std::fs::read_to_string(&app.config).unwrap();
    let text = text.replace("disk_percent: 0.0", "disk_percent: 100.0");
    assert!(text.contains("disk_percent: 100.0"), "{text}");
    std::fs::write(&app.config, text).unwrap();
    app.start_with_env(&env);
    let got = hook
        .wait_for(t, "the recovery notice", |r| {
            of(r, "disk-full", "resolved") == 1
        })
        .await;
    smtp.wait_for(t, "the recovery email", |m| m.len() == 3)
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got2 = hook.all();
    assert_eq!(got2.len(), got.len(), "nothing after the recovery");
    assert_eq!(got2.len(), 3);
    assert_eq!(of(&got2, "crash-loop:milvus", "resolved"), 0);
}

/// Email over STARTTLS to a relay whose certificate is trusted through
/// `alerts.email.extra_root`; without that root, the same relay is refused.
#[tokio::test]
async fn email_goes_over_starttls_to_a_trusted_relay() {
    let (db, mut cfg) = test_db().await;
    store::migrate::run(&db).await.unwrap();
    let smtp = SmtpSink::start_tls().await;
    let dir = crate::common::scratch("smtp-tls");
    let root = dir.join("relay.pem");
    std::fs::write(&root, smtp.cert_pem.as_ref().unwrap()).unwrap();
    cfg.alerts.email.host = "localhost".into();
    cfg.alerts.email.port = smtp.port;
    cfg.alerts.email.security = SmtpSecurity::Starttls;
    cfg.alerts.email.from = "soko@localhost".into();
    cfg.alerts.email.to = vec!["ops@example.co.ke".into()];
    cfg.alerts.disk_percent = 0.0;

    // Not trusted: the TLS handshake fails, the notice stays queued.
    let r = Engine::new(db.clone(), &cfg, &Secrets::default())
        .round(AlertInputs::default(), 1_900_000_000)
        .await
        .unwrap();
    assert_eq!((r.sent, r.failed), (0, 1), "{r:?}");
    assert!(smtp.all().is_empty());
    let error: String = sqlx::query_scalar("SELECT last_error FROM alert_notifications")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(error.to_lowercase().contains("certificate"), "{error}");

    cfg.alerts.email.extra_root = root;
    sqlx::query("UPDATE alert_notifications SET next_attempt_at = UTC_TIMESTAMP(3)")
        .execute(&db)
        .await
        .unwrap();
    let engine = Engine::new(db.clone(), &cfg, &Secrets::default());
    assert_eq!(engine.flush().await.unwrap(), (1, 0));
    let mails = smtp.all();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].tls, "sent after STARTTLS");
    assert!(
        mails[0].data.contains("FIRING: disk-full"),
        "{}",
        mails[0].data
    );
    let _ = std::fs::remove_dir_all(dir);
}
