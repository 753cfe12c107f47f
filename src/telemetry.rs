//! Logging: human-readable lines on the terminal, JSON lines in `<log_dir>/combined.log` (every
//! event) and `error.log` (warnings and errors), rotated daily through non-blocking writers
//! (tracing-appender), as the seed's Winston set-up promised. Child services' output arrives
//! here as events tagged with `service`. Retention is by count and total size ([`retention`]).
//! Error tracking: with a Sentry DSN, error events and panics go to Sentry (or GlitchTip) with
//! the release and environment ([`sentry_guard`], [`sentry_layer`]), sent through soko's own
//! reqwest client ([`sentry_transport`]).

pub mod progress;
pub mod retention;
mod sentry_transport;

use std::io::IsTerminal;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

/// Keeps the background writers alive; drop it last so buffered lines reach the files.
pub struct Guards(
    #[allow(dead_code)] Vec<WorkerGuard>,
    #[allow(dead_code)] Option<sentry::ClientInitGuard>,
);

/// Terminal-only logging for short commands (`soko status`, `soko doctor`, ...).
/// Long commands' steps ([`progress`]) go to stderr as lines, whatever the level.
pub fn init_terminal(level: &str) {
    let filter = EnvFilter::try_from_env("SOKO_LOG")
        .unwrap_or_else(|_| EnvFilter::new(level))
        .add_directive(
            format!("{PROGRESS}=off")
                .parse()
                .expect("a valid directive"),
        );
    let _ = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(progress::Lines::stderr())
        .try_init();
}

/// The tracing target of progress steps.
pub const PROGRESS: &str = "soko::progress";

/// One step of long work (`soko seed`, `backup`, `restore`, image builds, re-indexing): on a
/// command's stderr as a line (see [`progress::Lines`]), in `soko up`'s log as an info event.
/// `done`/`total`: a count so far (0 total: none).
pub fn progress(step: &str, done: u64, total: u64) {
    tracing::info!(target: PROGRESS, done, total, "{step}");
}

/// Terminal plus rotating JSON files, for `soko up`.
pub fn init_with_files(level: &str, log_dir: &Path, keep_files: usize) -> std::io::Result<Guards> {
    init_appliance(level, log_dir, keep_files, None)
}

/// The log files' prefixes in the log directory.
pub const LOG_PREFIXES: [&str; 2] = ["combined", "error"];

/// Error tracking: a Sentry client reporting to `dsn` with soko's release and the configured
/// environment (panics included: the panic integration is on). Keep the guard alive; dropping
/// it flushes what is queued. `Err`: the DSN is not valid.
pub fn sentry_guard(
    dsn: &str,
    cfg: &crate::config::alerts::Sentry,
) -> Result<sentry::ClientInitGuard, String> {
    let dsn: sentry::types::Dsn = dsn
        .trim()
        .parse()
        .map_err(|e| format!("sentry_dsn is not a valid DSN: {e}"))?;
    let mut opts = sentry::ClientOptions::new()
        .release(concat!("soko@", env!("CARGO_PKG_VERSION")))
        .environment(cfg.environment.clone())
        .sample_rate(cfg.sample_rate)
        .attach_stacktrace(true)
        .send_default_pii(false)
        .transport(sentry_transport::Factory);
    opts.dsn = Some(dsn);
    Ok(sentry::init(opts))
}

/// The tracing layer that turns error events into Sentry events (warnings and infos become
/// breadcrumbs); it does nothing while no Sentry client is bound.
pub fn sentry_layer<S>() -> sentry::integrations::tracing::SentryLayer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    sentry::integrations::tracing::layer().event_filter(|md| match *md.level() {
        tracing::Level::ERROR => sentry::integrations::tracing::EventFilter::Event,
        tracing::Level::WARN | tracing::Level::INFO => {
            sentry::integrations::tracing::EventFilter::Breadcrumb
        }
        _ => sentry::integrations::tracing::EventFilter::Ignore,
    })
}

/// [`init_with_files`] plus Sentry: error events and panics reported when `sentry` is given.
/// Retention is [`retention::prune`]'s: by count here at start, by count and total size in the
/// caller's periodic task. tracing-appender's own count limit is not used: it orders files by
/// creation time, which copied or restored log directories do not keep.
pub fn init_appliance(
    level: &str,
    log_dir: &Path,
    keep_files: usize,
    sentry: Option<sentry::ClientInitGuard>,
) -> std::io::Result<Guards> {
    std::fs::create_dir_all(log_dir)?;
    retention::prune(log_dir, &LOG_PREFIXES, keep_files, 0);
    let appender = |name: &str| {
        RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_prefix(name)
            .filename_suffix("log")
            .build(log_dir)
            .map_err(std::io::Error::other)
    };
    let (combined, g1) = tracing_appender::non_blocking(appender("combined")?);
    let (errors, g2) = tracing_appender::non_blocking(appender("error")?);
    let filter = || EnvFilter::try_from_env("SOKO_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .with_filter(filter()),
        )
        .with(
            fmt::layer()
                .json()
                .with_current_span(true)
                .with_writer(combined)
                .with_filter(filter()),
        )
        .with(
            fmt::layer()
                .json()
                .with_current_span(true)
                .with_writer(errors)
                .with_filter(LevelFilter::WARN),
        )
        // Filtered like the logs: unfiltered, every trace-level callsite of every crate would
        // be enabled just to be ignored by the Sentry layer.
        .with(
            sentry
                .is_some()
                .then(|| sentry_layer().with_filter(filter())),
        )
        .try_init()
        .map_err(std::io::Error::other)?;
    Ok(Guards(vec![g1, g2], sentry))
}
