//! Request metrics: every response is timed into the `http` series of the metrics registry,
//! labelled by the matched route template (`/p/{id}`, never the raw path: a fixed number of
//! series), the method and the status `code` (`200`, as Prometheus names it); 5xx answers count
//! as errors.

use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::Request;

use crate::metrics;

pub async fn record(
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let labels = format!(
        r#"route="{}",method="{}",code="{}""#,
        metrics::escape_label(&route),
        method_label(&method),
        status
    );
    let elapsed = started.elapsed();
    metrics::observe_with("http", &labels, elapsed, status >= 500);
    // The signal background loops pace themselves by.
    crate::background::pressure::record(elapsed);
    resp
}

/// Standard methods by name; anything else as `other` (a client cannot invent series).
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
