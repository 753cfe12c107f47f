//! HTTPS: an axum `Router` served over rustls (tokio-rustls, hyper-util's HTTP/1.1 + HTTP/2
//! auto builder), TLS 1.2 and 1.3 only, ALPN `h2` and `http/1.1` — and `acme-tls/1`, so that
//! the same listener answers TLS-ALPN-01 validations from the resolver's challenge certs.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::{ACME_TLS_ALPN, CertResolver, provider};

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

/// Serve `app` over TLS on `listener` until `shutdown` resolves; then stop accepting, let
/// in-flight requests finish (HTTP/2 connections get a GOAWAY) and return.
///
/// Handlers see the peer address as `ConnectInfo<SocketAddr>`. Certificates come from
/// `resolver` at each handshake, so a renewal needs no restart.
pub async fn serve_https(
    listener: TcpListener,
    resolver: Arc<CertResolver>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(server_config(resolver.clone()));
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("https accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let app = app.clone();
        let resolver = resolver.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "tls handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "tls handshake timed out");
                    return;
                }
            };
            if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
                // A TLS-ALPN-01 validation: the handshake was the answer.
                tracing::debug!(%peer, "answered a tls-alpn-01 validation");
                return;
            }
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                let app = app.clone();
                let issued = resolver.serving_issued();
                async move {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let mut rsp = match app.oneshot(req.map(axum::body::Body::new)).await {
                        Ok(rsp) => rsp,
                        Err(never) => match never {},
                    };
                    if issued {
                        rsp.headers_mut()
                            .entry(header::STRICT_TRANSPORT_SECURITY)
                            .or_insert(HSTS);
                    }
                    Ok::<_, Infallible>(rsp)
                }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, "https connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
