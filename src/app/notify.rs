//! systemd's notify protocol (`Type=notify` in `systemd/soko.service`), written by hand: one
//! datagram per message to the unix socket named by `NOTIFY_SOCKET` (a path, or an abstract
//! name when it starts with '@'). Nothing happens when the variable is unset, so `soko up`
//! outside systemd is unchanged. Children never see the variable (`process_env`).
//!
//! - `STATUS=...` while starting (what is being waited for), `READY=1` once the readiness
//!   checks `/readyz` answers with pass (the web server is listening by then: it was bound in
//!   `build`, and the accept loop runs beside this task), then `STATUS=serving`;
//! - `WATCHDOG=1` every half of `WATCHDOG_USEC`, from a task that first proves the runtime
//!   schedules other tasks promptly and that every supervised service's supervisor task is
//!   alive; a wedged event loop or supervisor sends nothing, and systemd restarts soko;
//! - `STOPPING=1` when a stop signal arrives.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::supervisor;
use crate::web::AppState;

struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

fn notifier() -> Option<&'static Notifier> {
    static N: OnceLock<Option<Notifier>> = OnceLock::new();
    N.get_or_init(|| {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_str()?;
        let addr = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes())
            }
            None => SocketAddr::from_pathname(path),
        };
        let made = addr.and_then(|addr| Ok((UnixDatagram::unbound()?, addr)));
        match made {
            Ok((sock, addr)) => Some(Notifier { sock, addr }),
            Err(e) => {
                tracing::warn!("NOTIFY_SOCKET={path} unusable: {e}");
                None
            }
        }
    })
    .as_ref()
}

/// Send one message (`READY=1`, `STATUS=...`); nothing without `NOTIFY_SOCKET`.
pub fn send(message: &str) {
    if let Some(n) = notifier()
        && let Err(e) = n.sock.send_to_addr(message.as_bytes(), &n.addr)
    {
        tracing::debug!("sd_notify {message:?}: {e}");
    }
}

/// `STATUS=<what>`: shown by `systemctl status soko`.
pub fn status(what: &str) {
    send(&format!("STATUS={what}"));
}

/// The watchdog period systemd asked for (`WATCHDOG_USEC`, for this process when
/// `WATCHDOG_PID` is set).
fn watchdog_period() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Once `/readyz` would answer 200: `READY=1`. Until then `STATUS=` says what is awaited.
pub fn spawn_ready(state: AppState, stop: CancellationToken) {
    if notifier().is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut last = String::new();
        loop {
            let r = crate::ops::readiness::check(&state.db, &state.vectors, &state.startup, || {
                state.supervised_statuses()
            })
            .await;
            if r.ready {
                send("READY=1");
                status("serving");
                tracing::info!("told systemd: ready");
                return;
            }
            let waiting = [&r.mysql, &r.migrations, &r.milvus]
                .into_iter()
                .find(|c| !c.ok)
                .map(|c| format!("waiting: {}", c.detail))
                .unwrap_or_default();
            if waiting != last {
                status(&waiting);
                last = waiting;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                () = stop.cancelled() => return,
            }
        }
    });
}

/// The supervised services' status channels the watchdog checks (set once they exist).
fn supervised() -> &'static Mutex<Vec<watch::Receiver<supervisor::Status>>> {
    static S: OnceLock<Mutex<Vec<watch::Receiver<supervisor::Status>>>> = OnceLock::new();
    S.get_or_init(Mutex::default)
}

/// From now on the watchdog also checks these services' supervisors.
pub fn watch_supervisors(rx: Vec<watch::Receiver<supervisor::Status>>) {
    *supervised().lock().unwrap_or_else(|e| e.into_inner()) = rx;
}

/// `WATCHDOG=1` every half period while the runtime and the supervisors are alive; started
/// first thing in `build` (starting MariaDB and Milvus can take a while) and running until
/// the process ends.
pub fn spawn_watchdog() {
    let (Some(_), Some(period)) = (notifier(), watchdog_period()) else {
        return;
    };
    let every = period / 2;
    tokio::spawn(async move {
        let mut next = Instant::now() + every;
        loop {
            tokio::time::sleep_until(next.into()).await;
            let late = next.elapsed();
            next = Instant::now() + every;
            // The event loop: this task woke on time, and another task runs promptly.
            let scheduled = tokio::time::timeout(every / 2, tokio::spawn(async {})).await;
            // The supervisors: every service's supervising task still holds its channel.
            let supervisors = supervised()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .all(|rx| rx.has_changed().is_ok());
            if late < every / 2 && matches!(scheduled, Ok(Ok(()))) && supervisors {
                send("WATCHDOG=1");
            } else {
                tracing::warn!(
                    late_ms = late.as_millis() as u64,
                    supervisors,
                    "watchdog: runtime or supervisor not answering; no ping"
                );
            }
        }
    });
}
