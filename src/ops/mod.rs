//! Operations: readiness, the status snapshot, the admin socket, preflight checks.

pub mod admin;
pub mod preflight;
pub mod readiness;
pub mod status;
pub mod sync_view;
