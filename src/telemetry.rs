//! Logging: human-readable lines on the terminal, JSON lines in `<log_dir>/combined.log` (every
//! event) and `error.log` (warnings and errors), rotated daily through non-blocking writers
//! (tracing-appender), as the seed's Winston set-up promised. Child services' output arrives
//! here as events tagged with `service`.

use std::io::IsTerminal;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

/// Keeps the background writers alive; drop it last so buffered lines reach the files.
pub struct Guards(#[allow(dead_code)] Vec<WorkerGuard>);

/// Terminal-only logging for short commands (`soko status`, `soko doctor`, ...).
pub fn init_terminal(level: &str) {
    let filter = EnvFilter::try_from_env("SOKO_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .try_init();
}

/// Terminal plus rotating JSON files, for `soko up`.
pub fn init_with_files(level: &str, log_dir: &Path, keep_files: usize) -> std::io::Result<Guards> {
    std::fs::create_dir_all(log_dir)?;
    let appender = |name: &str| {
        RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_prefix(name)
            .filename_suffix("log")
            .max_log_files(keep_files)
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
        .try_init()
        .map_err(std::io::Error::other)?;
    Ok(Guards(vec![g1, g2]))
}
