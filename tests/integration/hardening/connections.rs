//! Connection limits on every listener: thousands of half-sent requests (and silent TLS
//! handshakes) are held within `http.max_connections`, closed after
//! `http.header_read_timeout_secs` (the default, 10 s), and do not keep a normal request
//! waiting; and a stop with stuck clients connected ends within `http.drain_timeout_secs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use soko::config::tls::TlsMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::{external_appliance, fds, rss_mib, sample_max};
use crate::common::free_port;

const CAP: u32 = 1000;
const DRAIN: u64 = 3;
/// Half-sent requests on `http.listen` (twice the cap) and on each of ports 443 and 80.
const ON_WEB: usize = 2000;
const ON_TLS: usize = 300;

/// A request line and some headers, never finished.
const HALF: &[u8] = b"GET / HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: slow\r\nX-Pad: ";

/// `n` connections to `addr`, each having sent `prefix` (nothing when empty); opened 100 at a
/// time, so that thousands are open well within the header timeout.
async fn hold(addr: SocketAddr, n: usize, prefix: &'static [u8]) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    while held.len() < n {
        let mut batch = JoinSet::new();
        for _ in 0..(n - held.len()).min(100) {
            batch.spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                if !prefix.is_empty() {
                    // The server may already have closed it to make room: never mind.
                    let _ = s.write_all(prefix).await;
                }
                s
            });
        }
        while let Some(s) = batch.join_next().await {
            held.push(s.unwrap());
        }
    }
    held
}

/// How many of `streams` the server has closed (EOF or reset within `wait`).
async fn closed(streams: Vec<TcpStream>, wait: Duration) -> usize {
    let mut set = JoinSet::new();
    for mut s in streams {
        set.spawn(async move {
            let mut sink = Vec::new();
            // Any outcome but the timeout: EOF, or a reset.
            tokio::time::timeout(wait, s.read_to_end(&mut sink))
                .await
                .is_ok()
        });
    }
    let mut n = 0;
    while let Some(done) = set.join_next().await {
        n += usize::from(done.unwrap());
    }
    n
}

#[tokio::test]
async fn half_sent_requests_are_capped_timed_out_and_never_hold_up_a_stop() {
    let (https_port, port80) = (free_port(), free_port());
    let (mut app, _db) = external_appliance("slowloris", |c| {
        c.tls.mode = TlsMode::SelfSigned;
        c.tls.https_listen = ([127, 0, 0, 1], https_port).into();
        c.tls.http_listen = ([127, 0, 0, 1], port80).into();
        c.http.max_connections = CAP;
        c.http.drain_timeout_secs = DRAIN;
    })
    .await;
    let pid = app.pid();
    let web = app.cfg.http.listen;
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], https_port));
    let port80_addr = SocketAddr::from(([127, 0, 0, 1], port80));
    let https = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("localhost", tls_addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Fresh connections for every request: a pooled one would dodge the attack.
    let plain = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(
        plain
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let fds_before = fds(pid);
    let rss_before = rss_mib(pid);

    let (stop_fds, max_fds) = sample_max(move || fds(pid) as u64);
    let started = Instant::now();
    let on_web = hold(web, ON_WEB, HALF).await;
    let web_fds = fds(pid);
    // TLS: connected, and not one byte of a handshake.
    let on_tls = hold(tls_addr, ON_TLS, b"").await;
    let on_80 = hold(port80_addr, ON_TLS, HALF).await;
    let opened = started.elapsed();
    let opened_at = Instant::now();
    let during = fds(pid);
    let rss_during = rss_mib(pid);

    // Meanwhile, a normal visitor on each listener is served at once.
    let mut slowest = Duration::ZERO;
    for (what, request) in [
        ("http.listen", plain.get(app.url("/healthz"))),
        (
            "https",
            https.get(format!("https://localhost:{https_port}/healthz")),
        ),
        ("port 80", plain.get(format!("http://localhost:{port80}/x"))),
    ] {
        let t = Instant::now();
        let r = request.timeout(Duration::from_secs(5)).send().await;
        let took = t.elapsed();
        let status = r.map(|r| r.status().as_u16());
        assert!(
            matches!(status, Ok(200 | 301)),
            "{what}: {status:?} after {took:?}"
        );
        assert!(took < Duration::from_secs(1), "{what} took {took:?}");
        slowest = slowest.max(took);
    }

    // The web listener held at most its cap (the oldest half-sent requests were closed to make
    // room), and every one left is closed once its headers are overdue: soko's descriptors are
    // counted while this side still holds all of them open.
    // The default header timeout (10 s): opening the 2,600 takes seconds in a debug build.
    let header_timeout = Duration::from_secs(app.cfg.http.header_read_timeout_secs);
    tokio::time::sleep_until((opened_at + header_timeout + Duration::from_secs(2)).into()).await;
    let after = fds(pid);
    let closed_in = started.elapsed();
    stop_fds.send(()).unwrap();
    let peak = max_fds.await.unwrap() as usize;
    let all: Vec<TcpStream> = on_web.into_iter().chain(on_tls).chain(on_80).collect();
    let n_closed = closed(all, Duration::from_secs(1)).await;
    println!(
        "{} half-sent connections opened in {opened:?}; soko fds {fds_before} before, \
         {web_fds} after opening {ON_WEB} on http.listen, {during} after opening all, {peak} at most, {after} {closed_in:?} after the first was \
         opened; RSS {rss_before} MiB before, {rss_during} MiB with them open; slowest normal \
         request {slowest:?}; {n_closed} closed by the server",
        ON_WEB + 2 * ON_TLS
    );
    assert_eq!(n_closed, ON_WEB + 2 * ON_TLS, "all closed by the server");
    // The web listener did reach its cap (so the normal requests above needed room made).
    assert!(
        // Give or take a few of soko's own (database connections and the like).
        (fds_before + CAP as usize - 8..=fds_before + CAP as usize + 2).contains(&web_fds),
        "{web_fds} fds with the half-sent requests on http.listen"
    );
    assert!(
        peak <= fds_before + CAP as usize + 2 * ON_TLS + 16,
        "{peak} fds at most (cap {CAP} + {} on 443 and 80, {fds_before} before)",
        2 * ON_TLS
    );
    assert!(
        after <= fds_before + 8,
        "{after} fds after, {fds_before} before"
    );

    // A stop with stuck clients connected: half-sent headers, and requests whose bodies never
    // come (in progress: they wait for the drain deadline, then are dropped).
    let _stuck = hold(web, 200, HALF).await;
    let mut bodies = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(web).await.unwrap();
        s.write_all(
            b"POST /login HTTP/1.1\r\nHost: shop.test\r\nContent-Type: \
              application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nlogin=a",
        )
        .await
        .unwrap();
        bodies.push(s);
    }
    let _tls_stuck = hold(tls_addr, 100, b"").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    app.signal(Signal::SIGTERM);
    let code = app.wait_exit(Duration::from_secs(DRAIN + 20)).await;
    let stop_took = t.elapsed();
    println!("soko up stopped in {stop_took:?} (drain_timeout_secs {DRAIN})");
    assert_eq!(code, Some(0), "{}", app.log_text());
    assert!(
        stop_took < Duration::from_secs(DRAIN + 3),
        "stop took {stop_took:?}"
    );
}
