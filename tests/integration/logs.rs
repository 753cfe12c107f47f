//! The appliance's logs: JSON lines in combined and error logs, a child service's output in
//! them tagged by service, and retention by count and total size applied at start.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant, SystemTime};

use soko::config::Mode;

use crate::common::{Appliance, test_db};

fn old_file(path: &std::path::Path, bytes: usize, age_days: u64) {
    std::fs::write(path, vec![b'{'; bytes]).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(age_days * 86_400))
        .unwrap();
}

fn names(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn child_output_lands_in_the_json_logs_and_old_logs_are_pruned() {
    let (_, db_cfg) = test_db().await;
    let url = format!(
        "mysql://{}@127.0.0.1:{}/{}",
        db_cfg.database.user, db_cfg.database.embedded.port, db_cfg.database.name
    );
    let mut app = Appliance::prepare("logs", |c| {
        c.database.mode = Mode::External;
        c.database.url = url.clone();
        c.supervisor.crash_loop_after = 2;
        c.supervisor.backoff_initial_ms = 50;
        c.supervisor.backoff_max_secs = 1;
        c.supervisor.start_timeout_secs = 5;
        c.logging.keep_files = 3;
        c.logging.max_total_mb = 1;
    });
    // A "Milvus" that says something on each stream and dies.
    let script = app.dir.join("noisy-child");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'child says hello'\necho '[ERROR] child failed on purpose' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    app.cfg.vectors.embedded.command = script.clone();
    std::fs::write(&app.config, serde_norway::to_string(&app.cfg).unwrap()).unwrap();
    // Old logs: six days of each, the newest old combined one large (over max_total_mb).
    let logs = app.cfg.log_dir();
    std::fs::create_dir_all(&logs).unwrap();
    for d in 1..=6u64 {
        let size = if d == 6 { 2 << 20 } else { 100 };
        old_file(
            &logs.join(format!("combined.2020-01-0{d}.log")),
            size,
            30 - d,
        );
        old_file(&logs.join(format!("error.2020-01-0{d}.log")), 100, 30 - d);
    }
    old_file(&logs.join("keep-me.txt"), 10, 60);

    app.start_on_shared_database();
    let today = {
        let t = time::OffsetDateTime::now_utc();
        format!("{}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
    };
    let combined = logs.join(format!("combined.{today}.log"));
    let errors = logs.join(format!("error.{today}.log"));
    let start = Instant::now();
    loop {
        let c = std::fs::read_to_string(&combined).unwrap_or_default();
        let e = std::fs::read_to_string(&errors).unwrap_or_default();
        let tagged = |text: &str, needle: &str| {
            text.lines().any(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                v["fields"]["service"] == "milvus"
                    && v["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(needle))
            })
        };
        if tagged(&c, "child says hello") && tagged(&e, "[ERROR] child failed") {
            assert!(
                !tagged(&e, "child says hello"),
                "info lines stay out of error.log"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "child output not in the logs\ncombined:\n{c}\nerror:\n{e}\n{}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Count: three per log are kept (today's and the two newest old ones); then size: the
    // oldest go until all fit in 1 MiB, which takes the large one too. Today's files stay.
    let start = Instant::now();
    loop {
        let c = names(&logs, "combined.");
        let e = names(&logs, "error.");
        if c.len() == 1 && e.len() == 2 {
            assert_eq!(c, [format!("combined.{today}.log")]);
            assert_eq!(
                e,
                [
                    "error.2020-01-06.log".to_string(),
                    format!("error.{today}.log")
                ]
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not pruned: {c:?} {e:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        logs.join("keep-me.txt").exists(),
        "other files are left alone"
    );
    let total: u64 = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(total < 1 << 20, "{total} bytes");
}
