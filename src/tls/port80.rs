//! Port 80: HTTP-01 challenge answers at `/.well-known/acme-challenge/{token}`, and for
//! everything else a 301 to the same host and path over HTTPS — for the site's own names only:
//! a request for any other host (`Host: evil.example`) gets 421, never a redirect there.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sqlx::MySqlPool;
use tokio::net::TcpListener;

/// Token → key authorization of the HTTP-01 challenges being validated; shared between the
/// ACME client (which fills it) and the port-80 router (which answers from it). A shared set
/// ([`Http01Tokens::shared`], `tls.store: database`) also writes them to `acme_challenges` and
/// answers tokens it does not hold from there: another node's order.
#[derive(Debug, Clone, Default)]
pub struct Http01Tokens {
    map: Arc<RwLock<HashMap<String, String>>>,
    db: Option<MySqlPool>,
}

/// How long a published answer stays in the database at most (orders take seconds; a crashed
/// node's answers expire).
const SHARED_TTL_SECS: u64 = 3600;

impl Http01Tokens {
    /// Answers kept in memory and in the database `db` (every node answers every token).
    pub fn shared(db: MySqlPool) -> Http01Tokens {
        Http01Tokens {
            map: Arc::default(),
            db: Some(db),
        }
    }

    pub fn is_shared(&self) -> bool {
        self.db.is_some()
    }

    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    /// [`Http01Tokens::insert`], and for a shared set into the database, before the CA is
    /// told to validate.
    pub async fn publish(
        &self,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), crate::store::Error> {
        self.insert(token, key_authorization);
        if let Some(db) = &self.db {
            crate::store::tls_state::put_challenge(db, token, key_authorization, SHARED_TTL_SECS)
                .await?;
        }
        Ok(())
    }

    pub fn remove(&self, token: &str) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
        if let (Some(db), Ok(rt)) = (&self.db, tokio::runtime::Handle::try_current()) {
            let (db, token) = (db.clone(), token.to_owned());
            rt.spawn(async move {
                if let Err(e) = crate::store::tls_state::delete_challenge(&db, &token).await {
                    tracing::debug!("HTTP-01 answer left to expire in the database: {e}");
                }
            });
        }
    }

    pub fn get(&self, token: &str) -> Option<String> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    /// This node's answer, else (shared) the database's. `Err`: the database did not answer.
    pub async fn lookup(&self, token: &str) -> Result<Option<String>, crate::store::Error> {
        if let Some(k) = self.get(token) {
            return Ok(Some(k));
        }
        match &self.db {
            // Tokens are base64url (RFC 8555 §8.3); anything else costs no query.
            Some(db) if plausible_token(token) => {
                crate::store::tls_state::challenge(db, token).await
            }
            _ => Ok(None),
        }
    }

    /// Answers held in this process.
    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn plausible_token(token: &str) -> bool {
    (16..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Only the challenge route (for merging into another router).
pub fn challenge_router(tokens: Http01Tokens) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(answer))
        .with_state(tokens)
}

/// The whole port-80 service: challenges, else `301` to `https://host[:https_port]/path?query`
/// (the port is left out when it is 443) when `host` is one of `names` (the certificate's
/// names), else `421 Misdirected Request`.
pub fn router(tokens: Http01Tokens, https_port: u16, names: &[String]) -> Router {
    let names: Arc<[String]> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    challenge_router(tokens).fallback(move |headers: HeaderMap, uri: Uri| async move {
        redirect(&headers, &uri, https_port, &names)
    })
}

/// Serve `app` (normally [`router`]) on `listener` until `shutdown` resolves, with the
/// connection limits of the `http:` section (the accept loop is `web::serve`'s).
pub fn serve_http(
    listener: TcpListener,
    app: Router,
    http: &crate::config::Http,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    use crate::web::serve;
    serve::serve_with(
        "port 80",
        listener,
        app,
        serve::Limits::from_config(http),
        serve::Plain,
        shutdown,
    )
}

async fn answer(State(tokens): State<Http01Tokens>, Path(token): Path<String>) -> Response {
    match tokens.lookup(&token).await {
        Ok(Some(key_auth)) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_auth,
        )
            .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::warn!("HTTP-01 answer: the database did not answer: {e}");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

fn redirect(headers: &HeaderMap, uri: &Uri, https_port: u16, names: &[String]) -> Response {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_without_port)
    else {
        return (StatusCode::BAD_REQUEST, "a Host header is required\n").into_response();
    };
    let host = host.to_ascii_lowercase();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if !names.iter().any(|n| *n == host || n == bare) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this server does not serve that host\n",
        )
            .into_response();
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let location = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    match HeaderValue::try_from(location) {
        Ok(v) => (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, v)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// The host part of a Host header, refusing anything that is not a plain name or address.
fn host_without_port(h: &str) -> Option<&str> {
    let host = if let Some(rest) = h.strip_prefix('[') {
        // [v6]:port
        let end = rest.find(']')?;
        &h[..end + 2]
    } else {
        h.rsplit_once(':').map(|(host, _)| host).unwrap_or(h)
    };
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_[]:".contains(&b));
    ok.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plausible_tokens_are_looked_up() {
        assert!(plausible_token(
            "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
        ));
        assert!(!plausible_token("short"));
        assert!(!plausible_token(&"a".repeat(129)));
        assert!(!plausible_token("LoqXcYV8q5ONbJQx'; DROP TABLE x"));
    }

    #[test]
    fn host_parsing() {
        assert_eq!(host_without_port("shop.test"), Some("shop.test"));
        assert_eq!(host_without_port("shop.test:80"), Some("shop.test"));
        assert_eq!(host_without_port("[::1]:80"), Some("[::1]"));
        assert_eq!(host_without_port("evil/x"), None);
        assert_eq!(host_without_port(""), None);
    }

    fn names() -> Vec<String> {
        vec!["shop.test".into(), "www.shop.test".into(), "::1".into()]
    }

    #[test]
    fn only_the_sites_own_names_are_redirected() {
        let uri: Uri = "/".parse().unwrap();
        let status = |host: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static(host));
            redirect(&h, &uri, 443, &names()).status()
        };
        assert_eq!(status("WWW.Shop.Test"), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(status("[::1]:80"), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(status("evil.example"), StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(
            status("shop.test.evil.example"),
            StatusCode::MISDIRECTED_REQUEST
        );
    }

    #[test]
    fn redirects_keep_path_and_query() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("shop.test:8080"));
        let uri: Uri = "/p/1?q=a%20b".parse().unwrap();
        let r = redirect(&h, &uri, 443, &names());
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            r.headers()[header::LOCATION],
            "https://shop.test/p/1?q=a%20b"
        );
        let r = redirect(&h, &uri, 8443, &names());
        assert_eq!(
            r.headers()[header::LOCATION],
            "https://shop.test:8443/p/1?q=a%20b"
        );
        assert_eq!(
            redirect(&HeaderMap::new(), &uri, 443, &names()).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
