//! A warm standby's copy of the primary's photos. Replication brings every `product_images`
//! row; this brings the files they name, from the primary's own image URLs
//! (`<source>/img/{sha}/orig`, `/img/{sha}/800.webp`, `/img/{sha}/320.webp`).
//!
//! Nothing is trusted that can be checked: an original must hash to its name (its SHA-256) and a
//! variant must come with the variant's own ETag (`"{sha}-{width}"`, not the original the
//! primary serves while its worker has not made the variant yet) and be a WebP; both are capped
//! at the largest upload while they stream. So a plain-HTTP link on a private network is safe.
//! Files are written once, content-addressed (`Files::write_once`), like the primary's.
//!
//! The standby's database is read-only, so the walk keeps no state there: the files are the
//! state. A restart walks every row once (a `stat` per file), then only rows after the lowest
//! one still incomplete. It runs while the node is a standby; at promotion it stops (the
//! primary is gone) and `soko promote` says how many photos were still missing.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use crate::imaging::codec::{Kind, MAX_BYTES, VARIANTS};
use crate::store::images::{self, Files, valid_sha};

/// Rows read per query.
const PAGE: u32 = 1000;

/// What `soko status` shows of the copy (in the snapshot's `replication.images`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FollowView {
    /// Where photos come from; `None`: not copied (no `standby.images_from`, no domain).
    pub source: Option<String>,
    /// Image rows the last finished walk saw.
    pub rows: u64,
    /// Of those, rows whose original or a variant is still missing here.
    pub missing: u64,
    /// Files fetched since soko started.
    pub fetched: u64,
    /// Fetches that failed in the last walk.
    pub failed: u64,
    /// When the last walk ended (Unix seconds).
    pub last_round_unix: Option<u64>,
    /// The last failure, e.g. `GET http://10.0.0.5/img/ab…/orig: 404 Not Found`.
    pub last_error: Option<String>,
    /// Photos are in the bucket primary and standby share (`images.store: s3`): nothing to copy.
    #[serde(default)]
    pub shared_bucket: bool,
}

impl FollowView {
    /// One line for `soko status`.
    pub fn line(&self) -> String {
        if self.shared_bucket {
            return "photos: in the shared bucket (images.store: s3), nothing to copy".into();
        }
        let Some(source) = &self.source else {
            return "photos: not copied (set standby.images_from to the primary's storefront)"
                .into();
        };
        if self.last_round_unix.is_none() {
            return format!("photos: first walk under way, from {source}");
        }
        format!(
            "photos: {} of {} here, from {source} · {} fetched{}",
            self.rows - self.missing,
            self.rows,
            self.fetched,
            match (&self.last_error, self.failed) {
                (Some(e), n) if n > 0 => format!(" · {n} failed, last: {e}"),
                _ => String::new(),
            }
        )
    }
}

pub type SharedView = Arc<Mutex<FollowView>>;

/// The file one row still lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Original(Kind),
    Variant(u32),
}

/// Copy photos from `source` every `every` until `stop`; progress in `view`.
pub async fn run(
    db: MySqlPool,
    files: Files,
    source: String,
    every: Duration,
    parallel: usize,
    view: SharedView,
    stop: CancellationToken,
) {
    view.lock().unwrap().source = Some(source.clone());
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("soko-standby/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            view.lock().unwrap().last_error = Some(format!("no HTTP client: {e}"));
            return;
        }
    };
    let follower = Follower {
        db,
        files,
        source,
        client,
        parallel: parallel.max(1),
        view,
    };
    // Rows up to `done.0` (`done.1` of them) had every file at the last look.
    let mut done = (0u64, 0u64);
    loop {
        tokio::select! {
            r = follower.round(done) => match r {
                Ok(d) => done = d,
                Err(e) => {
                    tracing::warn!("standby photos: {e}");
                    follower.view.lock().unwrap().last_error = Some(e.to_string());
                }
            },
            () = stop.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return,
        }
    }
}

struct Follower {
    db: MySqlPool,
    files: Files,
    source: String,
    client: reqwest::Client,
    parallel: usize,
    view: SharedView,
}

impl Follower {
    /// One walk over the rows after `done` (`(id, rows up to it)`): fetch what is missing.
    /// Returns the new `done`: just before the first row still missing something.
    async fn round(&self, done: (u64, u64)) -> Result<(u64, u64), crate::store::Error> {
        let (mut after, mut rows) = done;
        let mut next = None;
        let (mut missing_rows, mut failed) = (0u64, 0u64);
        loop {
            let page = images::rows_after(&self.db, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.0;
            let ids: Vec<u64> = page.iter().map(|r| r.0).collect();
            let wants = {
                let files = self.files.clone();
                tokio::task::spawn_blocking(move || missing(&files, page))
                    .await
                    .unwrap_or_default()
            };
            let results: Vec<(u64, Result<bool, String>)> = futures_util::stream::iter(
                wants
                    .into_iter()
                    .map(|(id, sha, want)| async move { (id, self.fetch(&sha, want).await) }),
            )
            .buffer_unordered(self.parallel)
            .collect()
            .await;
            let mut incomplete = BTreeSet::new();
            for (id, r) in results {
                match r {
                    Ok(true) => self.view.lock().unwrap().fetched += 1,
                    // Not there yet on the primary (a variant its worker has not made).
                    Ok(false) => {
                        incomplete.insert(id);
                    }
                    Err(e) => {
                        failed += 1;
                        incomplete.insert(id);
                        self.view.lock().unwrap().last_error = Some(e);
                    }
                }
            }
            missing_rows += incomplete.len() as u64;
            if next.is_none()
                && let Some(first) = incomplete.first()
            {
                let before = ids.iter().filter(|id| *id < first).count() as u64;
                next = Some((first - 1, rows + before));
            }
            rows += ids.len() as u64;
        }
        let mut v = self.view.lock().unwrap();
        v.rows = rows;
        v.missing = missing_rows;
        v.failed = failed;
        v.last_round_unix = Some(crate::clock::now_unix());
        if failed == 0 {
            v.last_error = None;
        }
        Ok(next.unwrap_or((after, rows)))
    }

    /// Fetch one file and write it: `Ok(true)` written, `Ok(false)` not ready on the primary.
    async fn fetch(&self, sha: &str, want: Want) -> Result<bool, String> {
        let (url, path) = match want {
            Want::Original(kind) => (
                format!("{}/img/{sha}/orig", self.source),
                self.files.original(sha, kind.ext()),
            ),
            Want::Variant(w) => (
                format!("{}/img/{sha}/{w}.webp", self.source),
                self.files.variant(sha, w),
            ),
        };
        let fail = |what: String| format!("GET {url}: {what}");
        let resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(resp.status().to_string()));
        }
        if let Want::Variant(w) = want {
            let etag = resp
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if etag != format!("\"{sha}-{w}\"") {
                return Ok(false);
            }
        }
        let mut body = Vec::new();
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(fail(format!("larger than {MAX_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        match want {
            Want::Original(_) => {
                let got: String = Sha256::digest(&body)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                if got != sha {
                    return Err(fail(format!("the bytes hash to {got}, not to their name")));
                }
            }
            Want::Variant(_) => {
                if body.len() < 12 || &body[..4] != b"RIFF" || &body[8..12] != b"WEBP" {
                    return Err(fail("not a WebP image".into()));
                }
            }
        }
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || files.write_once(&path, &body))
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(format!("writing it: {e}")))?;
        Ok(true)
    }
}

/// The files each row lacks here (blocking: a `stat` each): `(row id, sha, what)`. An original
/// comes before its variants (the primary serves the variants only once its worker made them).
fn missing(files: &Files, page: Vec<(u64, String, String)>) -> Vec<(u64, String, Want)> {
    let mut out = Vec::new();
    for (id, sha, mime) in page {
        let Some(kind) = Kind::ALL.into_iter().find(|k| k.mime() == mime) else {
            continue;
        };
        if !valid_sha(&sha) {
            continue;
        }
        if !files.original(&sha, kind.ext()).is_file() {
            out.push((id, sha.clone(), Want::Original(kind)));
        }
        for (w, _) in VARIANTS {
            if !files.variant(&sha, w).is_file() {
                out.push((id, sha.clone(), Want::Variant(w)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_says_what_is_copied_and_what_failed() {
        let mut v = FollowView::default();
        assert!(v.line().contains("standby.images_from"), "{}", v.line());
        v.source = Some("http://10.0.0.5".into());
        assert!(v.line().contains("first walk"), "{}", v.line());
        v.rows = 10;
        v.missing = 2;
        v.fetched = 24;
        v.failed = 1;
        v.last_round_unix = Some(1);
        v.last_error = Some("GET x: 404 Not Found".into());
        let line = v.line();
        assert!(
            line.contains("8 of 10") && line.contains("24 fetched") && line.contains("404"),
            "{line}"
        );
    }

    #[test]
    fn a_row_lacks_its_original_before_its_variants() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::new(dir.path());
        let sha = "ab".repeat(32);
        let page = vec![(7, sha.clone(), "image/png".to_owned())];
        let wants = missing(&files, page.clone());
        assert_eq!(wants[0].2, Want::Original(Kind::Png));
        assert_eq!(wants.len(), 1 + VARIANTS.len());
        files
            .write_once(&files.original(&sha, "png"), b"png")
            .unwrap();
        for (w, _) in VARIANTS {
            files.write_once(&files.variant(&sha, w), b"webp").unwrap();
        }
        assert!(missing(&files, page).is_empty());
        // A row naming something that is not a SHA-256 or not an image type is skipped.
        let odd = vec![
            (8, "../../etc".to_owned(), "image/png".to_owned()),
            (9, sha.clone(), "text/html".to_owned()),
        ];
        assert!(missing(&files, odd).is_empty());
    }
}
