//! The one fetcher every page, sitemap, robots.txt and photo from the outside web comes
//! through. It is an attack surface (server-side request forgery), so:
//!
//! - http and https only, no credentials in the URL;
//! - the host is resolved once by [`CheckedResolver`] and every address it answers is checked
//!   ([`Policy::check`]: loopback, private, link-local, CGNAT, multicast, reserved, the cloud
//!   metadata addresses and their IPv6 forms are refused unless `allow_private` names them, the
//!   metadata ones always); the connection is made to exactly those checked addresses, so a
//!   second, different answer (DNS rebinding) never reaches the socket; an address literal in
//!   the URL is checked the same way;
//! - redirects are followed here, not by the client: every hop is checked again, at most 5;
//! - timeouts: connecting (`connect_timeout_secs`), and the whole answer, body included;
//! - bodies are read as they stream and abandoned past their cap (HTML 2 MB, photos 8 MB), a
//!   `Content-Length` above the cap refused before reading; gzip is decoded while streaming
//!   and the cap applies to what it decodes to (no decompression bomb); any other encoding is
//!   refused; the content type must be what was asked for;
//! - 429 and 503 are retried after 1, 2, 4, 8 s or the `Retry-After` asked for (at most 60 s);
//! - `robots.txt` is read once per origin and respected; the User-Agent says who we are.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{self, HeaderMap, HeaderValue};
use tokio::sync::Semaphore;

use super::robots::Robots;
use crate::config::catalogue::{Fetch as FetchConfig, parse_cidr};

/// The robots.txt product token, and the start of the User-Agent.
pub const AGENT: &str = "SokoBot";
/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 5;
/// The longest `Retry-After` honoured; a longer one ends the fetch (the job retries later).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why a fetch did not give a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: not a URL soko fetches: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{url}: refused: {reason}")]
    Refused { url: String, reason: String },
    #[error("{url}: robots.txt disallows it")]
    RobotsDisallow { url: String },
    #[error("{url}: answered {status} (gone)")]
    Gone { url: String, status: u16 },
    #[error("{url}: answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: still answering {status} after {tries} tries")]
    Throttled {
        url: String,
        status: u16,
        tries: u32,
    },
    #[error("{url}: more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects { url: String },
    #[error("{url}: the body is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: content type {content_type:?} is not {wanted}")]
    ContentType {
        url: String,
        content_type: String,
        wanted: &'static str,
    },
    #[error("{url}: content encoding {0:?} is not accepted", encoding)]
    Encoding { url: String, encoding: String },
    #[error("{url}: timed out after {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("{url}: {reason}")]
    Network { url: String, reason: String },
}

impl FetchError {
    /// The page is gone (404, 410): the product it was is taken down.
    pub fn is_gone(&self) -> bool {
        matches!(self, FetchError::Gone { .. })
    }

    /// A refusal of ours (SSRF rules, robots.txt, bad URL), not the site failing.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            FetchError::BadUrl { .. }
                | FetchError::Refused { .. }
                | FetchError::RobotsDisallow { .. }
        )
    }

    /// A short word for counts and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::BadUrl { .. } => "bad_url",
            FetchError::Refused { .. } => "refused",
            FetchError::RobotsDisallow { .. } => "robots",
            FetchError::Gone { .. } => "gone",
            FetchError::Status { .. } => "status",
            FetchError::Throttled { .. } => "throttled",
            FetchError::TooManyRedirects { .. } => "redirects",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::ContentType { .. } => "content_type",
            FetchError::Encoding { .. } => "encoding",
            FetchError::Timeout { .. } => "timeout",
            FetchError::Network { .. } => "network",
        }
    }
}

/// Which addresses the fetcher may connect to.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow: Vec<ipnet::IpNet>,
}

/// The metadata services of cloud hosts: never reachable, whatever `allow_private` says.
fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4 == Ipv4Addr::new(169, 254, 169, 254) || v4 == Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    }
}

/// Why an IPv4 address is not a public one, if it is not.
fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        [0, ..] => "the unspecified network 0.0.0.0/8",
        [127, ..] => "loopback",
        [10, ..] => "private",
        [172, b, ..] if (16..=31).contains(&b) => "private",
        [192, 168, ..] => "private",
        [100, b, ..] if (64..=127).contains(&b) => "shared address space (CGNAT)",
        [169, 254, ..] => "link-local",
        [192, 0, 0, _] => "IETF protocol assignments",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation",
        [198, 18 | 19, ..] => "benchmarking",
        [a, ..] if (224..=239).contains(&a) => "multicast",
        [a, ..] if a >= 240 => "reserved",
        _ => return None,
    })
}

/// Why an IPv6 address is not a public one, if it is not (IPv4 inside IPv6 is judged as IPv4).
fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible), 64:ff9b::a.b.c.d (NAT64).
    let embedded = |seg: &[u16]| {
        Ipv4Addr::new(
            (seg[0] >> 8) as u8,
            seg[0] as u8,
            (seg[1] >> 8) as u8,
            seg[1] as u8,
        )
    };
    if s[..5] == [0; 5] && s[5] == 0xffff {
        return special_v4(embedded(&s[6..]));
    }
    if s[..6] == [0; 6] {
        // IPv4-compatible (deprecated): nothing public uses it.
        return Some(special_v4(embedded(&s[6..])).unwrap_or("IPv4-compatible IPv6"));
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        return special_v4(embedded(&s[6..])).or(Some("NAT64"));
    }
    if s[0] == 0x2002 {
        // 6to4: the IPv4 address is in the second and third segments.
        return special_v4(embedded(&s[1..3])).or(Some("6to4"));
    }
    Some(match s[0] {
        a if a & 0xfe00 == 0xfc00 => "unique local (private)",
        a if a & 0xffc0 == 0xfe80 => "link-local",
        a if a & 0xffc0 == 0xfec0 => "site-local",
        a if a & 0xff00 == 0xff00 => "multicast",
        0x2001 if s[1] == 0 => "Teredo",
        0x2001 if s[1] == 0xdb8 => "documentation",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only",
        _ => return None,
    })
}

impl Policy {
    /// `allow_private` entries, each a CIDR or an address (config validation said they parse).
    pub fn new(allow_private: &[String]) -> Result<Self, String> {
        let allow = allow_private
            .iter()
            .map(|s| parse_cidr(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy { allow })
    }

    /// Whether the fetcher may connect to `ip`; why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if is_metadata(ip) {
            return Err(format!("{ip} is a cloud metadata address"));
        }
        let why = match ip {
            IpAddr::V4(v4) => special_v4(v4),
            IpAddr::V6(v6) => special_v6(v6),
        };
        match why {
            None => Ok(()),
            Some(_) if self.allow.iter().any(|n| n.contains(&ip)) => Ok(()),
            Some(why) => Err(format!(
                "{ip} is {why} (catalogue.fetch.allow_private does not list it)"
            )),
        }
    }
}

/// A refusal by the resolver, found again in reqwest's error chain.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Resolves a host once and answers only if every address passes the policy; the client then
/// connects to exactly these addresses.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct CheckedResolver {
    policy: Arc<Policy>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> BoxError {
                    Box::new(Refused(format!("cannot resolve {host}: {e}")))
                })?
                .collect();
            if addrs.is_empty() {
                let e: BoxError = Box::new(Refused(format!("{host} has no address")));
                return Err(e);
            }
            for a in &addrs {
                policy.check(a.ip()).map_err(|why| -> BoxError {
                    Box::new(Refused(format!("{host} resolves to {why}")))
                })?;
            }
            let out: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(out)
        })
    }
}

/// What is asked for: its accepted content types and its size cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A product or shop page (HTML).
    Page,
    /// A sitemap (XML) or an HTML page, whichever it turns out to be.
    PageOrSitemap,
    /// robots.txt.
    Robots,
    /// A photo (JPEG, PNG, WebP).
    Image,
}

impl Want {
    fn accept(self) -> &'static str {
        match self {
            Want::Page => "text/html,application/xhtml+xml;q=0.9",
            Want::PageOrSitemap => {
                "text/html,application/xhtml+xml,application/xml;q=0.9,text/xml;q=0.9"
            }
            Want::Robots => "text/plain",
            Want::Image => "image/webp,image/jpeg,image/png",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Want::Page => "HTML",
            Want::PageOrSitemap => "HTML or XML",
            Want::Robots => "text",
            Want::Image => "a JPEG, PNG or WebP image",
        }
    }

    fn content_type_ok(self, ct: &str) -> bool {
        let ct = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let html = ct == "text/html" || ct == "application/xhtml+xml";
        let xml = ct == "application/xml" || ct == "text/xml" || ct.ends_with("+xml");
        match self {
            Want::Page => html,
            Want::PageOrSitemap => html || xml || ct == "text/plain",
            // Servers send robots.txt as anything; only its text is read.
            Want::Robots => true,
            Want::Image => matches!(ct.as_str(), "image/jpeg" | "image/png" | "image/webp"),
        }
    }
}

/// Validators of an earlier answer, for a conditional GET.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// An answer with a body.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Where the body came from, after redirects.
    pub url: Url,
    pub content_type: String,
    pub body: Vec<u8>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// What a fetch answered.
#[derive(Debug, Clone)]
pub enum Answer {
    Body(Fetched),
    /// 304 to a conditional GET.
    NotModified,
}

/// How one fetch goes: its timeout (the re-check's is shorter), validators, robots.
#[derive(Debug, Clone)]
pub struct Ask {
    pub want: Want,
    pub timeout: Duration,
    pub validators: Validators,
    /// Retries of 429/503 (the re-check asks for none: the next round is its retry).
    pub retries: u32,
}

/// The fetcher: one HTTP client (its resolver checks every address), a limit on fetches at
/// once over all hosts and per host, and robots.txt per origin.
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<Policy>,
    all: Arc<Semaphore>,
    per_host: usize,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// robots.txt per origin, each read once (the first fetch to an origin reads it; the
    /// others to that origin wait for it, those to other origins do not).
    robots: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<Robots>>>>>,
    cfg: FetchConfig,
}

fn url_of(url: &Url) -> String {
    url.as_str().chars().take(300).collect()
}

/// Whether `url` may be fetched at all (scheme, credentials, an address literal's policy).
pub fn check_url(url: &Url, policy: &Policy) -> Result<(), FetchError> {
    let bad = |reason: &str| FetchError::BadUrl {
        url: url_of(url),
        reason: reason.into(),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("only http and https are fetched"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in a URL are refused"));
    }
    let ip = match url.host() {
        None => return Err(bad("no host")),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(url::Host::Domain(_)) => return Ok(()),
    };
    policy.check(ip).map_err(|reason| FetchError::Refused {
        url: url_of(url),
        reason,
    })
}

/// Parse a URL a seller gave; `http(s)://` only.
pub fn parse_url(s: &str) -> Result<Url, FetchError> {
    let s = s.trim();
    let url = Url::parse(s).map_err(|e| FetchError::BadUrl {
        url: s.chars().take(300).collect(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::BadUrl {
            url: url_of(&url),
            reason: "only http and https are fetched".into(),
        });
    }
    if url.as_str().len() > 2000 {
        return Err(FetchError::BadUrl {
            url: url_of(&url),
            reason: "longer than 2000 characters".into(),
        });
    }
    Ok(url)
}

/// The wait before retry `n` (1-based) of a 429/503: 1, 2, 4, 8 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.saturating_sub(1).min(3))
}

/// A `Retry-After` value: seconds, or an HTTP date.
pub fn retry_after(v: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A writer that refuses to grow past its cap.
struct Capped {
    buf: Vec<u8>,
    cap: u64,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() as u64 + data.len() as u64 > self.cap {
            return Err(std::io::Error::other("over the cap"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Hop {
    Done(Answer),
    Redirect(Url),
    Retry {
        status: u16,
        after: Option<Duration>,
    },
}

impl Fetcher {
    pub fn new(cfg: &FetchConfig, user_agent: &str) -> Result<Self, String> {
        let policy = Arc::new(Policy::new(&cfg.allow_private)?);
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                policy: policy.clone(),
            }))
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
            .pool_max_idle_per_host(cfg.per_host as usize)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Fetcher {
            client,
            policy,
            all: Arc::new(Semaphore::new(cfg.parallel as usize)),
            per_host: cfg.per_host as usize,
            hosts: Mutex::new(HashMap::new()),
            robots: Mutex::new(HashMap::new()),
            cfg: cfg.clone(),
        })
    }

    /// The User-Agent soko sends: who is fetching, and where to read why.
    pub fn user_agent(site: &str) -> String {
        let site = if site.is_empty() { "localhost" } else { site };
        format!(
            "{AGENT}/{} (+https://{site}/; a seller asked Soko to import their catalogue)",
            env!("CARGO_PKG_VERSION")
        )
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The usual ask for `want` under this fetcher's configuration.
    pub fn ask(&self, want: Want) -> Ask {
        Ask {
            want,
            timeout: Duration::from_secs(self.cfg.page_timeout_secs),
            validators: Validators::default(),
            retries: self.cfg.retries,
        }
    }

    fn cap(&self, want: Want) -> u64 {
        match want {
            Want::Image => self.cfg.image_max_bytes,
            // robots.txt: RFC 9309 asks crawlers to read at least 500 KiB.
            Want::Robots => self.cfg.html_max_bytes.min(512 * 1024),
            _ => self.cfg.html_max_bytes,
        }
    }

    fn host_slots(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if hosts.len() > 10_000 {
            hosts.retain(|_, s| Arc::strong_count(s) > 1);
        }
        hosts
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
            .clone()
    }

    /// Fetch `url` under robots.txt, following checked redirects, retrying 429/503.
    pub async fn fetch(&self, url: &Url, ask: &Ask) -> Result<Answer, FetchError> {
        let mut tries = 0u32;
        loop {
            tries += 1;
            match self.follow(url, ask).await? {
                Ok(answer) => return Ok(answer),
                Err((status, after)) => {
                    let wait = after.unwrap_or_else(|| backoff(tries));
                    if tries > ask.retries || wait > MAX_RETRY_AFTER {
                        return Err(FetchError::Throttled {
                            url: url_of(url),
                            status,
                            tries,
                        });
                    }
                    tracing::debug!(url = %url, status, wait_ms = wait.as_millis() as u64, "catalogue fetch: waiting to retry");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One try: the redirect chain, each hop checked; `Err((status, retry_after))` to retry.
    async fn follow(
        &self,
        start: &Url,
        ask: &Ask,
    ) -> Result<Result<Answer, (u16, Option<Duration>)>, FetchError> {
        let mut url = start.clone();
        for _ in 0..=MAX_REDIRECTS {
            check_url(&url, &self.policy)?;
            if ask.want != Want::Robots && !self.robots_allow(&url).await? {
                return Err(FetchError::RobotsDisallow { url: url_of(&url) });
            }
            let hop = tokio::time::timeout(ask.timeout, self.hop(&url, ask))
                .await
                .map_err(|_| FetchError::Timeout {
                    url: url_of(&url),
                    secs: ask.timeout.as_secs(),
                })??;
            match hop {
                Hop::Done(answer) => return Ok(Ok(answer)),
                Hop::Retry { status, after } => return Ok(Err((status, after))),
                Hop::Redirect(next) => url = next,
            }
        }
        Err(FetchError::TooManyRedirects { url: url_of(start) })
    }

    async fn hop(&self, url: &Url, ask: &Ask) -> Result<Hop, FetchError> {
        let host = url.host_str().unwrap_or_default().to_owned();
        let slots = self.host_slots(&host);
        let _all = self.all.acquire().await.expect("never closed");
        let _host = slots.acquire().await.expect("never closed");
        let mut req = self
            .client
            .get(url.clone())
            .header(header::ACCEPT, ask.want.accept())
            .header(
                header::ACCEPT_ENCODING,
                if ask.want == Want::Image {
                    "identity"
                } else {
                    "gzip, identity"
                },
            );
        if let Some(etag) = &ask.validators.etag {
            req = req.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &ask.validators.last_modified {
            req = req.header(header::IF_MODIFIED_SINCE, lm);
        }
        let resp = req.send().await.map_err(|e| network_error(url, &e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if resp.status().is_redirection() && status != 304 {
            let loc = headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| FetchError::Status {
                    url: url_of(url),
                    status,
                })?;
            let next = url.join(loc).map_err(|e| FetchError::BadUrl {
                url: loc.chars().take(300).collect(),
                reason: format!("redirect from {}: {e}", url_of(url)),
            })?;
            return Ok(Hop::Redirect(next));
        }
        match status {
            304 => return Ok(Hop::Done(Answer::NotModified)),
            404 | 410 => {
                return Err(FetchError::Gone {
                    url: url_of(url),
                    status,
                });
            }
            429 | 503 => {
                let after = headers
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, std::time::SystemTime::now()));
                return Ok(Hop::Retry { status, after });
            }
            200..=299 => {}
            _ => {
                return Err(FetchError::Status {
                    url: url_of(url),
                    status,
                });
            }
        }
        let content_type = header_str(&headers, header::CONTENT_TYPE).unwrap_or_default();
        if !ask.want.content_type_ok(&content_type) {
            return Err(FetchError::ContentType {
                url: url_of(url),
                content_type: content_type.chars().take(100).collect(),
                wanted: ask.want.describe(),
            });
        }
        let cap = self.cap(ask.want);
        if resp.content_length().is_some_and(|n| n > cap) {
            return Err(FetchError::TooLarge {
                url: url_of(url),
                limit: cap,
            });
        }
        let encoding = header_str(&headers, header::CONTENT_ENCODING)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let gzip = match encoding.as_str() {
            "" | "identity" => false,
            "gzip" | "x-gzip" if ask.want != Want::Image => true,
            _ => {
                return Err(FetchError::Encoding {
                    url: url_of(url),
                    encoding: encoding.chars().take(50).collect(),
                });
            }
        };
        let body = read_capped(url, resp, cap, gzip).await?;
        Ok(Hop::Done(Answer::Body(Fetched {
            url: url.clone(),
            content_type,
            body,
            etag: header_str(&headers, header::ETAG),
            last_modified: header_str(&headers, header::LAST_MODIFIED),
        })))
    }

    /// Whether robots.txt of `url`'s origin lets us fetch it (read once per origin).
    /// A host the fetcher refuses is refused here already (its robots.txt is not fetched).
    async fn robots_allow(&self, url: &Url) -> Result<bool, FetchError> {
        let origin = url.origin().ascii_serialization();
        let cell = {
            let mut cache = self.robots.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.entry(origin).or_default().clone()
        };
        // A refusal is not kept: the next fetch to that origin is refused the same way.
        let robots = cell
            .get_or_try_init(|| async { self.read_robots(url).await.map(Arc::new) })
            .await?;
        Ok(robots.allows(url_path(url).as_str()))
    }

    async fn read_robots(&self, url: &Url) -> Result<Robots, FetchError> {
        let mut robots_url = url.clone();
        robots_url.set_path("/robots.txt");
        robots_url.set_query(None);
        robots_url.set_fragment(None);
        let ask = Ask {
            retries: 1,
            ..self.ask(Want::Robots)
        };
        // RFC 9309: no robots.txt (4xx) allows everything; one that cannot be read (5xx, the
        // network) disallows everything for now.
        // Boxed: fetching robots.txt is a fetch (which asks robots.txt, not for robots.txt).
        Ok(match Box::pin(self.fetch(&robots_url, &ask)).await {
            Ok(Answer::Body(f)) => Robots::parse(&String::from_utf8_lossy(&f.body), AGENT),
            Ok(Answer::NotModified) => Robots::allow_all(),
            Err(FetchError::Gone { .. }) => Robots::allow_all(),
            Err(FetchError::Status { status, .. }) if (400..500).contains(&status) => {
                Robots::allow_all()
            }
            // Refused by our own rules (the host's address): the page is refused the same way.
            Err(FetchError::Refused { reason, .. }) => {
                return Err(FetchError::Refused {
                    url: url_of(url),
                    reason,
                });
            }
            Err(e) => {
                tracing::info!("catalogue fetch: robots.txt unreadable, not fetching: {e}");
                Robots::disallow_all()
            }
        })
    }
}

/// The path and query robots.txt rules are matched against.
fn url_path(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(|s| s.chars().take(500).collect())
}

/// A refusal by the resolver in reqwest's error chain, else the chain as text.
fn network_error(url: &Url, e: &reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut chain = Vec::new();
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<Refused>() {
            let reason = r.0.clone();
            return if reason.starts_with("cannot resolve") || reason.ends_with("no address") {
                FetchError::Network {
                    url: url_of(url),
                    reason,
                }
            } else {
                FetchError::Refused {
                    url: url_of(url),
                    reason,
                }
            };
        }
        chain.push(err.to_string());
        source = err.source();
    }
    if e.is_timeout() {
        return FetchError::Timeout {
            url: url_of(url),
            secs: 0,
        };
    }
    chain.dedup();
    FetchError::Network {
        url: url_of(url),
        reason: chain.join(": ").chars().take(500).collect(),
    }
}

/// Read the body as it streams, never holding more than `cap` bytes (decoded, for gzip).
async fn read_capped(
    url: &Url,
    mut resp: reqwest::Response,
    cap: u64,
    gzip: bool,
) -> Result<Vec<u8>, FetchError> {
    let too_large = || FetchError::TooLarge {
        url: url_of(url),
        limit: cap,
    };
    let mut raw = 0u64;
    let mut plain = Capped {
        buf: Vec::new(),
        cap,
    };
    let mut decoder = gzip.then(|| {
        flate2::write::GzDecoder::new(Capped {
            buf: Vec::new(),
            cap,
        })
    });
    loop {
        let chunk = resp.chunk().await.map_err(|e| network_error(url, &e))?;
        let Some(chunk) = chunk else { break };
        raw += chunk.len() as u64;
        if raw > cap {
            return Err(too_large());
        }
        match &mut decoder {
            Some(d) => d.write_all(&chunk).map_err(|e| {
                if e.to_string() == "over the cap" {
                    too_large()
                } else {
                    FetchError::Encoding {
                        url: url_of(url),
                        encoding: format!("gzip ({e})"),
                    }
                }
            })?,
            None => plain.write_all(&chunk).map_err(|_| too_large())?,
        }
    }
    match decoder {
        Some(d) => d.finish().map(|c| c.buf).map_err(|e| {
            if e.to_string() == "over the cap" {
                too_large()
            } else {
                FetchError::Encoding {
                    url: url_of(url),
                    encoding: format!("gzip ({e})"),
                }
            }
        }),
        None => Ok(plain.buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_refused_and_public_ones_pass() {
        let p = Policy::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "169.254.1.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "fd00:ec2::254",
            "100.100.100.200",
            "198.18.0.1",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(p.check(ip).is_err(), "{bad} must be refused");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = good.parse().unwrap();
            assert!(p.check(ip).is_ok(), "{good} must pass: {:?}", p.check(ip));
        }
    }

    #[test]
    fn allow_private_opens_only_its_networks_never_metadata() {
        let p = Policy::new(&["127.0.0.1/32".into(), "169.254.0.0/16".into()]).unwrap();
        assert!(p.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check("127.0.0.2".parse().unwrap()).is_err());
        assert!(p.check("10.0.0.1".parse().unwrap()).is_err());
        assert!(p.check("169.254.1.1".parse().unwrap()).is_ok());
        let err = p.check("169.254.169.254".parse().unwrap()).unwrap_err();
        assert!(err.contains("metadata"), "{err}");
    }

    #[test]
    fn urls_other_than_http_or_with_credentials_are_refused() {
        let p = Policy::default();
        for bad in [
            "file:///etc/passwd",
            "gopher://x/",
            "ftp://example.com/",
            "https://u:p@example.com/",
        ] {
            let url = Url::parse(bad).unwrap();
            assert!(check_url(&url, &p).is_err(), "{bad}");
        }
        for literal in [
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://2130706433/",
            "http://0x7f.1/",
        ] {
            let url = Url::parse(literal).unwrap();
            let err = check_url(&url, &p).unwrap_err();
            assert!(
                matches!(err, FetchError::Refused { .. }),
                "{literal}: {err}"
            );
        }
        assert!(check_url(&Url::parse("https://shop.example/p/1").unwrap(), &p).is_ok());
    }

    #[test]
    fn retry_waits() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(9), Duration::from_secs(8));
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(retry_after("3", now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(10));
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(10)));
        assert_eq!(retry_after("soon", now), None);
    }
}
