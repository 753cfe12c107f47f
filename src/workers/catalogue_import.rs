//! The import worker: drains the URLs of sellers' catalogue imports (`catalogue_import_urls`,
//! migration 0016). Each claimed URL (a lease, so a crash or restart hands it to the next
//! round) is fetched through the SSRF-safe fetcher: a sitemap queues its pages; a page with a
//! product (JSON-LD, OpenGraph, a `KES n` price) creates or updates the seller's product
//! through the store's product insert and its outbox; a shop page queues its links, to
//! `catalogue.import.max_depth`, within `max_pages`. 404/410 is counted and skipped; network
//! failures are retried a few times, later. An import whose URLs are all done is finished and
//! its seller told.

use std::sync::Arc;
use std::time::Duration;

use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use super::run_loop::{Job, Outcome, Pace, run_loop};
use crate::catalogue::fetch::{Answer, FetchError, Fetcher, Want, parse_url};
use crate::catalogue::notices::{Notice, seller_notice};
use crate::catalogue::{self, extract};
use crate::config::Config;
use crate::config::catalogue::Catalogue;
use crate::market::money::Currency;
use crate::market::quota::Quotas;
use crate::store::{self, imports};

/// The name in `worker_heartbeats` and the pause switch.
pub const WORKER: &str = "catalogue-import";
/// How long a claimed URL stays out of other workers' reach (longer than a fetch with its
/// retries can take).
const LEASE: Duration = Duration::from_secs(180);
/// Tries of a URL that fails for a passing reason (network, 5xx, still throttled).
const MAX_ATTEMPTS: u32 = 3;
/// Links taken from one page at most.
const LINKS_PER_PAGE: usize = 500;

/// What the worker needs: the fetcher and the rules.
#[derive(Clone)]
pub struct Importer {
    pub db: MySqlPool,
    pub fetcher: Arc<Fetcher>,
    pub cfg: Catalogue,
    pub quotas: Quotas,
    pub currency: Currency,
    /// Where photos go, as uploads (`images.store`; `from_config`: `<data_dir>/images`, and
    /// `soko up` sets the configured store).
    pub images: crate::objects::images::ImageStore,
    /// The product and photo transactions running at once: the pages are fetched 20 at a time,
    /// but their writes take the seller's row lock one after another anyway, and each waiting
    /// one would hold a connection of the pool the shop's pages use (with 20 waiting, a page
    /// found none within the pool's 3 s and the import itself failed with `PoolTimedOut`).
    pub writes: Arc<tokio::sync::Semaphore>,
}

/// See [`Importer::writes`].
const WRITES_AT_ONCE: usize = 2;

impl Importer {
    /// From `appliance.yaml`: the fetcher (`catalogue.fetch`), discovery limits, the sellers'
    /// quotas (`limits:`) and the default currency.
    pub fn from_config(cfg: &Config, db: MySqlPool) -> Result<Self, String> {
        let ua = Fetcher::user_agent(&cfg.domain);
        Ok(Importer {
            db,
            fetcher: Arc::new(Fetcher::new(&cfg.catalogue.fetch, &ua)?),
            cfg: cfg.catalogue.clone(),
            quotas: cfg.limits.quotas(),
            currency: Currency::parse(&cfg.currency).map_err(|e| e.to_string())?,
            images: crate::objects::images::ImageStore::local(crate::store::images::Files::new(
                cfg.data_dir.join("images"),
            )),
            writes: Arc::new(tokio::sync::Semaphore::new(WRITES_AT_ONCE)),
        })
    }
}

/// One round: claim up to `catalogue.fetch.parallel` due URLs, do them at once (the fetcher
/// keeps to its limits per host), then finish the imports left with nothing queued. How many
/// URLs were claimed. Tests drive the worker with this.
pub async fn run_batch(imp: &Importer) -> Result<usize, store::Error> {
    let jobs = imports::claim_urls(&imp.db, imp.cfg.fetch.parallel, LEASE).await?;
    let results = futures_util::future::join_all(jobs.iter().map(|j| process(imp, j))).await;
    for r in results {
        r?;
    }
    for (import_id, seller_id) in imports::finish_imports(&imp.db).await? {
        tracing::info!(import_id, seller_id, "catalogue import finished");
        seller_notice(&imp.db, seller_id, Notice::ImportFinished { import_id }).await;
    }
    Ok(jobs.len())
}

/// Run [`run_batch`] until nothing is queued (`soko catalogue import --wait`, tests, the
/// benchmark); URLs waiting for a retry later are left to the worker.
pub async fn drain(imp: &Importer) -> Result<(), store::Error> {
    while run_batch(imp).await? > 0 {}
    Ok(())
}

async fn process(imp: &Importer, job: &imports::UrlJob) -> Result<(), store::Error> {
    let db = &imp.db;
    let url = match parse_url(&job.url) {
        Ok(u) => u,
        Err(e) => {
            return imports::finish_url(db, job.id, true, "refused", &e.to_string(), None).await;
        }
    };
    let ask = imp.fetcher.ask(Want::PageOrSitemap);
    let fetched = match imp.fetcher.fetch(&url, &ask).await {
        Ok(Answer::Body(f)) => f,
        Ok(Answer::NotModified) => {
            return imports::finish_url(db, job.id, false, "unchanged", "304", None).await;
        }
        Err(e) => return fetch_failed(imp, job, &e).await,
    };
    let body = String::from_utf8_lossy(&fetched.body);
    let max_pages = imp.cfg.import.max_pages;
    if extract::is_sitemap(&fetched.content_type, &body) {
        let sm = extract::sitemap(&body, &fetched.url, max_pages as usize);
        let urls: Vec<String> = sm.urls.iter().map(|u| u.to_string()).collect();
        let added = imports::add_found(
            db,
            job.import_id,
            &urls,
            job.depth.saturating_add(1),
            max_pages,
        )
        .await?;
        let what = if sm.index { "sitemaps" } else { "pages" };
        return imports::finish_url(
            db,
            job.id,
            false,
            "sitemap",
            &format!("{} {what} listed, {added} new", urls.len()),
            None,
        )
        .await;
    }
    // A page the seller listed among several is a product page; a single URL is their shop.
    let given = job.depth == 0 && job.urls_given > 1;
    let Some(product) = extract::product(&body, &fetched.url, given) else {
        let mut detail = "no product on the page".to_owned();
        if u32::from(job.depth) < imp.cfg.import.max_depth {
            let links: Vec<String> = extract::links(&body, &fetched.url, LINKS_PER_PAGE)
                .iter()
                .map(|u| u.to_string())
                .collect();
            let added =
                imports::add_found(db, job.import_id, &links, job.depth + 1, max_pages).await?;
            detail = format!("no product on the page; {} links, {added} new", links.len());
        }
        return imports::finish_url(db, job.id, false, "no_product", &detail, None).await;
    };
    let checked = match catalogue::check(&product, imp.currency) {
        Ok(c) => c,
        Err(errors) => {
            let detail = catalogue::describe(&errors);
            return imports::finish_url(db, job.id, true, "invalid", &detail, None).await;
        }
    };
    // The page's own address (after redirects) is the product's source.
    let source_url = fetched.url.to_string();
    let item = imports::Item {
        source_url: &source_url,
        name: &checked.name,
        description: &checked.description,
        price_minor: checked.price_minor,
        currency: &checked.currency,
        content_hash: &checked.content_hash,
        extracted_from: checked.source.as_str(),
        etag: fetched.etag.as_deref(),
        last_modified: fetched.last_modified.as_deref(),
    };
    let upserted = {
        let _turn = imp.writes.acquire().await;
        imports::upsert_product(db, job.seller_id, &item, &imp.quotas).await?
    };
    let (outcome, product_id) = match upserted {
        imports::Upserted::Created(id) => ("created", Some(id)),
        imports::Upserted::Updated(id) => ("updated", Some(id)),
        imports::Upserted::Unchanged(id) => ("unchanged", Some(id)),
        imports::Upserted::OverQuota(why) => {
            return imports::finish_url(db, job.id, true, "over_quota", &why, None).await;
        }
    };
    let mut detail = format!("{} ({})", checked.name, checked.source.as_str());
    if let (Some(id), "created" | "updated") = (product_id, outcome) {
        let (added, problems) = photos(imp, id, &checked.images).await?;
        detail.push_str(&format!("; {added} photos"));
        if let Some(first) = problems.first() {
            detail.push_str(&format!(", {} not taken ({first})", problems.len()));
        }
    }
    imports::finish_url(db, job.id, false, outcome, &detail, product_id).await
}

/// Photos of an imported product at most.
const PHOTOS: usize = 4;

/// The product's photos through the fetcher (image types, the image cap; all of them at once,
/// within the fetcher's per-host limit) and then the upload pipeline's steps: decoded within
/// the limits, metadata stripped (`imaging::meta`), the original written once under its hash,
/// its row, variants job and vector re-sync in one transaction within the seller's photo quota
/// (`store::images::add_within`). A photo that fails is named in the URL's detail, never
/// failing the product. When every photo of the page was read (and it has some), the photos
/// earlier imports took
/// from it that it no longer shows are removed first (`imported_photos`; a photo the seller
/// added by hand is never removed), so a changed photo list replaces the old one. (New photos,
/// added ones already there.)
async fn photos(
    imp: &Importer,
    product_id: u64,
    urls: &[reqwest::Url],
) -> Result<(usize, Vec<String>), store::Error> {
    let urls: Vec<&reqwest::Url> = urls.iter().take(PHOTOS).collect();
    let fetched = futures_util::future::join_all(urls.iter().map(|url| async move {
        match imp.fetcher.fetch(url, &imp.fetcher.ask(Want::Image)).await {
            Ok(Answer::Body(f)) => match prepare(f.body).await {
                Ok(p) => Ok(Some(p)),
                Err(why) => Err(format!("{url}: {why}")),
            },
            Ok(Answer::NotModified) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }))
    .await;
    let mut problems = Vec::new();
    let mut ready = Vec::new();
    for f in fetched {
        match f {
            Ok(Some(p)) => ready.push(p),
            Ok(None) => {}
            Err(why) => problems.push(why),
        }
    }
    // Only a complete new list replaces the old (a page that lost its photos, or one that
    // failed to load, keeps what the product has).
    if problems.is_empty() && !ready.is_empty() && ready.len() == urls.len() {
        let now: Vec<&str> = ready.iter().map(|p| p.sha.as_str()).collect();
        for old in imports::imported_photos(&imp.db, product_id).await? {
            if !now.contains(&old.as_str()) {
                let _turn = imp.writes.acquire().await;
                imports::drop_imported_photo(&imp.db, product_id, &old).await?;
            }
        }
    }
    let mut added = 0;
    for p in ready {
        let sha = p.sha.clone();
        match store_photo(imp, product_id, p).await? {
            Ok(new) => {
                imports::record_imported_photo(&imp.db, product_id, &sha).await?;
                added += usize::from(new);
            }
            Err(why) => problems.push(why),
        }
    }
    Ok((added, problems))
}

/// A photo decoded within the limits, its metadata stripped, named by its hash.
struct Prepared {
    clean: Vec<u8>,
    kind: crate::imaging::codec::Kind,
    width: u32,
    height: u32,
    sha: String,
}

async fn prepare(bytes: Vec<u8>) -> Result<Prepared, String> {
    use crate::imaging::{codec, meta};
    use sha2::{Digest, Sha256};
    let pool = crate::background::current_pool();
    tokio::task::spawn_blocking(move || {
        pool.install(|| {
            let d = codec::decode(&bytes).map_err(|e| e.to_string())?;
            let clean = meta::strip(d.kind, &bytes, d.orientation).map_err(|e| e.to_string())?;
            let sha: String = Sha256::digest(&clean)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Ok::<_, String>(Prepared {
                kind: d.kind,
                width: d.width(),
                height: d.height(),
                clean,
                sha,
            })
        })
    })
    .await
    .unwrap_or_else(|e| Err(format!("decoding panicked: {e}")))
}

/// One prepared photo into the store: `Ok(true)` stored, `Ok(false)` already there,
/// `Err(why)` refused.
async fn store_photo(
    imp: &Importer,
    product_id: u64,
    p: Prepared,
) -> Result<Result<bool, String>, store::Error> {
    use crate::store::images::{self as store_images, Added, NewImage};
    let Prepared {
        clean,
        kind,
        width,
        height,
        sha,
    } = p;
    let files = imp.images.clone();
    let size = u32::try_from(clean.len()).unwrap_or(u32::MAX);
    let created = match files.put_original(&sha, kind, clean.into()).await {
        Ok(created) => created,
        Err(e) => {
            return Ok(Err(format!(
                "storing the photo ({}): {e}",
                files.describe()
            )));
        }
    };
    let turn = imp.writes.acquire().await;
    let added = store_images::add_within(
        &imp.db,
        &NewImage {
            product_id,
            sha256: &sha,
            mime: kind.mime(),
            width,
            height,
            bytes: size,
        },
        Some(&imp.quotas),
    )
    .await;
    drop(turn);
    let refused = match added {
        Ok(Added::New(_)) => return Ok(Ok(true)),
        Ok(Added::Existing(_)) => return Ok(Ok(false)),
        Ok(Added::OverQuota(over)) => over.to_string(),
        Ok(Added::Full) => "the product has as many photos as it may".to_owned(),
        Err(e) => {
            forget(&imp.db, &files, &sha, kind, created).await;
            return Err(e);
        }
    };
    forget(&imp.db, &files, &sha, kind, created).await;
    Ok(Err(refused))
}

/// Remove an original this import wrote and no row names.
async fn forget(
    db: &MySqlPool,
    files: &crate::objects::images::ImageStore,
    sha: &str,
    kind: crate::imaging::codec::Kind,
    created: bool,
) {
    if !created
        || crate::store::images::sha_in_use(db, sha)
            .await
            .unwrap_or(true)
    {
        return;
    }
    if let Err(e) = files.remove_original(sha, kind).await {
        tracing::warn!(%sha, "could not remove an imported photo no row names: {e}");
    }
}

async fn fetch_failed(
    imp: &Importer,
    job: &imports::UrlJob,
    e: &FetchError,
) -> Result<(), store::Error> {
    let db = &imp.db;
    let detail = e.to_string();
    match e {
        FetchError::Gone { .. } => {
            imports::finish_url(db, job.id, false, "gone", &detail, None).await
        }
        FetchError::RobotsDisallow { .. } => {
            imports::finish_url(db, job.id, false, "robots", &detail, None).await
        }
        FetchError::Refused { .. } | FetchError::BadUrl { .. } => {
            imports::finish_url(db, job.id, false, "refused", &detail, None).await
        }
        FetchError::Network { .. } | FetchError::Timeout { .. } | FetchError::Throttled { .. }
            if job.attempts < MAX_ATTEMPTS =>
        {
            imports::retry_url(
                db,
                job.id,
                Duration::from_secs(30 * u64::from(job.attempts)),
                &detail,
            )
            .await
        }
        FetchError::Status { status, .. } if *status >= 500 && job.attempts < MAX_ATTEMPTS => {
            imports::retry_url(
                db,
                job.id,
                Duration::from_secs(30 * u64::from(job.attempts)),
                &detail,
            )
            .await
        }
        _ => imports::finish_url(db, job.id, true, e.kind(), &detail, None).await,
    }
}

struct Rounds {
    imp: Importer,
    detail: String,
    done: u64,
}

impl Job for Rounds {
    type Error = store::Error;

    async fn claim_and_run(&mut self) -> Result<Outcome, Self::Error> {
        let n = run_batch(&self.imp).await?;
        self.done += n as u64;
        if n == 0 {
            self.detail = format!("idle; {} pages read since start", self.done);
            Ok(Outcome::Idle)
        } else {
            self.detail = format!("read {n} pages; {} since start", self.done);
            Ok(Outcome::Worked)
        }
    }

    fn activity(&self, _: Outcome) -> Option<String> {
        Some(self.detail.clone())
    }

    fn heartbeat(&mut self) -> String {
        self.detail.clone()
    }
}

/// Run until `stop`; looks for queued URLs every `idle`.
pub async fn run(imp: Importer, idle: Duration, stop: CancellationToken) {
    let pace = Pace {
        name: WORKER,
        label: "catalogue import worker",
        idle,
        max_backoff: Duration::from_secs(300),
        heartbeat: Duration::from_secs(60),
        beat_when_failing: true,
        log_recovery: true,
    };
    let db = imp.db.clone();
    let job = Rounds {
        imp,
        detail: String::new(),
        done: 0,
    };
    run_loop(pace, db, job, stop).await;
}
