//! One accept loop for every listener (`http.listen`, HTTPS on 443, port 80), so that all three
//! hold the same limits (`http:` in appliance.yaml) against slow, stuck and piled-up clients:
//!
//! - hyper with a timer: a client has `header_read_timeout_secs` to send a request's headers
//!   (hyper times each request's headers from the moment the connection is free, so this is
//!   also how long an HTTP/1.1 keep-alive connection waits for its next request);
//! - the same bound before the first request (TLS handshake and protocol detection included,
//!   which hyper's own timer does not cover), then `idle_timeout_secs` with no request in
//!   progress (HTTP/2) or with a request that moves no byte (see [`conn`]);
//! - HTTP/2: concurrent streams, keep-alive pings, and caps on reset streams (rapid reset);
//! - `max_connections` per listener, see [`serve_with`];
//! - on stop, requests in progress get `drain_timeout_secs`, then their connections are
//!   dropped: a stop never waits on a stuck client.

mod conn;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config;
use conn::Conn;

/// Reset streams a client may leave pending before its HTTP/2 connection is refused
/// (CVE-2023-44487, "rapid reset"); h2's own default, set here so it cannot silently change.
const H2_MAX_PENDING_RESETS: usize = 20;
/// Streams soko itself may reset for protocol errors before the connection is closed.
const H2_MAX_LOCAL_ERROR_RESETS: usize = 256;
/// After an idle or stalled connection is asked to close, how long it may take.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The connection limits of one listener (from the `http:` section).
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub drain_timeout: Duration,
    pub h2_max_streams: u32,
    pub h2_keep_alive: Option<Duration>,
}

impl Limits {
    pub fn from_config(h: &config::Http) -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(h.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(h.idle_timeout_secs),
            max_connections: h.max_connections as usize,
            drain_timeout: Duration::from_secs(h.drain_timeout_secs),
            h2_max_streams: h.http2_max_concurrent_streams,
            h2_keep_alive: (h.http2_keep_alive_secs > 0)
                .then(|| Duration::from_secs(h.http2_keep_alive_secs)),
        }
    }

    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut b = auto::Builder::new(TokioExecutor::new());
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        let mut h2 = b.http2();
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(self.h2_max_streams)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
            .keep_alive_interval(self.h2_keep_alive);
        if let Some(every) = self.h2_keep_alive {
            h2.keep_alive_timeout(every);
        }
        b
    }
}

/// What a listener does with a new TCP connection before HTTP: nothing, or a TLS handshake.
pub trait Handshake: Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The stream to speak HTTP on; `None` when there is nothing more to do (a failed
    /// handshake, or one that was itself the answer, as for TLS-ALPN-01).
    fn handshake(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = Option<Self::Io>> + Send;
}

/// Plain HTTP.
pub struct Plain;

impl Handshake for Plain {
    type Io = TcpStream;

    async fn handshake(&self, tcp: TcpStream, _peer: SocketAddr) -> Option<TcpStream> {
        Some(tcp)
    }
}

/// Serve `app` on `listener` until `shutdown` resolves, then drain (bounded, see the module
/// documentation). Handlers see the peer address as `ConnectInfo<SocketAddr>`.
///
/// At `max_connections`, the oldest connection with no request in progress (a half-sent
/// request, a TLS handshake, an idle keep-alive) is closed to make room. When every connection
/// has a request in progress, the loop stops accepting until one ends: the newcomers wait in
/// the kernel's queue, costing no file descriptor, and are served as soon as a slot frees.
/// Closing them at once instead would turn every busy moment into errors for real visitors,
/// while a flood would still cost an accept and a close per attempt.
pub fn serve_with<H: Handshake>(
    what: &'static str,
    listener: TcpListener,
    app: Router,
    limits: Limits,
    handshake: H,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    let limits = Arc::new(limits);
    async move {
        let handshake = Arc::new(handshake);
        let builder = limits.builder();
        let max = limits.max_connections;
        let slots = Arc::new(Semaphore::new(max));
        let open = Arc::new(Registry::default());
        let stop = CancellationToken::new();
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!("{what}: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let slot = loop {
                if let Ok(slot) = slots.clone().try_acquire_owned() {
                    break Some(slot);
                }
                open.evict_oldest_idle(what, max);
                tokio::select! {
                    slot = slots.clone().acquire_owned() => break slot.ok(),
                    // Nothing was idle: look again as requests end.
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    () = &mut shutdown => break None,
                }
            };
            let Some(slot) = slot else { break };
            let _ = tcp.set_nodelay(true);
            let conn = open.add();
            let (open, handshake, app) = (open.clone(), handshake.clone(), app.clone());
            let (builder, limits, stop) = (builder.clone(), limits.clone(), stop.clone());
            tokio::spawn(async move {
                conn::drive(tcp, peer, &*handshake, app, &builder, &limits, &conn, &stop).await;
                open.remove(&conn);
                drop(slot);
            });
        }
        drop(listener);
        let left = max - slots.available_permits();
        if left > 0 {
            tracing::info!(
                "{what}: draining {left} connections (at most {:?})",
                limits.drain_timeout
            );
        }
        stop.cancel();
        // Every connection drops itself at the drain deadline; the margin covers the drop.
        let all = slots.acquire_many(max as u32);
        if tokio::time::timeout(limits.drain_timeout + CLOSE_GRACE, all)
            .await
            .is_err()
        {
            tracing::warn!("{what}: connections still open after the drain deadline");
        }
        Ok(())
    }
}

/// Raise the soft limit on open files towards the hard one, so that `listeners` listeners can
/// each hold `http.max_connections` before accept fails for want of descriptors (a shell's
/// soft limit is often 1024; systemd's unit sets 65536). Children inherit it, which MariaDB
/// welcomes. Logs a warning when the hard limit is too low.
pub fn raise_fd_limit(http: &config::Http, listeners: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    // The listeners' connections, plus the pool, logs, sockets and children's pipes.
    let want = listeners * u64::from(http.max_connections) + 1024;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < want {
        let raised = want.min(hard);
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, raised, hard) {
            tracing::warn!("cannot raise the open-file limit from {soft} to {raised}: {e}");
        }
    }
    if hard < want {
        tracing::warn!(
            "the open-file limit ({hard}) is below what {listeners} listeners of \
             http.max_connections ({}) need ({want}): raise it (LimitNOFILE) or lower the cap",
            http.max_connections
        );
    }
}

/// The open connections of one listener, for eviction at the cap.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    /// No new warning about the cap before this (seconds since `epoch`): one a minute.
    quiet_until: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl Registry {
    fn epoch(&self) -> Instant {
        *self.epoch.get_or_init(Instant::now)
    }

    fn add(&self) -> Arc<Conn> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(id, self.epoch()));
        self.lock().insert(id, conn.clone());
        conn
    }

    fn remove(&self, conn: &Conn) {
        self.lock().remove(&conn.id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Close the connection that has gone longest without a request in progress, if any.
    fn evict_oldest_idle(&self, what: &str, max: usize) {
        let victim = self
            .lock()
            .values()
            .filter(|c| c.evictable())
            .min_by_key(|c| c.last_activity())
            .cloned();
        let now = self.epoch().elapsed().as_secs();
        let quiet_until = self.quiet_until.load(Ordering::Relaxed);
        if now >= quiet_until
            && self
                .quiet_until
                .compare_exchange(quiet_until, now + 60, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "{what}: {max} connections open (http.max_connections): {}",
                if victim.is_some() {
                    "closing the longest idle ones to make room"
                } else {
                    "every one is busy, new connections wait"
                }
            );
        }
        if let Some(c) = victim {
            c.evict();
        }
    }
}
