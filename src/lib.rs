//! Soko Africa Marketplace: a self-hosted visual-discovery marketplace appliance.
//!
//! Layers (a module uses only those below it): `cli` → `app` → `console`, `ops`, `tls`, `web`,
//! `workers` → `supervisor` → `store`, `vectors`, `embed`, `accounts`, `imaging` → `market`,
//! `config`, `metrics`, `clock`, `telemetry`, `process_env`. `ARCHITECTURE.md` at the repository's root has the
//! arrows, their few exceptions and where new code goes; the README says what runs where.

pub mod accounts;
pub mod app;
pub mod background;
pub mod catalogue;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod embed;
pub mod imaging;
pub mod market;
pub mod metrics;
pub mod objects;
pub mod ops;
pub mod process_env;
pub mod search;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod tls;
pub mod vectors;
pub mod web;
pub mod workers;

/// Select ring as the process's TLS crypto provider (for sqlx, the ACME client and the HTTPS
/// server alike), before anything builds a TLS configuration. Idempotent.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
