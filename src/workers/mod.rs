//! Background work. A worker never talks to the web layer: it reads durable state from `store`
//! (an outbox or the `jobs` table), does the work, writes the result back, and can crash and
//! resume at any point because every job is idempotent.

pub mod backup;
pub mod catalogue_import;
pub mod catalogue_recheck;
pub mod control;
pub mod event_rollup;
pub mod image_follow;
pub mod images;
pub mod lease;
pub mod profile_switch;
pub mod quality;
pub mod recommend;
pub mod reconcile;
pub mod run_loop;
pub mod vector_sync;
