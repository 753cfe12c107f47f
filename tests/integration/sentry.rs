//! Error tracking against a real HTTP endpoint in the test that receives Sentry envelopes (as a
//! self-hosted Sentry or GlitchTip would): errors and panics arrive with the release and the
//! environment; without a DSN nothing is sent.

use std::time::Duration;

use soko::config::alerts::Sentry;
use tracing_subscriber::layer::SubscriberExt;

use crate::common::{Appliance, test_db};
use crate::receivers::{HttpSink, Request};

fn dsn(sink: &HttpSink) -> String {
    format!(
        "http://0123456789abcdef@{}/42",
        sink.url.trim_start_matches("http://")
    )
}

fn has(r: &[Request], needle: &str) -> bool {
    r.iter().any(|r| r.text().contains(needle))
}

fn force_error_and_panic(tag: &str) {
    let subscriber = tracing_subscriber::registry().with(soko::telemetry::sentry_layer());
    tracing::subscriber::with_default(subscriber, || {
        tracing::error!(code = 7, "forced error {tag}");
    });
    let tag = tag.to_owned();
    let _ = std::thread::spawn(move || panic!("forced panic {tag}")).join();
}

#[test]
fn errors_and_panics_reach_sentry_with_release_and_environment_and_nothing_without_a_dsn() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = rt.block_on(HttpSink::start());

    // No DSN: no client, no traffic.
    force_error_and_panic("without-dsn");
    std::thread::sleep(Duration::from_secs(1));
    assert!(sink.all().is_empty(), "sent without a DSN");

    let cfg = Sentry {
        environment: "sentry-test".into(),
        sample_rate: 1.0,
    };
    assert!(soko::telemetry::sentry_guard("not a dsn", &cfg).is_err());
    let guard = soko::telemetry::sentry_guard(&dsn(&sink), &cfg).unwrap();
    force_error_and_panic("with-dsn");
    drop(guard); // flushes
    let got = rt.block_on(
        sink.wait_for(Duration::from_secs(20), "error and panic", |r| {
            has(r, "forced error with-dsn") && has(r, "forced panic with-dsn")
        }),
    );
    for needle in ["forced error with-dsn", "forced panic with-dsn"] {
        let r = got.iter().find(|r| r.text().contains(needle)).unwrap();
        assert_eq!(r.path, "/api/42/envelope/");
        let text = r.text();
        assert!(
            text.contains(&format!(
                "\"release\":\"soko@{}\"",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(text.contains("\"environment\":\"sentry-test\""), "{text}");
    }
    assert!(!has(&got, "without-dsn"), "nothing from before the DSN");
}

/// `soko up` with `SOKO_SENTRY_DSN`: a service that dies is an error event in Sentry.
#[tokio::test]
async fn soko_up_reports_errors_when_a_dsn_is_set() {
    use soko::config::Mode;
    let (_, db_cfg) = test_db().await;
    let shared = crate::common::shared();
    let url = format!(
        "mysql://{}@127.0.0.1:{}/{}",
        db_cfg.database.user, db_cfg.database.embedded.port, db_cfg.database.name
    );
    let sink = HttpSink::start().await;
    let mut app = Appliance::prepare("sentry-up", |c| {
        c.database.mode = Mode::External;
        c.database.url = url.clone();
        c.vectors.embedded.command = "/bin/false".into();
        c.supervisor.crash_loop_after = 2;
        c.supervisor.backoff_initial_ms = 50;
        c.supervisor.backoff_max_secs = 1;
        c.supervisor.start_timeout_secs = 5;
        c.sentry.environment = "ci".into();
    });
    let password = shared
        .secrets
        .database_password
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    let dsn = dsn(&sink);
    app.start_with_env(&[
        ("SOKO_DATABASE_PASSWORD", password.as_str()),
        ("SOKO_SENTRY_DSN", dsn.as_str()),
    ]);
    let got = sink
        .wait_for(
            Duration::from_secs(60),
            "milvus's death as an error event",
            |r| has(r, "died: exited with code 1"),
        )
        .await;
    let r = got
        .iter()
        .find(|r| r.text().contains("died: exited"))
        .unwrap();
    let text = r.text();
    assert!(text.contains("\"environment\":\"ci\""), "{text}");
    assert!(text.contains("soko@"), "{text}");
    assert!(
        app.log_text().contains("error tracking on"),
        "{}",
        app.log_text()
    );
}
