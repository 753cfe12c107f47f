//! One connection: its driver (handshake, hyper, the deadlines described in `super`), and what
//! it counts to tell an idle connection from a busy one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{CLOSE_GRACE, Handshake, Limits};

/// What the accept loop and the driver know about one connection.
pub(super) struct Conn {
    pub(super) id: u64,
    /// Shared by the listener's connections, so that their `last` compare.
    epoch: Instant,
    /// Milliseconds since `epoch` of the last activity that counts: the connection opening, a
    /// request starting or ending, and bytes moving while a request is in progress. Bytes
    /// between requests (HTTP/2 pings, a slowloris' trickle of headers) do not count.
    last: AtomicU64,
    /// Requests in progress: from the service being called until the response body is sent
    /// (or dropped).
    active: AtomicUsize,
    /// Whether a request ever started (until then the header-read timeout applies).
    started: AtomicBool,
    evicted: CancellationToken,
}

impl Conn {
    pub(super) fn new(id: u64, epoch: Instant) -> Self {
        let conn = Conn {
            id,
            epoch,
            last: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            evicted: CancellationToken::new(),
        };
        conn.touch();
        conn
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    pub(super) fn last_activity(&self) -> u64 {
        self.last.load(Ordering::Relaxed)
    }

    /// No request in progress: a half-sent request, a handshake, an idle keep-alive.
    pub(super) fn evictable(&self) -> bool {
        self.active.load(Ordering::Acquire) == 0 && !self.evicted.is_cancelled()
    }

    pub(super) fn evict(&self) {
        self.evicted.cancel();
    }

    fn on_io(&self) {
        if self.active.load(Ordering::Acquire) > 0 {
            self.touch();
        }
    }

    /// When this connection closes unless something counted happens first.
    fn deadline(&self, limits: &Limits) -> Instant {
        let wait = if self.started.load(Ordering::Acquire) {
            limits.idle_timeout
        } else {
            limits.header_read_timeout
        };
        self.epoch + Duration::from_millis(self.last_activity()) + wait
    }
}

/// One request in progress on a connection, from the service call to the end of its response.
struct Busy(Arc<Conn>);

impl Busy {
    fn start(conn: Arc<Conn>) -> Self {
        conn.started.store(true, Ordering::Release);
        conn.active.fetch_add(1, Ordering::AcqRel);
        conn.touch();
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// A response body that keeps its request counted as in progress until it is sent.
struct Counted {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's stream, noting each byte that moves (see [`Conn::on_io`]).
struct Tracked<T> {
    io: T,
    conn: Arc<Conn>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.on_io();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.conn.on_io();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.conn.on_io();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Serve one connection until it ends, is evicted, misses a deadline, or the drain ends.
#[allow(clippy::too_many_arguments)]
pub(super) async fn drive<H: Handshake>(
    tcp: TcpStream,
    peer: SocketAddr,
    handshake: &H,
    app: Router,
    builder: &auto::Builder<TokioExecutor>,
    limits: &Limits,
    conn: &Arc<Conn>,
    stop: &CancellationToken,
) {
    let sleep_until = |at: Instant| tokio::time::sleep_until(at.into());
    let io = tokio::select! {
        io = handshake.handshake(tcp, peer) => match io {
            Some(io) => io,
            None => return,
        },
        () = sleep_until(conn.deadline(limits)) => {
            tracing::debug!(%peer, "no request in time: closed");
            return;
        }
        () = conn.evicted.cancelled() => return,
        () = stop.cancelled() => return,
    };
    let service = {
        let conn = conn.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let busy = Busy::start(conn.clone());
            let app = app.clone();
            async move {
                req.extensions_mut().insert(ConnectInfo(peer));
                let mut rsp = match app.oneshot(req.map(Body::new)).await {
                    Ok(rsp) => rsp,
                    Err(never) => match never {},
                };
                // Every answer of every listener, however early a layer made it.
                crate::web::headers::secure(rsp.headers_mut());
                Ok::<_, Infallible>(rsp.map(|body| Counted { body, _busy: busy }))
            }
        })
    };
    let io = TokioIo::new(Tracked {
        io,
        conn: conn.clone(),
    });
    let http = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(http);
    // Set once the connection has been asked to close: dropped then if still open.
    let mut close_by: Option<Instant> = None;
    loop {
        let due = conn.deadline(limits);
        tokio::select! {
            ended = http.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            () = conn.evicted.cancelled() => {
                tracing::debug!(%peer, "closed to make room (http.max_connections)");
                return;
            }
            () = stop.cancelled(), if close_by.is_none() => {
                http.as_mut().graceful_shutdown();
                close_by = Some(Instant::now() + limits.drain_timeout);
            }
            () = sleep_until(due), if close_by.is_none() => {
                if conn.deadline(limits) <= Instant::now() {
                    tracing::debug!(%peer, "idle or stalled: closing");
                    http.as_mut().graceful_shutdown();
                    close_by = Some(Instant::now() + CLOSE_GRACE);
                }
            }
            () = sleep_until(close_by.unwrap_or(due)), if close_by.is_some() => return,
        }
    }
}
