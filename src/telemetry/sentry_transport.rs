//! The Sentry transport: envelopes go out through soko's own reqwest 0.12 (rustls on ring), the
//! client every other outgoing HTTP call uses. Sentry's built-in transport would bring reqwest
//! 0.13 and aws-lc (a C build) beside it.
//!
//! Like Sentry's own: TLS trusts the system's CA store; one background thread with a small tokio
//! runtime sends envelopes in order, honours the rate limits the server answers with
//! (`X-Sentry-Rate-Limits`, `Retry-After`, 429), and drops envelopes rather than block the caller
//! when the queue is full.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use sentry::client_report::{Reason, Recorder};
use sentry::transports::{RateLimiter, RateLimitingCategory};
use sentry::{Envelope, Transport, TransportFactory, TransportOptions};

/// Envelopes (and flush or shutdown requests) waiting for the thread; Sentry's default too.
const QUEUE: usize = 30;
/// One envelope's request, connect to answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates a [`ReqwestTransport`] for the client's DSN (`ClientOptions::transport`).
pub struct Factory;

impl TransportFactory for Factory {
    fn create_transport_with_options(&self, options: TransportOptions) -> Arc<dyn Transport> {
        Arc::new(ReqwestTransport::start(options))
    }
}

enum Task {
    Send(Box<Envelope>),
    Flush(SyncSender<()>),
    Shutdown,
}

/// Sends envelopes from one background thread; dropping it stops the thread once the envelope
/// on the wire is sent (what is still queued is dropped: closing the client flushes first).
pub struct ReqwestTransport {
    queue: SyncSender<Task>,
    lost: Recorder,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Where and how envelopes are posted.
struct Endpoint {
    client: reqwest::Client,
    url: String,
    auth: String,
    lost: Recorder,
    stopping: Arc<AtomicBool>,
}

impl ReqwestTransport {
    fn start(options: TransportOptions) -> Self {
        let TransportOptions {
            dsn,
            user_agent,
            http_proxy,
            https_proxy,
            accept_invalid_certs,
            client_report_recorder: lost,
            transport_channel_capacity,
            ..
        } = options;
        let mut client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
        client = match (accept_invalid_certs, system_roots()) {
            (false, Ok(tls)) => client.use_preconfigured_tls(tls),
            (false, Err(e)) => {
                tracing::warn!(
                    "sentry: the system's CA certificates are unusable ({e}): Mozilla's"
                );
                client
            }
            (true, _) => client.danger_accept_invalid_certs(true),
        };
        let proxies = [
            http_proxy.map(|p| reqwest::Proxy::http(p.as_ref())),
            https_proxy.map(|p| reqwest::Proxy::https(p.as_ref())),
        ];
        for proxy in proxies.into_iter().flatten() {
            match proxy {
                Ok(p) => client = client.proxy(p),
                Err(e) => tracing::warn!("sentry: proxy ignored: {e}"),
            }
        }
        let stopping = Arc::new(AtomicBool::new(false));
        let endpoint = client.build().map(|client| Endpoint {
            client,
            url: dsn.envelope_api_url().to_string(),
            auth: dsn.to_auth(Some(&user_agent)).to_string(),
            lost: lost.clone(),
            stopping: stopping.clone(),
        });
        let capacity = transport_channel_capacity.map_or(QUEUE, |c| c.get());
        let (queue, tasks) = sync_channel(capacity);
        let thread = match endpoint {
            Ok(endpoint) => std::thread::Builder::new()
                .name("sentry-transport".into())
                .spawn(move || endpoint.run(tasks))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let thread = thread
            .inspect_err(|e| tracing::error!("sentry: no transport, nothing will be sent: {e}"))
            .ok();
        Self {
            queue,
            lost,
            stopping,
            thread,
        }
    }
}

/// TLS that trusts what the system trusts (as Sentry's own transport does), so that a
/// self-hosted Sentry or GlitchTip behind a private CA in the system's store is reachable.
fn system_roots() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(Vec::new(), provider.clone())?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

impl Endpoint {
    fn run(self, tasks: std::sync::mpsc::Receiver<Task>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return tracing::error!("sentry: no runtime for the transport: {e}"),
        };
        let mut limits = RateLimiter::new();
        for task in tasks {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let envelope = match task {
                Task::Send(envelope) => *envelope,
                Task::Flush(done) => {
                    let _ = done.send(());
                    continue;
                }
                Task::Shutdown => return,
            };
            // soko sends error events, one an envelope (no sessions, transactions or logs).
            let category = match envelope.event() {
                Some(_) => RateLimitingCategory::Error,
                None => RateLimitingCategory::Any,
            };
            if limits.is_disabled(category).is_some() {
                self.lost
                    .record_lost_data(&envelope, Reason::RatelimitBackoff);
                continue;
            }
            rt.block_on(self.post(envelope, &mut limits));
        }
    }

    async fn post(&self, envelope: Envelope, limits: &mut RateLimiter) {
        let mut body = Vec::new();
        if envelope.to_writer(&mut body).is_err() {
            return self.lost.record_lost_data(&envelope, Reason::InternalError);
        }
        let sent = self
            .client
            .post(&self.url)
            .header("X-Sentry-Auth", &self.auth)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(_) => return self.lost.record_lost_data(&envelope, Reason::NetworkError),
        };
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        let status = response.status();
        if let Some(h) = header("x-sentry-rate-limits") {
            limits.update_from_sentry_header(h);
        } else if let Some(h) = header("retry-after") {
            limits.update_from_retry_after(h);
        } else if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            limits.update_from_429();
        }
        if (status.is_client_error() || status.is_server_error())
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            self.lost.record_lost_data(&envelope, Reason::SendError);
        }
        let _ = response.bytes().await;
    }
}

impl Transport for ReqwestTransport {
    fn send_envelope(&self, envelope: Envelope) {
        let lost = match self.queue.try_send(Task::Send(Box::new(envelope))) {
            Ok(()) => return,
            Err(TrySendError::Full(task)) => (task, Reason::QueueOverflow),
            Err(TrySendError::Disconnected(task)) => (task, Reason::InternalError),
        };
        if let (Task::Send(envelope), reason) = lost {
            self.lost.record_lost_data(&*envelope, reason);
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        let (done, flushed) = sync_channel(1);
        self.queue.send(Task::Flush(done)).is_ok() && flushed.recv_timeout(timeout).is_ok()
    }
}

impl Drop for ReqwestTransport {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.queue.send(Task::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
