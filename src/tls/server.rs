//! HTTPS: an axum `Router` served over rustls (tokio-rustls, then the shared accept loop of
//! `web::serve`: hyper-util's HTTP/1.1 + HTTP/2 auto builder with the `http:` limits), TLS 1.2
//! and 1.3 only, ALPN `h2` and `http/1.1` — and `acme-tls/1`, so that the same listener
//! answers TLS-ALPN-01 validations from the resolver's challenge certs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::{ACME_TLS_ALPN, CertResolver, provider};
use crate::web::serve::{self, Handshake};

/// A client has this long to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sent on every HTTPS response once a CA-issued certificate is served (never with the
/// self-signed stand-in, which would lock browsers out of a site they cannot trust yet).
pub const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// The rustls server config: ring, TLS 1.3 and 1.2, ALPN h2 / http/1.1 / acme-tls/1.
pub fn server_config(resolver: Arc<CertResolver>) -> Arc<ServerConfig> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    Arc::new(cfg)
}

/// Serve `app` over TLS on `listener` until `shutdown` resolves, with the connection limits of
/// the `http:` section (the accept loop is `web::serve`'s); then drain, bounded.
///
/// Handlers see the peer address as `ConnectInfo<SocketAddr>`. Certificates come from
/// `resolver` at each handshake, so a renewal needs no restart.
pub fn serve_https(
    listener: TcpListener,
    resolver: Arc<CertResolver>,
    app: Router,
    http: &crate::config::Http,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    let issued = resolver.clone();
    let app = app.layer(axum::middleware::map_response(move |mut rsp: Response| {
        let issued = issued.serving_issued();
        async move {
            if issued {
                rsp.headers_mut()
                    .entry(header::STRICT_TRANSPORT_SECURITY)
                    .or_insert(HSTS);
            }
            rsp
        }
    }));
    let tls = Tls {
        acceptor: TlsAcceptor::from(server_config(resolver)),
    };
    serve::serve_with(
        "https",
        listener,
        app,
        serve::Limits::from_config(http),
        tls,
        shutdown,
    )
}

/// The TLS handshake in front of HTTP; a TLS-ALPN-01 validation ends with it.
struct Tls {
    acceptor: TlsAcceptor,
}

impl Handshake for Tls {
    type Io = TlsStream<TcpStream>;

    async fn handshake(&self, tcp: TcpStream, peer: SocketAddr) -> Option<Self::Io> {
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "tls handshake failed: {e}");
                return None;
            }
            Err(_) => {
                tracing::debug!(%peer, "tls handshake timed out");
                return None;
            }
        };
        if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
            // A TLS-ALPN-01 validation: the handshake was the answer.
            tracing::debug!(%peer, "answered a tls-alpn-01 validation");
            return None;
        }
        Some(tls)
    }
}
