//! A whole `soko up`: ordered start, status over the admin socket, graceful ordered stop, and a
//! clean start after `soko up` itself was killed with SIGKILL.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::common::{Appliance, alive};

#[tokio::test]
async fn up_serves_reports_status_and_stops_in_reverse_order() {
    let http = reqwest::Client::new();
    let mut app = Appliance::prepare("boot", |_| {});
    app.start();
    app.wait_ready(&http, Duration::from_secs(90)).await;

    let (code, status) = app.status();
    assert_eq!(code, 0, "{status}");
    for name in ["mysql", "milvus"] {
        let s = app.service(name);
        assert_eq!(s["state"], "running", "{status}");
        assert_eq!(s["ready"], true, "{status}");
        assert!(s["rss_bytes"].as_u64().unwrap() > 0);
    }
    // Text status, the admin socket's mode, the secrets' mode.
    let text = app.command(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("healthy"), "{text}");
    let sock = app.cfg.admin_socket();
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(app.cfg.secrets_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // Root is reachable over the unix socket only; the app user only over loopback TCP.
    let secrets = soko::config::secrets::Secrets::load(&app.cfg.secrets_path()).unwrap();
    let root = secrets.mysql_root_password.unwrap();
    let tcp_root = sqlx::mysql::MySqlConnectOptions::new()
        .host("127.0.0.1")
        .port(app.cfg.database.embedded.port)
        .username("root")
        .password(root.expose());
    assert!(
        <sqlx::MySqlConnection as sqlx::Connection>::connect_with(&tcp_root)
            .await
            .is_err(),
        "root must not log in over TCP"
    );
    let socket = soko::supervisor::mysql::Paths::new(&app.cfg).socket;
    let mut conn = soko::store::admin::connect_root(&socket, root.expose())
        .await
        .unwrap();
    let users: Vec<(String, String)> =
        sqlx::query_as("SELECT user, host FROM mysql.user ORDER BY 1, 2")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let users: Vec<String> = users.into_iter().map(|(u, h)| format!("{u}@{h}")).collect();
    assert_eq!(
        users,
        [
            "mariadb.sys@localhost",
            "root@localhost",
            "soko@127.0.0.1",
            "soko_owner@127.0.0.1"
        ]
    );

    // Ordered start in the log: MySQL ready before Milvus started.
    let log = app.log_text();
    let mysql_ready = log
        .find("ready service=\"mysql\"")
        .expect("mysql ready logged");
    let milvus_started = log
        .find("started service=\"milvus\"")
        .expect("milvus start logged");
    assert!(
        mysql_ready < milvus_started,
        "MySQL must be ready before Milvus starts"
    );
    // Child output is captured into the appliance log, tagged by service.
    assert!(log.contains("soko::child") && log.contains("service=\"mysql\""));
    let files: Vec<String> = std::fs::read_dir(app.cfg.log_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().any(|f| f.starts_with("combined.")),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f.starts_with("error.")), "{files:?}");

    let pids: Vec<i64> = ["mysql", "milvus"]
        .iter()
        .map(|n| app.service(n)["pid"].as_i64().unwrap())
        .collect();
    app.signal(Signal::SIGTERM);
    let code = app.wait_exit(Duration::from_secs(40)).await;
    assert_eq!(code, Some(0), "{}", app.log_text());
    for pid in pids {
        assert!(!alive(pid), "child {pid} outlived soko");
    }
    let log = app.log_text();
    let stopped = |name: &str| {
        log.lines()
            .position(|l| l.contains("stopped: ") && l.contains(&format!("service=\"{name}\"")))
            .unwrap_or_else(|| panic!("no stop of {name} logged"))
    };
    assert!(
        stopped("milvus") < stopped("mysql"),
        "Milvus must stop before MySQL"
    );
    assert!(
        log.contains("Shutdown complete"),
        "MariaDB must shut down cleanly"
    );
    assert!(!app.cfg.admin_socket().exists());
}

#[tokio::test]
async fn after_soko_is_killed_the_next_start_is_clean() {
    let http = reqwest::Client::new();
    let mut app = Appliance::prepare("kill-soko", |_| {});
    app.start();
    app.wait_ready(&http, Duration::from_secs(90)).await;
    let pids: Vec<i64> = ["mysql", "milvus"]
        .iter()
        .map(|n| app.service(n)["pid"].as_i64().unwrap())
        .collect();
    app.signal(Signal::SIGKILL);
    app.wait_exit(Duration::from_secs(5)).await;
    // A second `soko up` at once: it must clean up whatever is left and come up.
    app.start();
    app.wait_ready(&http, Duration::from_secs(90)).await;
    for pid in pids {
        assert!(
            !alive(pid),
            "orphan {pid} from the killed soko is still running"
        );
    }
    let (code, status) = app.status();
    assert_eq!(code, 0, "{status}");
    // Only one `soko up` per data directory.
    let second = app.command(&["up"]).output().unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already running"));
}

/// Both stores external (as with TiDB Cloud and Zilliz Cloud): no children at all, and the
/// appliance migrates the database and creates the collection on them.
#[tokio::test]
async fn up_with_external_database_and_vector_store() {
    use soko::config::Mode;
    let http = reqwest::Client::new();
    let (_, db_cfg) = crate::common::test_db().await;
    let shared = crate::common::shared();
    let collection = format!("ext_{}", crate::common::random_suffix());
    let mut app = Appliance::prepare("external", |c| {
        c.database.mode = Mode::External;
        c.database.url = format!(
            "mysql://{}@127.0.0.1:{}/{}",
            db_cfg.database.user, db_cfg.database.embedded.port, db_cfg.database.name
        );
        c.vectors.mode = Mode::External;
        c.vectors.url = format!("http://127.0.0.1:{}", shared.cfg.vectors.embedded.port);
        c.vectors.collection = collection.clone();
    });
    app.start_on_shared_database();
    app.wait_ready(&http, Duration::from_secs(60)).await;
    let (code, status) = app.status();
    assert_eq!(code, 0, "{status}");
    for s in status["services"].as_array().unwrap() {
        assert_eq!(s["state"], "external", "{status}");
        assert!(s["pid"].is_null());
    }
    assert!(!app.cfg.data_dir.join("mysql").exists());
    app.signal(Signal::SIGTERM);
    assert_eq!(app.wait_exit(Duration::from_secs(20)).await, Some(0));
}
