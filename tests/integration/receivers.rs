//! Real receivers for what the appliance sends out: an HTTP server that records webhook POSTs
//! (and Sentry envelopes), and a minimal SMTP server that holds a real SMTP conversation and
//! records each message. Both listen on loopback port 0.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Records every request; answers with `status` (200 unless changed).
#[derive(Clone)]
pub struct HttpSink {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    status: Arc<AtomicU16>,
}

impl HttpSink {
    pub async fn start() -> HttpSink {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(record)
            .with_state((requests.clone(), status.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        HttpSink {
            url,
            requests,
            status,
        }
    }

    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn all(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Wait until `pred` holds over the requests received so far (panics after `timeout`).
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Request]) -> bool,
    ) -> Vec<Request> {
        let start = Instant::now();
        loop {
            let all = self.all();
            if pred(&all) {
                return all;
            }
            assert!(
                start.elapsed() < timeout,
                "waited {timeout:?} for {what}; got {:?}",
                all.iter().map(Request::text).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

type SinkState = (Arc<Mutex<Vec<Request>>>, Arc<AtomicU16>);

async fn record(
    State((requests, status)): State<SinkState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    requests.lock().unwrap().push(Request {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK)
}

/// One message as the SMTP server received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// A minimal SMTP server (RFC 5321 without extensions): EHLO/HELO, MAIL, RCPT, DATA, RSET,
/// NOOP, QUIT.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    pub mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let store = mails.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(converse(stream, store.clone()));
            }
        });
        SmtpSink { port, mails }
    }

    pub fn all(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Mail]) -> bool,
    ) -> Vec<Mail> {
        let start = Instant::now();
        loop {
            let all = self.all();
            if pred(&all) {
                return all;
            }
            assert!(
                start.elapsed() < timeout,
                "waited {timeout:?} for {what}; got {all:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn say(w: &mut tokio::net::tcp::OwnedWriteHalf, s: &str) {
    let _ = w.write_all(format!("{s}\r\n").as_bytes()).await;
}

async fn converse(stream: tokio::net::TcpStream, mails: Arc<Mutex<Vec<Mail>>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    say(&mut write, "220 sink.test ESMTP test sink").await;
    let (mut from, mut to) = (String::new(), Vec::new());
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            say(&mut write, "250-sink.test\r\n250 8BITMIME").await;
        } else if upper.starts_with("HELO") {
            say(&mut write, "250 sink.test").await;
        } else if upper.starts_with("MAIL FROM:") {
            from = line[10..].trim().to_owned();
            to.clear();
            say(&mut write, "250 OK").await;
        } else if upper.starts_with("RCPT TO:") {
            to.push(line[8..].trim().to_owned());
            say(&mut write, "250 OK").await;
        } else if upper == "DATA" {
            say(&mut write, "354 end with <CRLF>.<CRLF>").await;
            let mut data = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
                data.push('\n');
            }
            mails.lock().unwrap().push(Mail {
                from: from.clone(),
                to: to.clone(),
                data,
            });
            say(&mut write, "250 OK queued").await;
        } else if upper == "RSET" || upper == "NOOP" {
            say(&mut write, "250 OK").await;
        } else if upper == "QUIT" {
            say(&mut write, "221 bye").await;
            return;
        } else {
            say(&mut write, "502 not implemented").await;
        }
    }
}
