//! A small S3 client: PUT an archive (streamed from disk, signed with its SHA-256), HEAD it
//! back to verify the copy, and list a prefix. Works with AWS S3 and S3-compatible servers
//! (MinIO, Garage, Ceph, R2, B2 ...), path-style or virtual-host style.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, combinators::BoxBody};
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::client::legacy::{Client as HyperClient, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncRead, ReadBuf};

use super::Error;
use super::sigv4;
use crate::config::backup::S3 as S3Config;
use crate::config::secrets::Secrets;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
type ReqBody = BoxBody<Bytes, std::io::Error>;

pub struct Client {
    cfg: S3Config,
    key_id: String,
    secret: String,
    scheme: String,
    authority: String,
    http: HyperClient<Connector, ReqBody>,
}

impl Client {
    /// `Err` when the keys are missing from the secrets: copying is configured, so that is a
    /// failure of every run, never a silent skip.
    pub fn new(cfg: &S3Config, secrets: &Secrets) -> Result<Client, Error> {
        let (Some(key_id), Some(secret)) = (
            secrets.s3_access_key_id.as_ref().filter(|s| !s.is_empty()),
            secrets
                .s3_secret_access_key
                .as_ref()
                .filter(|s| !s.is_empty()),
        ) else {
            return Err(Error::S3(
                "backup.s3 is configured but s3_access_key_id / s3_secret_access_key are \
                 missing from the secrets file (or SOKO_S3_ACCESS_KEY_ID / SOKO_S3_SECRET_ACCESS_KEY)"
                    .into(),
            ));
        };
        let (scheme, rest) = cfg
            .endpoint
            .split_once("://")
            .ok_or_else(|| Error::S3(format!("bad endpoint {:?}", cfg.endpoint)))?;
        let authority = rest.trim_end_matches('/').to_owned();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(Vec::new(), provider.clone())
                .map_err(|e| Error::S3(format!("TLS roots: {e}")))?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::S3(format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(Duration::from_secs(cfg.connect_timeout_secs)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Ok(Client {
            cfg: cfg.clone(),
            key_id: key_id.expose().to_owned(),
            secret: secret.expose().to_owned(),
            scheme: scheme.to_owned(),
            authority,
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// The object key for an archive of a set: `<prefix><set>/<file>`.
    pub fn key(&self, set_id: &str, file: &str) -> String {
        format!("{}{set_id}/{file}", self.cfg.prefix)
    }

    pub fn location(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.cfg.bucket)
    }

    /// (host header, encoded path) for a key (empty key: the bucket itself).
    fn target(&self, key: &str) -> (String, String) {
        let key = sigv4::uri_encode(key, true);
        if self.cfg.path_style {
            (
                self.authority.clone(),
                format!("/{}/{key}", self.cfg.bucket),
            )
        } else {
            (
                format!("{}.{}", self.cfg.bucket, self.authority),
                format!("/{key}"),
            )
        }
    }

    async fn send(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        body: ReqBody,
        payload_sha256: &str,
        length: Option<u64>,
    ) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes), Error> {
        let (host, path) = self.target(key);
        let date = sigv4::amz_date(crate::clock::now_unix() as i64);
        let auth = sigv4::authorization(
            &sigv4::Request {
                method,
                path: &path,
                query,
                headers: &[
                    ("host", &host),
                    ("x-amz-content-sha256", payload_sha256),
                    ("x-amz-date", &date),
                ],
                payload_sha256,
                amz_date: &date,
                region: &self.cfg.region,
                service: "s3",
            },
            &self.key_id,
            &self.secret,
        );
        let q = sigv4::canonical_query(query);
        let uri = format!(
            "{}://{host}{path}{}{q}",
            self.scheme,
            if q.is_empty() { "" } else { "?" }
        );
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(&uri)
            .header("host", &host)
            .header("x-amz-content-sha256", payload_sha256)
            .header("x-amz-date", &date)
            .header("authorization", auth);
        if let Some(len) = length {
            req = req.header("content-length", len);
        }
        // The upload's frames and the answer are watched: no progress for read_timeout_secs
        // (a server that takes the connection and then says nothing) fails the request.
        let watch = Arc::new(Watch::new());
        let body = Watched {
            inner: body,
            watch: watch.clone(),
        }
        .boxed();
        let req = req
            .body(body)
            .map_err(|e| Error::S3(format!("{method} {uri}: {e}")))?;
        let stall = Duration::from_secs(self.cfg.read_timeout_secs);
        let stalled = || {
            Error::S3(format!(
                "{method} {uri}: no progress for {} s (backup.s3.read_timeout_secs): the \
                 server took the connection but does not answer",
                stall.as_secs()
            ))
        };
        let resp = watch
            .bound(self.http.request(req), stall)
            .await
            .ok_or_else(stalled)?
            .map_err(|e| Error::S3(format!("{method} {uri}: {}", chain(&e))))?;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(stall, body.collect())
            .await
            .map_err(|_| stalled())?
            .map_err(|e| Error::S3(format!("{method} {uri}: {}", chain(&e))))?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    }

    fn empty() -> ReqBody {
        Empty::new().map_err(|never| match never {}).boxed()
    }

    /// Upload `path` as `key`, then HEAD it and compare the size. The copy's location.
    pub async fn put_file(&self, key: &str, path: &Path, sha256: &str) -> Result<String, Error> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?
            .len();
        let body = FileBody {
            file,
            remaining: len,
        }
        .boxed();
        let (status, _, text) = self.send("PUT", key, &[], body, sha256, Some(len)).await?;
        if !status.is_success() {
            return Err(Error::S3(format!(
                "PUT {} answered {status}: {}",
                self.location(key),
                s3_error(&text)
            )));
        }
        match self.head(key).await? {
            Some(n) if n == len => Ok(self.location(key)),
            Some(n) => Err(Error::S3(format!(
                "the copy at {} has {n} bytes, the archive {len}",
                self.location(key)
            ))),
            None => Err(Error::S3(format!(
                "the copy at {} is not there after upload",
                self.location(key)
            ))),
        }
    }

    /// The object's size, `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<u64>, Error> {
        let (status, headers, _) = self
            .send("HEAD", key, &[], Self::empty(), sigv4::EMPTY_SHA256, None)
            .await?;
        if status == hyper::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Error::S3(format!(
                "HEAD {} answered {status}",
                self.location(key)
            )));
        }
        Ok(headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()))
    }

    /// Create the bucket (in the client's region); an existing one of ours is fine.
    pub async fn create_bucket(&self) -> Result<(), Error> {
        let (status, _, body) = self
            .send("PUT", "", &[], Self::empty(), sigv4::EMPTY_SHA256, Some(0))
            .await?;
        if status.is_success() || s3_error(&body).starts_with("BucketAlreadyOwnedByYou") {
            return Ok(());
        }
        Err(Error::S3(format!(
            "creating bucket {} answered {status}: {}",
            self.cfg.bucket,
            s3_error(&body)
        )))
    }

    /// Keys and sizes under `prefix` (first 1000).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, Error> {
        let (status, _, body) = self
            .send(
                "GET",
                "",
                &[("list-type", "2"), ("prefix", prefix)],
                Self::empty(),
                sigv4::EMPTY_SHA256,
                None,
            )
            .await?;
        if !status.is_success() {
            return Err(Error::S3(format!(
                "listing s3://{}/{prefix} answered {status}: {}",
                self.cfg.bucket,
                s3_error(&body)
            )));
        }
        let text = String::from_utf8_lossy(&body);
        Ok(text
            .split("<Contents>")
            .skip(1)
            .filter_map(|c| {
                let key = between(c, "<Key>", "</Key>")?;
                let size = between(c, "<Size>", "</Size>")?.parse().ok()?;
                Some((xml_unescape(key), size))
            })
            .collect())
    }
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let end = s[start..].find(close)? + start;
    Some(&s[start..end])
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `Code: Message` of an S3 error document, else the start of the body.
fn s3_error(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match (
        between(&text, "<Code>", "</Code>"),
        between(&text, "<Message>", "</Message>"),
    ) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_owned(),
        _ => text.chars().take(200).collect(),
    }
}

/// An error with its causes: hyper's "client error (Connect)" says little without them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// When a request last made progress (a body frame taken by the connection).
struct Watch {
    start: Instant,
    last_ms: AtomicU64,
}

impl Watch {
    fn new() -> Self {
        Watch {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// `fut`'s output, or `None` once it has gone `stall` without progress.
    async fn bound<T>(
        &self,
        fut: impl std::future::Future<Output = T>,
        stall: Duration,
    ) -> Option<T> {
        tokio::pin!(fut);
        loop {
            let due = self.last() + stall;
            tokio::select! {
                out = &mut fut => return Some(out),
                () = tokio::time::sleep_until(due.into()) => {
                    if self.last() + stall <= Instant::now() {
                        return None;
                    }
                }
            }
        }
    }
}

/// A request body that marks each frame it hands to the connection as progress.
struct Watched {
    inner: ReqBody,
    watch: Arc<Watch>,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        self.watch.touch();
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A file streamed as a request body in 64 KiB frames.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = self.remaining.min(64 * 1024) as usize;
        let mut buf = vec![0u8; want];
        let mut rb = ReadBuf::new(&mut buf);
        ready!(Pin::new(&mut self.file).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n == 0 {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the archive shrank while it was uploaded",
            ))));
        }
        buf.truncate(n);
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
