//! What a backup run reports: the answer of "run a backup now" (`soko backup`, the console,
//! `POST /v1/backup` on the admin socket) and each archive's part in it.

use serde::{Deserialize, Serialize};

/// The answer to "run a backup now".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupOutcome {
    pub set_id: String,
    pub dir: String,
    pub ok: bool,
    pub archives: Vec<ArchiveReport>,
    pub secrets_included: bool,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ArchiveReport {
    pub kind: String,
    pub ok: bool,
    pub path: Option<String>,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    pub copied_to: Option<String>,
    pub error: Option<String>,
}

/// What `Control::backup_now` returns: `None` when there is no backup engine, `Err` when a
/// run could not start (another one is running, the database is down).
pub type BackupFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Option<Result<BackupOutcome, String>>> + Send + 'a>,
>;
