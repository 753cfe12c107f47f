//! Readiness: MySQL reachable with migrations current, and the vector collection present and
//! loaded. Served as `/readyz` and shown by `soko status`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;

use crate::store;
use crate::supervisor::{State, Status};
use crate::vectors::VectorStore;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub mysql: Check,
    pub migrations: Check,
    pub milvus: Check,
}

/// Whether `soko up`'s start-up work on the database is done: provisioned, migrated, and the
/// application user given its rights on the tables the migrations made. Migrations alone being
/// current is not enough: between them and the grants the app user cannot write (a test saw
/// `UPDATE command denied` there), so until then the node is not ready.
#[derive(Debug, Clone)]
pub struct Startup(Arc<AtomicBool>);

impl Startup {
    /// `soko up`: not done until [`finish`](Self::finish).
    pub fn pending() -> Startup {
        Startup(Arc::new(AtomicBool::new(false)))
    }

    /// Nothing to wait for (a web app on a database someone else prepared: tests, benches).
    pub fn finished() -> Startup {
        Startup(Arc::new(AtomicBool::new(true)))
    }

    pub fn finish(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_finished(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// A supervised service that is down (restarting, backing off) is not ready, whatever a
/// connection attempt would eventually say after waiting for it to come back.
fn supervised_down(services: &[Status], name: &str) -> Option<Check> {
    let s = services.iter().find(|s| s.name == name)?;
    if s.ready || s.state == State::External {
        return None;
    }
    let state = serde_json::to_value(s.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    Some(Check {
        ok: false,
        detail: match (&s.last_exit, &s.last_error) {
            (_, Some(e)) => format!("{name} is {state}: {e}"),
            (Some(exit), None) => format!("{name} is {state} ({exit})"),
            (None, None) => format!("{name} is {state}"),
        },
    })
}

/// Down now, or restarted since `before`.
fn changed(before: &[Status], after: &[Status], name: &str) -> Option<Check> {
    if let Some(down) = supervised_down(after, name) {
        return Some(down);
    }
    let restarts = |list: &[Status]| list.iter().find(|s| s.name == name).map(|s| s.restarts);
    (restarts(before) != restarts(after)).then(|| Check {
        ok: false,
        detail: format!("{name} restarted during the check"),
    })
}

/// Runs the three checks concurrently, each bounded in time. `services`: the supervisor's view
/// of the embedded servers (empty for external ones).
///
/// `live` reads the supervisor's current view; it is read before and after the checks, so a
/// server that died and came back while a check waited on it still counts as a failure.
pub async fn check(
    db: &MySqlPool,
    vectors: &VectorStore,
    startup: &Startup,
    live: impl Fn() -> Vec<Status>,
) -> Readiness {
    let before = live();
    let mysql_down = supervised_down(&before, "mysql");
    let milvus_down = supervised_down(&before, "milvus");
    let database = async {
        if let Some(down) = mysql_down {
            return (
                down,
                Check {
                    ok: false,
                    detail: "unknown while MySQL is unreachable".into(),
                },
            );
        }
        match store::ping(db).await {
            Err(e) => (
                Check {
                    ok: false,
                    detail: e.to_string(),
                },
                Check {
                    ok: false,
                    detail: "unknown while MySQL is unreachable".into(),
                },
            ),
            Ok(()) => {
                let mysql = Check {
                    ok: true,
                    detail: "reachable".into(),
                };
                let migrations = match store::migrate::status(db).await {
                    Ok(s) if s.current() && !startup.is_finished() => Check {
                        ok: false,
                        detail: format!(
                            "at version {}; granting the application its rights",
                            s.applied
                        ),
                    },
                    Ok(s) if s.current() => Check {
                        ok: true,
                        detail: format!("at version {}", s.applied),
                    },
                    Ok(s) if !s.unknown.is_empty() => Check {
                        ok: false,
                        detail: format!(
                            "database has versions {:?} this soko does not know",
                            s.unknown
                        ),
                    },
                    Ok(s) => Check {
                        ok: false,
                        detail: format!("pending versions {:?}", s.pending),
                    },
                    Err(e) => Check {
                        ok: false,
                        detail: e.to_string(),
                    },
                };
                (mysql, migrations)
            }
        }
    };
    let vectors_check = async {
        if let Some(down) = milvus_down {
            return down;
        }
        match tokio::time::timeout(CHECK_TIMEOUT, vectors.health()).await {
            Err(_) => Check {
                ok: false,
                detail: "timed out".into(),
            },
            Ok(Err(e)) => Check {
                ok: false,
                detail: e.to_string(),
            },
            Ok(Ok(h)) if h.loaded => Check {
                ok: true,
                detail: format!("collection {} loaded", h.collection),
            },
            Ok(Ok(h)) if h.exists => Check {
                ok: false,
                detail: format!("collection {} not loaded", h.collection),
            },
            Ok(Ok(h)) => Check {
                ok: false,
                detail: format!("collection {} missing", h.collection),
            },
        }
    };
    let ((mut mysql, mut migrations), mut milvus) = tokio::join!(database, vectors_check);
    let after = live();
    if let Some(down) = changed(&before, &after, "mysql") {
        mysql = down;
        migrations.ok = false;
    }
    if let Some(down) = changed(&before, &after, "milvus") {
        milvus = down;
    }
    Readiness {
        ready: mysql.ok && migrations.ok && milvus.ok,
        mysql,
        migrations,
        milvus,
    }
}
