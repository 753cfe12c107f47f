//! Real receivers for what the appliance sends out: an HTTP server that records webhook POSTs
//! (and Sentry envelopes), and a minimal SMTP server that holds a real SMTP conversation and
//! records each message. Both listen on loopback port 0.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

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
    /// Received over TLS (after STARTTLS).
    pub tls: bool,
}

/// A minimal SMTP server (RFC 5321 without extensions but STARTTLS): EHLO/HELO, STARTTLS,
/// MAIL, RCPT, DATA, RSET, NOOP, QUIT.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    pub mails: Arc<Mutex<Vec<Mail>>>,
    /// With TLS: the PEM of the self-signed certificate (for `localhost`) clients must trust.
    pub cert_pem: Option<String>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        Self::start_with(None).await
    }

    /// A server that offers STARTTLS (and requires nothing else) with a fresh self-signed
    /// certificate for `localhost`.
    pub async fn start_tls() -> SmtpSink {
        soko::init_crypto();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let pem = cert.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let mut sink =
            Self::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await;
        sink.cert_pem = Some(pem);
        sink
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> SmtpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let store = mails.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (store, tls) = (store.clone(), tls.clone());
                tokio::spawn(async move {
                    let mut stream = stream;
                    let upgrade = talk(&mut stream, &store, tls.is_some(), false, true).await;
                    if let (true, Some(acceptor)) = (upgrade, tls)
                        && let Ok(mut secure) = acceptor.accept(stream).await
                    {
                        talk(&mut secure, &store, false, true, false).await;
                    }
                });
            }
        });
        SmtpSink {
            port,
            mails,
            cert_pem: None,
        }
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

/// One SMTP conversation on `io`; true when the client asked for STARTTLS (the caller then
/// upgrades the connection and talks again, without greeting).
async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    mails: &Mutex<Vec<Mail>>,
    offer_tls: bool,
    secure: bool,
    greet: bool,
) -> bool {
    let mut io = BufReader::new(io);
    let say = async |io: &mut BufReader<&mut S>, s: &str| {
        let _ = io.write_all(format!("{s}\r\n").as_bytes()).await;
        let _ = io.flush().await;
    };
    if greet {
        say(&mut io, "220 sink.test ESMTP test sink").await;
    }
    let (mut from, mut to) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        match io.read_line(&mut line).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            let ext = if offer_tls { "STARTTLS" } else { "8BITMIME" };
            say(&mut io, &format!("250-sink.test\r\n250 {ext}")).await;
        } else if upper.starts_with("HELO") {
            say(&mut io, "250 sink.test").await;
        } else if upper == "STARTTLS" && offer_tls {
            say(&mut io, "220 go ahead").await;
            return true;
        } else if upper.starts_with("MAIL FROM:") {
            from = line[10..].trim().to_owned();
            to.clear();
            say(&mut io, "250 OK").await;
        } else if upper.starts_with("RCPT TO:") {
            to.push(line[8..].trim().to_owned());
            say(&mut io, "250 OK").await;
        } else if upper == "DATA" {
            say(&mut io, "354 end with <CRLF>.<CRLF>").await;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if io.read_line(&mut l).await.unwrap_or(0) == 0 {
                    return false;
                }
                let l = l.trim_end_matches(['\r', '\n']);
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(l));
                data.push('\n');
            }
            mails.lock().unwrap().push(Mail {
                from: from.clone(),
                to: to.clone(),
                data,
                tls: secure,
            });
            say(&mut io, "250 OK queued").await;
        } else if upper == "RSET" || upper == "NOOP" {
            say(&mut io, "250 OK").await;
        } else if upper == "QUIT" {
            say(&mut io, "221 bye").await;
            return false;
        } else {
            say(&mut io, "502 not implemented").await;
        }
    }
}
