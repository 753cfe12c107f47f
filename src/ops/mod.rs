//! Operations: readiness, the status snapshot, the admin socket, preflight checks.

pub mod admin;
pub mod alerts;
pub mod backup_view;
pub mod checklist;
pub mod preflight;
pub mod readiness;
pub mod status;
