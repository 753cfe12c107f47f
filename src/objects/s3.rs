//! A small S3 client: PUT an archive (streamed from disk, signed with its SHA-256), HEAD it
//! back to verify the copy, and list a prefix; small objects (photos) in memory. Works with
//! AWS S3 and S3-compatible servers (MinIO, Garage, Ceph, R2, B2 ...), path-style or
//! virtual-host style. Backups (`backup.s3`) and the image store (`images.s3`) both use it.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
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
    /// The config section it came from (`backup.s3`, `images.s3`), for messages.
    section: &'static str,
    key_id: String,
    secret: String,
    scheme: String,
    authority: String,
    http: HyperClient<Connector, ReqBody>,
    /// The first wait before a request is tried again.
    pub backoff: Duration,
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
        Client::with_keys(cfg, "backup.s3", key_id.expose(), secret.expose())
    }

    /// A client with its keys given; `section` names the config it came from in messages.
    pub fn with_keys(
        cfg: &S3Config,
        section: &'static str,
        key_id: &str,
        secret: &str,
    ) -> Result<Client, Error> {
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
            section,
            key_id: key_id.to_owned(),
            secret: secret.to_owned(),
            scheme: scheme.to_owned(),
            authority,
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
            backoff: Duration::from_millis(500),
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

    /// One signed request; the answer's head, its body still streaming. The upload's frames
    /// and the answer are watched: no progress for read_timeout_secs (a server that takes the
    /// connection and then says nothing) fails the request.
    async fn request(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        body: ReqBody,
        payload_sha256: &str,
        length: Option<u64>,
    ) -> Result<(hyper::http::response::Parts, hyper::body::Incoming, String), Error> {
        self.request_with(method, key, query, body, payload_sha256, length, &[])
            .await
    }

    /// [`request`](Self::request) with more (unsigned) headers, such as `content-type`.
    #[allow(clippy::too_many_arguments)]
    async fn request_with(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        body: ReqBody,
        payload_sha256: &str,
        length: Option<u64>,
        extra: &[(&str, &str)],
    ) -> Result<(hyper::http::response::Parts, hyper::body::Incoming, String), Error> {
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
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        let watch = Arc::new(Watch::new());
        let body = Watched {
            inner: body,
            watch: watch.clone(),
        }
        .boxed();
        let req = req
            .body(body)
            .map_err(|e| Error::S3(format!("{method} {uri}: {e}")))?;
        let resp = watch
            .bound(self.http.request(req), self.stall())
            .await
            .ok_or_else(|| self.stalled(method, &uri))?
            .map_err(|e| Error::S3(format!("{method} {uri}: {}", chain(&e))))?;
        let (parts, body) = resp.into_parts();
        Ok((parts, body, uri))
    }

    fn stall(&self) -> Duration {
        Duration::from_secs(self.cfg.read_timeout_secs)
    }

    fn stalled(&self, method: &str, uri: &str) -> Error {
        Error::S3(format!(
            "{method} {uri}: no progress for {} s ({}.read_timeout_secs): the \
             server took the connection but does not answer",
            self.cfg.read_timeout_secs, self.section
        ))
    }

    /// One request with its whole answer.
    async fn send_once(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        body: ReqBody,
        payload_sha256: &str,
        length: Option<u64>,
    ) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes), Error> {
        let (parts, body, uri) = self
            .request(method, key, query, body, payload_sha256, length)
            .await?;
        let body = tokio::time::timeout(self.stall(), body.collect())
            .await
            .map_err(|_| self.stalled(method, &uri))?
            .map_err(|e| Error::S3(format!("{method} {uri}: {}", chain(&e))))?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    }

    /// A request with an empty or in-memory body, retried (see [`retrying`]).
    async fn send(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        body: Bytes,
        payload_sha256: &str,
        length: Option<u64>,
    ) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes), Error> {
        retrying(self.backoff, || {
            let body = Full::new(body.clone())
                .map_err(|never| match never {})
                .boxed();
            self.send_once(method, key, query, body, payload_sha256, length)
        })
        .await
    }

    /// Upload `path` as `key` (one PUT, or a multipart upload past `backup.s3.multipart_mb`),
    /// then HEAD it and compare the size. The copy's location.
    pub async fn put_file(&self, key: &str, path: &Path, sha256: &str) -> Result<String, Error> {
        let len = tokio::fs::metadata(path)
            .await
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?
            .len();
        if len > self.part_bytes() {
            self.put_multipart(key, path, len).await?;
        } else {
            let (status, _, text) = retrying(self.backoff, || async {
                let body = FileBody::open(path, 0, len).await?.boxed();
                self.send_once("PUT", key, &[], body, sha256, Some(len))
                    .await
            })
            .await?;
            if !status.is_success() {
                return Err(Error::S3(format!(
                    "PUT {} answered {status}: {}",
                    self.location(key),
                    s3_error(&text)
                )));
            }
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

    fn part_bytes(&self) -> u64 {
        self.cfg.multipart_mb.max(5) << 20
    }

    /// A multipart upload in parts of `backup.s3.multipart_mb` (each signed with its own
    /// SHA-256 and retried on its own); aborted on failure, so no parts are left billed.
    async fn put_multipart(&self, key: &str, path: &Path, len: u64) -> Result<(), Error> {
        let (status, _, body) = self
            .send(
                "POST",
                key,
                &[("uploads", "")],
                Bytes::new(),
                sigv4::EMPTY_SHA256,
                Some(0),
            )
            .await?;
        let text = String::from_utf8_lossy(&body);
        let upload_id = match between(&text, "<UploadId>", "</UploadId>") {
            Some(id) if status.is_success() => xml_unescape(id),
            _ => {
                return Err(Error::S3(format!(
                    "starting a multipart upload of {} answered {status}: {}",
                    self.location(key),
                    s3_error(&body)
                )));
            }
        };
        let result = self.upload_parts(key, path, len, &upload_id).await;
        if result.is_err() {
            let abort = self
                .send(
                    "DELETE",
                    key,
                    &[("uploadId", &upload_id)],
                    Bytes::new(),
                    sigv4::EMPTY_SHA256,
                    None,
                )
                .await;
            if let Err(e) = abort {
                tracing::warn!(key, "aborting the multipart upload failed: {e}");
            }
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        path: &Path,
        len: u64,
        upload_id: &str,
    ) -> Result<(), Error> {
        let part = self.part_bytes();
        let mut etags = Vec::new();
        let mut offset = 0u64;
        let mut number = 1u32;
        while offset < len {
            let n = part.min(len - offset);
            let sha = sha256_range(path, offset, n).await?;
            let number_s = number.to_string();
            let query = [("partNumber", number_s.as_str()), ("uploadId", upload_id)];
            let (status, headers, text) = retrying(self.backoff, || async {
                let body = FileBody::open(path, offset, n).await?.boxed();
                self.send_once("PUT", key, &query, body, &sha, Some(n))
                    .await
            })
            .await?;
            let etag = headers.get("etag").and_then(|v| v.to_str().ok());
            match etag {
                Some(etag) if status.is_success() => etags.push(etag.to_owned()),
                _ => {
                    return Err(Error::S3(format!(
                        "part {number} of {} answered {status}: {}",
                        self.location(key),
                        s3_error(&text)
                    )));
                }
            }
            offset += n;
            number += 1;
        }
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, etag) in etags.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                etag.replace('&', "&amp;").replace('"', "&quot;")
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let sha = sigv4::sha256_hex(xml.as_bytes());
        let len = xml.len() as u64;
        let (status, _, body) = self
            .send(
                "POST",
                key,
                &[("uploadId", upload_id)],
                Bytes::from(xml),
                &sha,
                Some(len),
            )
            .await?;
        // S3 may answer 200 with an error document when completing.
        if !status.is_success() || String::from_utf8_lossy(&body).contains("<Error>") {
            return Err(Error::S3(format!(
                "completing the multipart upload of {} answered {status}: {}",
                self.location(key),
                s3_error(&body)
            )));
        }
        Ok(())
    }

    /// Download `key` into `dest` (0600, written beside it and renamed into place), its
    /// SHA-256 checked against `sha256` on the way. The bytes written.
    pub async fn get_file(&self, key: &str, dest: &Path, sha256: &str) -> Result<u64, Error> {
        let (bytes, actual) = retrying(self.backoff, || self.get_once(key, dest)).await?;
        if actual != sha256 {
            let _ = std::fs::remove_file(dest);
            return Err(Error::Corrupt(format!(
                "{}: checksum mismatch after download (expected {sha256}, found {actual})",
                self.location(key)
            )));
        }
        Ok(bytes)
    }

    async fn get_once(&self, key: &str, dest: &Path) -> Result<(u64, String), Error> {
        use sha2::Digest;
        use tokio::io::AsyncWriteExt;
        let (parts, mut body, uri) = self
            .request("GET", key, &[], empty(), sigv4::EMPTY_SHA256, None)
            .await?;
        if !parts.status.is_success() {
            let text = tokio::time::timeout(self.stall(), body.collect())
                .await
                .ok()
                .and_then(|b| b.ok())
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(status_error(
                parts.status,
                format!("GET {}: {}", self.location(key), s3_error(&text)),
            ));
        }
        let tmp = dest.with_extension("download");
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .await
            .map_err(|e| Error::Io(format!("{}: {e}", tmp.display())))?;
        let mut hash = sha2::Sha256::new();
        let mut total = 0u64;
        loop {
            let frame = tokio::time::timeout(self.stall(), body.frame())
                .await
                .map_err(|_| self.stalled("GET", &uri))?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| Error::S3(format!("GET {uri}: {}", chain(&e))))?;
            if let Ok(data) = frame.into_data() {
                hash.update(&data);
                file.write_all(&data)
                    .await
                    .map_err(|e| Error::Io(format!("{}: {e}", tmp.display())))?;
                total += data.len() as u64;
            }
        }
        file.sync_all()
            .await
            .map_err(|e| Error::Io(format!("{}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, dest).map_err(|e| Error::Io(format!("{}: {e}", dest.display())))?;
        Ok((total, sigv4::hex(&hash.finalize())))
    }

    /// A small object (a manifest) in memory; `None` when it does not exist.
    pub async fn get_small(&self, key: &str) -> Result<Option<Bytes>, Error> {
        let (status, _, body) = self
            .send("GET", key, &[], Bytes::new(), sigv4::EMPTY_SHA256, None)
            .await?;
        if status == hyper::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Error::S3(format!(
                "GET {} answered {status}: {}",
                self.location(key),
                s3_error(&body)
            )));
        }
        Ok(Some(body))
    }

    /// Delete one object (a missing one is fine).
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        let (status, _, body) = self
            .send("DELETE", key, &[], Bytes::new(), sigv4::EMPTY_SHA256, None)
            .await?;
        if status.is_success() || status == hyper::StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(Error::S3(format!(
            "DELETE {} answered {status}: {}",
            self.location(key),
            s3_error(&body)
        )))
    }

    /// The object's size, `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<u64>, Error> {
        Ok(self.stat(key).await?.map(|(size, _)| size))
    }

    /// The object's size and ETag (a multipart object's ends in `-<parts>`), `None` when it
    /// does not exist.
    pub async fn stat(&self, key: &str) -> Result<Option<(u64, String)>, Error> {
        let (status, headers, _) = self
            .send("HEAD", key, &[], Bytes::new(), sigv4::EMPTY_SHA256, None)
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
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let size = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(Some((size, header("etag").unwrap_or_default())))
    }

    /// Create the bucket (in the client's region); an existing one of ours is fine.
    pub async fn create_bucket(&self) -> Result<(), Error> {
        let (status, _, body) = self
            .send("PUT", "", &[], Bytes::new(), sigv4::EMPTY_SHA256, Some(0))
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

    /// Keys and sizes under `prefix`, every page of the listing.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(t) = &token {
                query.push(("continuation-token", t.as_str()));
            }
            let (status, _, body) = self
                .send("GET", "", &query, Bytes::new(), sigv4::EMPTY_SHA256, None)
                .await?;
            if !status.is_success() {
                return Err(Error::S3(format!(
                    "listing s3://{}/{prefix} answered {status}: {}",
                    self.cfg.bucket,
                    s3_error(&body)
                )));
            }
            let text = String::from_utf8_lossy(&body);
            out.extend(text.split("<Contents>").skip(1).filter_map(|c| {
                let key = between(c, "<Key>", "</Key>")?;
                let size = between(c, "<Size>", "</Size>")?.parse().ok()?;
                Some((xml_unescape(key), size))
            }));
            let truncated = between(&text, "<IsTruncated>", "</IsTruncated>") == Some("true");
            match between(&text, "<NextContinuationToken>", "</NextContinuationToken>") {
                Some(t) if truncated => token = Some(xml_unescape(t)),
                _ => return Ok(out),
            }
        }
    }

    pub fn prefix(&self) -> &str {
        &self.cfg.prefix
    }

    pub fn bucket(&self) -> &str {
        &self.cfg.bucket
    }

    /// Put a small object from memory (one PUT, signed with its SHA-256), with its
    /// `content-type`; tried again after a network error or a 5xx.
    pub async fn put_bytes(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<(), Error> {
        let sha = sigv4::sha256_hex(&bytes);
        let len = bytes.len() as u64;
        let (status, _, text) = retrying(self.backoff, || async {
            let body = Full::new(bytes.clone())
                .map_err(|never| match never {})
                .boxed();
            let (parts, body, uri) = self
                .request_with(
                    "PUT",
                    key,
                    &[],
                    body,
                    &sha,
                    Some(len),
                    &[("content-type", content_type)],
                )
                .await?;
            let text = tokio::time::timeout(self.stall(), body.collect())
                .await
                .map_err(|_| self.stalled("PUT", &uri))?
                .map_err(|e| Error::S3(format!("PUT {uri}: {}", chain(&e))))?
                .to_bytes();
            Ok((parts.status, parts.headers, text))
        })
        .await?;
        if status.is_success() {
            return Ok(());
        }
        Err(status_error(
            status,
            format!("PUT {}: {}", self.location(key), s3_error(&text)),
        ))
    }

    /// A small object in memory with its `content-type`; `None` when it does not exist.
    pub async fn get_typed(&self, key: &str) -> Result<Option<(Bytes, Option<String>)>, Error> {
        let (status, headers, body) = self
            .send("GET", key, &[], Bytes::new(), sigv4::EMPTY_SHA256, None)
            .await?;
        if status == hyper::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(status_error(
                status,
                format!("GET {}: {}", self.location(key), s3_error(&body)),
            ));
        }
        let mime = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Some((body, mime)))
    }
}

fn empty() -> ReqBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// An answer worth trying again: the server's trouble (5xx) or too many requests (429).
fn transient(status: hyper::StatusCode) -> bool {
    status.is_server_error() || status == hyper::StatusCode::TOO_MANY_REQUESTS
}

/// A failed answer as an error: `Error::S3` (tried again) only when it is transient.
fn status_error(status: hyper::StatusCode, what: String) -> Error {
    if transient(status) {
        Error::S3(format!("{what} (answered {status})"))
    } else {
        Error::Refused(format!("copy in S3: {what} (answered {status})"))
    }
}

/// Tries a request makes before its failure stands.
pub const TRIES: u32 = 3;

/// Run `attempt` up to [`TRIES`] times: again after a network error, a timeout, or an answer
/// of 5xx / 429, waiting `backoff`, then 4 × `backoff`. The last answer or error stands.
async fn retrying<T, F, Fut>(backoff: Duration, mut attempt: F) -> Result<T, Error>
where
    T: Answer,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut wait = backoff;
    for n in 1..=TRIES {
        let out = attempt().await;
        let again = match &out {
            Ok(a) => a.transient(),
            Err(Error::S3(_)) => true,
            Err(_) => false,
        };
        if !again || n == TRIES {
            return out;
        }
        match &out {
            Ok(_) => tracing::warn!(try_ = n, "S3 answered a transient error; trying again"),
            Err(e) => tracing::warn!(try_ = n, "S3 request failed: {e}; trying again"),
        }
        tokio::time::sleep(wait).await;
        wait *= 4;
    }
    unreachable!("the last try returns")
}

/// What `retrying` looks at in a successful exchange.
trait Answer {
    fn transient(&self) -> bool;
}

impl Answer for (hyper::StatusCode, hyper::HeaderMap, Bytes) {
    fn transient(&self) -> bool {
        transient(self.0)
    }
}

impl Answer for (u64, String) {
    fn transient(&self) -> bool {
        false
    }
}

/// SHA-256 of `len` bytes of `path` from `offset`.
async fn sha256_range(path: &Path, offset: u64, len: u64) -> Result<String, Error> {
    use sha2::Digest;
    use tokio::io::AsyncReadExt;
    let mut f = FileBody::open(path, offset, len).await?.file;
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = f
            .read(&mut buf[..want])
            .await
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        if n == 0 {
            return Err(Error::Io(format!(
                "{}: the archive shrank while it was uploaded",
                path.display()
            )));
        }
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(sigv4::hex(&hash.finalize()))
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

/// A file (or `remaining` bytes of it from an offset) streamed as a request body in 64 KiB
/// frames.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
}

impl FileBody {
    async fn open(path: &Path, offset: u64, len: u64) -> Result<FileBody, Error> {
        use tokio::io::AsyncSeekExt;
        let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        if offset > 0 {
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(io)?;
        }
        Ok(FileBody {
            file,
            remaining: len,
        })
    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::config::secrets::Secret;

    /// A real HTTP server on a local socket that answers the first `fail` requests with
    /// `status`, then 200 with a Content-Length of 42. The number of requests it saw.
    async fn flaky(fail: usize, status: &'static str) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let count = count.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    let answer = if n < fail {
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                    } else {
                        "HTTP/1.1 200 OK\r\ncontent-length: 42\r\nconnection: close\r\n\r\n".into()
                    };
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        (format!("http://{addr}"), seen)
    }

    fn client(endpoint: String) -> Client {
        let cfg = S3Config {
            endpoint,
            bucket: "b-test".into(),
            ..S3Config::default()
        };
        let secrets = Secrets {
            s3_access_key_id: Some(Secret::new("AKIATEST")),
            s3_secret_access_key: Some(Secret::new("secret")),
            ..Secrets::default()
        };
        let mut c = Client::new(&cfg, &secrets).unwrap();
        c.backoff = Duration::from_millis(10);
        c
    }

    #[tokio::test]
    async fn a_server_error_twice_is_retried_and_the_third_try_stands() {
        crate::init_crypto();
        let (endpoint, seen) = flaky(2, "503 Service Unavailable").await;
        let size = client(endpoint).head("k").await.unwrap();
        assert_eq!(size, Some(42));
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        let (endpoint, seen) = flaky(2, "429 Too Many Requests").await;
        assert_eq!(client(endpoint).head("k").await.unwrap(), Some(42));
        assert_eq!(seen.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn three_failures_give_up_and_a_client_error_is_not_retried() {
        crate::init_crypto();
        let (endpoint, seen) = flaky(3, "500 Internal Server Error").await;
        let err = client(endpoint).head("k").await.unwrap_err().to_string();
        assert!(err.contains("500"), "{err}");
        assert_eq!(seen.load(Ordering::SeqCst), TRIES as usize);
        let (endpoint, seen) = flaky(1, "403 Forbidden").await;
        let err = client(endpoint).head("k").await.unwrap_err().to_string();
        assert!(err.contains("403"), "{err}");
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        // A download of a missing object: one try, and nothing written.
        let (endpoint, seen) = flaky(1, "404 Not Found").await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.zst");
        let err = client(endpoint)
            .get_file("k", &dest, "00")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("404"), "{err}");
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        assert!(!dest.exists());
    }

    /// A local server answering each request by its request line (`answer`); the request
    /// lines it saw.
    async fn scripted(answer: fn(&str) -> String) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let line = text.lines().next().unwrap_or_default().to_owned();
                    log.lock().unwrap().push(line.clone());
                    // Read the whole body before answering, as a real server does: answering
                    // early races the client's write (a broken pipe instead of the status).
                    let length: usize = text
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
                    let mut got = head.len().saturating_sub(end);
                    while got < length {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got += n,
                        }
                    }
                    let _ = conn.write_all(answer(&line).as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        (format!("http://{addr}"), seen)
    }

    #[tokio::test]
    async fn a_failed_multipart_upload_is_aborted() {
        crate::init_crypto();
        let (endpoint, seen) = scripted(|line| {
            let body = "<InitiateMultipartUploadResult><UploadId>up-1</UploadId></InitiateMultipartUploadResult>";
            if line.starts_with("POST") && line.contains("uploads") {
                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
            } else if line.starts_with("DELETE") {
                "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n".into()
            } else {
                "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()
            }
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.zst");
        std::fs::write(&path, vec![7u8; 6 << 20]).unwrap();
        let mut c = client(endpoint);
        c.cfg.multipart_mb = 5;
        let err = c
            .put_file("set/big.zst", &path, "unused")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("part 1"), "{err}");
        let seen = seen.lock().unwrap().clone();
        assert!(
            seen[0].starts_with("POST") && seen[0].contains("uploads"),
            "{seen:?}"
        );
        assert!(
            seen.iter()
                .any(|l| l.starts_with("DELETE") && l.contains("uploadId=up-1")),
            "{seen:?}"
        );
    }
}
