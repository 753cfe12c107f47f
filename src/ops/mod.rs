//! Operations: readiness, the status snapshot, the admin socket, preflight checks.

pub mod admin;
pub mod alerts;
pub mod backup_view;
pub mod catalogue_view;
pub mod check;
pub mod checklist;
pub mod domain;
pub mod logs;
pub mod metrics;
pub mod node_view;
pub mod preflight;
pub mod readiness;
pub mod replication_view;
pub mod resources;
pub mod snapshot;
pub mod status;
pub mod status_text;
pub mod sync_view;
