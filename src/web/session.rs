//! Who is asking: the session cookie (an account), the visitor cookie (an anonymous browser, for
//! analytics and "recommended for you"), and the CSRF token every browser form must echo.
//!
//! Cookies: `soko_session` (random token; the database keeps only its SHA-256), `soko_visitor`
//! (random id), `soko_csrf` (random; double-submit). All HttpOnly, SameSite=Lax, and Secure
//! when the site is served over TLS.
//!
//! Anonymous pages that are the same for everyone (marked `page_cache::Shared`) get no CSRF
//! cookie (they hold no form that needs one: the pages with forms hand it out) and the visitor
//! cookie only where a view was recorded under it, so that a CDN may keep them. Any answer that
//! carries a `Set-Cookie` or belongs to a session is `Cache-Control: private, no-store`; any
//! other answer that did not choose is `private, no-cache`.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::{AppState, Error};
use crate::market::i18n::Lang;
use crate::store::users::User;
use crate::store::{self, sessions};

pub const SESSION: &str = "soko_session";
pub const VISITOR: &str = "soko_visitor";
pub const CSRF: &str = "soko_csrf";
pub const LANG: &str = "soko_lang";
pub const SESSION_TTL_SECS: u64 = 30 * 24 * 3600;

pub use crate::accounts::random_token;

pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == 64 || v.len() == 32 && name == VISITOR)
        .filter(|v| v.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("cookie values are hex")
}

/// The request's identity, for handlers: `user` when logged in; `visitor` always; `csrf` is
/// the token forms must echo.
#[derive(Clone)]
pub struct Visitor {
    pub user: Option<User>,
    pub visitor: String,
    pub csrf: String,
    /// The client's address (`client_ip()`: behind a trusted proxy, the forwarded one).
    pub ip: String,
    pub lang: Lang,
}

impl Visitor {
    pub fn client_ip(&self) -> std::net::IpAddr {
        self.ip
            .parse()
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
    }

    pub fn require_user(&self) -> Result<&User, Error> {
        self.user.as_ref().ok_or(Error::LoginRequired)
    }

    pub fn require_admin(&self) -> Result<&User, Error> {
        match &self.user {
            Some(u) if u.is_admin() => Ok(u),
            Some(_) => Err(Error::Forbidden),
            None => Err(Error::LoginRequired),
        }
    }
}

/// Put in the request extensions by [`identify`].
#[derive(Clone)]
struct Fresh {
    visitor: Option<String>,
    csrf: Option<String>,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Error> {
        parts
            .extensions
            .get::<Visitor>()
            .cloned()
            .ok_or_else(|| Error::Internal("identify middleware missing".into()))
    }
}

/// Middleware for browser routes: resolve the session, hand out visitor and CSRF cookies, and
/// refuse any state-changing request whose CSRF token does not match (403), or that comes
/// from another origin.
pub async fn identify(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let session = cookie(headers, SESSION);
    let visitor_cookie = cookie(headers, VISITOR);
    let csrf_cookie = cookie(headers, CSRF);
    // The client's address (behind a trusted proxy, the forwarded one): sessions and the
    // audit log record it.
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let ip = state
        .settings
        .limits
        .0
        .client_ip(peer, req.headers())
        .to_string();
    // The language of refusals before the account is known: the cookie's.
    let cookie_lang = lang_cookie(req.headers());
    let early = cookie_lang.unwrap_or_default();
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        if let Err(e) = check_origin(headers) {
            return e.response_in(early);
        }
        let sent = submitted_csrf(&mut req).await;
        let ok = match (&csrf_cookie, &sent) {
            (Some(c), Some(s)) => constant_time_eq(c.as_bytes(), s.as_bytes()),
            _ => false,
        };
        if !ok {
            return Error::Csrf.response_in(early);
        }
    }
    let user = match &session {
        Some(token) => match sessions::user(&state.db, &hash_token(token)).await {
            Ok(u) => u,
            Err(e) => return Error::from(e).response_in(early),
        },
        None => None,
    };
    let fresh = Fresh {
        visitor: visitor_cookie
            .is_none()
            .then(|| random_token()[..32].to_owned()),
        csrf: csrf_cookie.is_none().then(random_token),
    };
    let logged_in = user.is_some();
    let lang = cookie_lang
        .or_else(|| user.as_ref().and_then(|u| Lang::parse(&u.locale)))
        .unwrap_or_default();
    let v = Visitor {
        lang,
        user,
        visitor: visitor_cookie
            .or_else(|| fresh.visitor.clone())
            .unwrap_or_default(),
        csrf: csrf_cookie
            .or_else(|| fresh.csrf.clone())
            .unwrap_or_default(),
        ip,
    };
    req.extensions_mut().insert(v);
    // Errors answered inside (`web::Error`) speak the visitor's language.
    let mut resp = super::error::LANG.scope(lang, next.run(req)).await;
    let secure = state.settings.secure_cookies;
    let shared = resp
        .extensions()
        .get::<super::page_cache::Shared>()
        .copied();
    if let Some(id) = fresh.visitor
        && shared.is_none_or(|s| s.needs_visitor)
    {
        resp.headers_mut().append(
            SET_COOKIE,
            set_cookie(VISITOR, &id, 365 * 24 * 3600, secure),
        );
    }
    if let Some(token) = fresh.csrf
        && shared.is_none()
    {
        resp.headers_mut().append(
            SET_COOKIE,
            set_cookie(CSRF, &token, 365 * 24 * 3600, secure),
        );
    }
    let headers = resp.headers_mut();
    if logged_in || headers.contains_key(SET_COOKIE) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    } else if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    }
    resp
}

/// `soko_lang=en|sw`
pub fn lang_cookie(headers: &HeaderMap) -> Option<Lang> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == LANG)
        .and_then(|(_, v)| Lang::parse(v))
}

/// A browser sends Origin on cross-site POSTs: it must name this host.
fn check_origin(headers: &HeaderMap) -> Result<(), Error> {
    let (Some(origin), Some(host)) = (headers.get(ORIGIN), headers.get(HOST)) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = host.to_str().unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    if origin_host == host {
        Ok(())
    } else {
        Err(Error::Csrf)
    }
}

/// The token from the `x-csrf-token` header, the `csrf` query parameter, or the `csrf` field of
/// a url-encoded body (read and put back for the handler).
async fn submitted_csrf(req: &mut Request) -> Option<String> {
    if let Some(h) = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
    {
        return Some(h.to_owned());
    }
    if let Some(q) = req.uri().query()
        && let Some(v) = form_value(q.as_bytes(), "csrf")
    {
        return Some(v);
    }
    let is_form = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return None;
    }
    let body = std::mem::take(req.body_mut());
    let bytes = axum::body::to_bytes(body, 1024 * 1024).await.ok()?;
    let token = form_value(&bytes, "csrf");
    *req.body_mut() = axum::body::Body::from(bytes);
    token
}

fn form_value(body: &[u8], name: &str) -> Option<String> {
    body.split(|b| *b == b'&').find_map(|pair| {
        let s = std::str::from_utf8(pair).ok()?;
        let (k, v) = s.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Log in: a new session row and its cookie.
pub async fn start_session(
    state: &AppState,
    user: &User,
    v: &Visitor,
    user_agent: &str,
) -> Result<HeaderValue, Error> {
    let token = random_token();
    sessions::create(
        &state.db,
        &store::sessions::NewSession {
            token_hash: &hash_token(&token),
            user_id: user.id,
            token_version: user.token_version,
            ttl_secs: SESSION_TTL_SECS,
            ip: &v.ip,
            user_agent,
        },
    )
    .await?;
    Ok(set_cookie(
        SESSION,
        &token,
        SESSION_TTL_SECS,
        state.settings.secure_cookies,
    ))
}

pub fn clear_session_cookie(secure: bool) -> HeaderValue {
    set_cookie(SESSION, "", 0, secure)
}
