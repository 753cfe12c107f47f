//! The image store: where product photos are read and written, on local disk or in an
//! S3-compatible bucket (`images.store`). Every user of photos goes through it: the upload
//! (web and API), the variants worker, quality control, the vector sync (embedding reads the
//! photo), catalogue import, the seed command and `soko images migrate`.
//!
//! Both stores are content-addressed, so a write is idempotent and a name is a promise about
//! the bytes. On disk the layout is `store::images::Files`' (`<images>/ab/cdef….jpg`, variants
//! `cdef….320.webp` beside it). In S3 an image is a "directory" of its own:
//! `<prefix>/<sha[0..2]>/<sha>/orig` (its `content-type` says the format),
//! `<prefix>/<sha[0..2]>/<sha>/800.webp` and `.../320.webp`.

use std::sync::Arc;

use bytes::Bytes;

use super::Error;
use super::s3::Client;
use crate::config::Config;
use crate::config::images::{S3 as S3Config, StoreKind};
use crate::config::secrets::Secrets;
use crate::imaging::codec::Kind;
use crate::store::images::{Files, valid_sha};

/// One stored object of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Original,
    /// The WebP variant this many pixels wide (320 or 800).
    Variant(u32),
}

impl Object {
    /// The last part of its S3 key.
    pub fn name(self) -> String {
        match self {
            Object::Original => "orig".into(),
            Object::Variant(w) => format!("{w}.webp"),
        }
    }
}

/// The S3 key of an image's object: `<prefix>/<sha[0..2]>/<sha>/<orig|800.webp|320.webp>`
/// (no leading slash when the prefix is empty). `sha` must pass [`valid_sha`].
pub fn key(prefix: &str, sha: &str, object: Object) -> String {
    debug_assert!(valid_sha(sha));
    let prefix = prefix.trim_matches('/');
    let rest = format!("{}/{sha}/{}", &sha[..2], object.name());
    if prefix.is_empty() {
        rest
    } else {
        format!("{prefix}/{rest}")
    }
}

/// The format of an original from its `content-type`, else from its first bytes.
pub fn kind_of(mime: Option<&str>, bytes: &[u8]) -> Option<Kind> {
    let by_mime = mime.and_then(|m| {
        let m = m.split(';').next().unwrap_or("").trim();
        Kind::ALL.into_iter().find(|k| k.mime() == m)
    });
    by_mime.or_else(|| {
        if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(Kind::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Kind::Png)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Kind::Webp)
        } else {
            None
        }
    })
}

/// Photos on local disk or in a bucket; a clone is a reference count.
#[derive(Clone)]
pub struct ImageStore(Arc<Inner>);

enum Inner {
    Local(Files),
    S3 {
        client: Box<Client>,
        prefix: String,
        cache: Cache,
    },
}

/// The variants last read from (or written to) the bucket, up to a byte budget, the oldest
/// dropped first. Keyed by content address, so an entry is never stale.
struct Cache {
    budget: usize,
    inner: std::sync::Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    bytes: usize,
    map: std::collections::HashMap<(String, u32), Bytes>,
    order: std::collections::VecDeque<(String, u32)>,
}

impl Cache {
    fn new(budget: usize) -> Cache {
        Cache {
            budget,
            inner: std::sync::Mutex::new(CacheInner::default()),
        }
    }

    fn get(&self, sha: &str, width: u32) -> Option<Bytes> {
        let inner = self.inner.lock().ok()?;
        inner.map.get(&(sha.to_owned(), width)).cloned()
    }

    fn put(&self, sha: &str, width: u32, bytes: &Bytes) {
        // A variant larger than an eighth of the budget is not worth the room.
        if bytes.len() > self.budget / 8 {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let key = (sha.to_owned(), width);
        if inner.map.contains_key(&key) {
            return;
        }
        while inner.bytes + bytes.len() > self.budget {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(b) = inner.map.remove(&old) {
                inner.bytes -= b.len();
            }
        }
        inner.bytes += bytes.len();
        inner.order.push_back(key.clone());
        inner.map.insert(key, bytes.clone());
    }
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl From<Files> for ImageStore {
    fn from(files: Files) -> ImageStore {
        ImageStore::local(files)
    }
}

impl From<&Files> for ImageStore {
    fn from(files: &Files) -> ImageStore {
        ImageStore::local(files.clone())
    }
}

impl From<&ImageStore> for ImageStore {
    fn from(store: &ImageStore) -> ImageStore {
        store.clone()
    }
}

impl ImageStore {
    /// Files under one directory (`<data_dir>/images`).
    pub fn local(files: Files) -> ImageStore {
        ImageStore(Arc::new(Inner::Local(files)))
    }

    /// The bucket of `images.s3`, with the keys from the secrets: `images_s3_*`, else the
    /// backups' `s3_*`.
    pub fn s3(cfg: &S3Config, secrets: &Secrets) -> Result<ImageStore, Error> {
        ImageStore::s3_cached(cfg, secrets, 0)
    }

    /// [`s3`](Self::s3) with `cache_mb` MiB of the variants last served kept in memory.
    pub fn s3_cached(
        cfg: &S3Config,
        secrets: &Secrets,
        cache_mb: u64,
    ) -> Result<ImageStore, Error> {
        let pick = |own: &Option<crate::config::secrets::Secret>,
                    shared: &Option<crate::config::secrets::Secret>| {
            own.as_ref()
                .filter(|s| !s.is_empty())
                .or(shared.as_ref().filter(|s| !s.is_empty()))
                .map(|s| s.expose().to_owned())
        };
        let key_id = pick(&secrets.images_s3_access_key_id, &secrets.s3_access_key_id);
        let secret = pick(
            &secrets.images_s3_secret_access_key,
            &secrets.s3_secret_access_key,
        );
        let (Some(key_id), Some(secret)) = (key_id, secret) else {
            return Err(Error::Refused(
                "images.s3 is configured but its keys are missing from the secrets file: \
                 images_s3_access_key_id / images_s3_secret_access_key (or the backups' \
                 s3_access_key_id / s3_secret_access_key, or SOKO_IMAGES_S3_ACCESS_KEY_ID / \
                 SOKO_IMAGES_S3_SECRET_ACCESS_KEY)"
                    .into(),
            ));
        };
        let mut client = Client::with_keys(&cfg.client_config(), "images.s3", &key_id, &secret)?;
        // A photo waits for its bytes: a short first back-off (0.1 s, then 0.4 s).
        client.backoff = std::time::Duration::from_millis(100);
        Ok(ImageStore(Arc::new(Inner::S3 {
            client: Box::new(client),
            prefix: cfg.prefix().to_owned(),
            cache: Cache::new(usize::try_from(cache_mb << 20).unwrap_or(usize::MAX)),
        })))
    }

    /// The store `images.store` names.
    pub fn from_config(cfg: &Config, secrets: &Secrets) -> Result<ImageStore, Error> {
        match cfg.images.store {
            StoreKind::Local => Ok(ImageStore::local(Files::new(cfg.data_dir.join("images")))),
            StoreKind::S3 => {
                let s3 = cfg.images.s3.as_ref().ok_or_else(|| {
                    Error::Refused("images.store is s3 but images.s3 is not set".into())
                })?;
                ImageStore::s3_cached(s3, secrets, cfg.images.cache_mb)
            }
        }
    }

    pub fn kind(&self) -> StoreKind {
        match &*self.0 {
            Inner::Local(_) => StoreKind::Local,
            Inner::S3 { .. } => StoreKind::S3,
        }
    }

    /// `local /var/lib/soko/images` or `s3 s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        match &*self.0 {
            Inner::Local(files) => format!("local {}", files.root().display()),
            Inner::S3 { client, prefix, .. } => {
                format!("s3 s3://{}/{prefix}", client.bucket())
            }
        }
    }

    /// The local files, when this store is on disk.
    pub fn files(&self) -> Option<&Files> {
        match &*self.0 {
            Inner::Local(files) => Some(files),
            Inner::S3 { .. } => None,
        }
    }

    /// The S3 key of an object (for messages and tests); `None` on disk.
    pub fn s3_key(&self, sha: &str, object: Object) -> Option<String> {
        match &*self.0 {
            Inner::Local(_) => None,
            Inner::S3 { prefix, .. } => Some(key(prefix, sha, object)),
        }
    }

    /// Write an original once; true when this call stored it (false: it was there).
    pub async fn put_original(&self, sha: &str, kind: Kind, bytes: Bytes) -> Result<bool, Error> {
        check(sha)?;
        match &*self.0 {
            Inner::Local(files) => {
                let path = files.original(sha, kind.ext());
                write_local(files, path, bytes).await
            }
            Inner::S3 { client, prefix, .. } => {
                put_s3(
                    client,
                    &key(prefix, sha, Object::Original),
                    bytes,
                    kind.mime(),
                )
                .await
            }
        }
    }

    /// Write a WebP variant once; true when this call stored it.
    pub async fn put_variant(&self, sha: &str, width: u32, bytes: Bytes) -> Result<bool, Error> {
        check(sha)?;
        match &*self.0 {
            Inner::Local(files) => {
                let path = files.variant(sha, width);
                write_local(files, path, bytes).await
            }
            Inner::S3 {
                client,
                prefix,
                cache,
            } => {
                let k = key(prefix, sha, Object::Variant(width));
                let made = put_s3(client, &k, bytes.clone(), "image/webp").await?;
                cache.put(sha, width, &bytes);
                Ok(made)
            }
        }
    }

    /// Remove an original (an upload whose row was not written); a missing one is fine.
    pub async fn remove_original(&self, sha: &str, kind: Kind) -> Result<(), Error> {
        check(sha)?;
        match &*self.0 {
            Inner::Local(files) => {
                let (files, path) = (files.clone(), files.original(sha, kind.ext()));
                blocking(move || files.remove(&path).map_err(|e| Error::Io(e.to_string()))).await
            }
            Inner::S3 { client, prefix, .. } => {
                client.delete(&key(prefix, sha, Object::Original)).await
            }
        }
    }

    /// The original's bytes and format; `None` when the store does not have it.
    pub async fn original(&self, sha: &str) -> Result<Option<(Bytes, Kind)>, Error> {
        check(sha)?;
        match &*self.0 {
            Inner::Local(files) => {
                let files = files.clone();
                let sha = sha.to_owned();
                blocking(move || {
                    let exts = Kind::ALL.map(Kind::ext);
                    let Some((path, ext)) = files.find_original(&sha, &exts) else {
                        return Ok(None);
                    };
                    let kind = Kind::ALL.into_iter().find(|k| k.ext() == ext);
                    match std::fs::read(&path) {
                        Ok(b) => Ok(kind.map(|k| (Bytes::from(b), k))),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                        Err(e) => Err(Error::Io(format!("{}: {e}", path.display()))),
                    }
                })
                .await
            }
            Inner::S3 { client, prefix, .. } => {
                let k = key(prefix, sha, Object::Original);
                let Some((bytes, mime)) = client.get_typed(&k).await? else {
                    return Ok(None);
                };
                let kind = kind_of(mime.as_deref(), &bytes).ok_or_else(|| {
                    Error::Corrupt(format!("{}: not a JPEG, PNG or WebP", client.location(&k)))
                })?;
                Ok(Some((bytes, kind)))
            }
        }
    }

    /// A variant's bytes; `None` when it has not been made (or copied) yet.
    pub async fn variant(&self, sha: &str, width: u32) -> Result<Option<Bytes>, Error> {
        check(sha)?;
        match &*self.0 {
            Inner::Local(files) => {
                let path = files.variant(sha, width);
                match tokio::fs::read(&path).await {
                    Ok(b) => Ok(Some(Bytes::from(b))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::Io(format!("{}: {e}", path.display()))),
                }
            }
            Inner::S3 {
                client,
                prefix,
                cache,
            } => {
                if let Some(hit) = cache.get(sha, width) {
                    return Ok(Some(hit));
                }
                let got = client
                    .get_typed(&key(prefix, sha, Object::Variant(width)))
                    .await?
                    .map(|(b, _)| b);
                if let Some(b) = &got {
                    cache.put(sha, width, b);
                }
                Ok(got)
            }
        }
    }

    /// An object's size, `None` when it is not there (an original in any format).
    pub async fn size(&self, sha: &str, object: Object) -> Result<Option<u64>, Error> {
        check(sha)?;
        match &*self.0 {
            Inner::Local(files) => {
                let paths: Vec<_> = match object {
                    Object::Original => Kind::ALL
                        .iter()
                        .map(|k| files.original(sha, k.ext()))
                        .collect(),
                    Object::Variant(w) => vec![files.variant(sha, w)],
                };
                for p in paths {
                    if let Ok(m) = tokio::fs::metadata(&p).await
                        && m.is_file()
                    {
                        return Ok(Some(m.len()));
                    }
                }
                Ok(None)
            }
            Inner::S3 { client, prefix, .. } => client.head(&key(prefix, sha, object)).await,
        }
    }

    /// Whether the store answers: the directory is there, or the bucket answers a HEAD with
    /// these keys (a missing object is an answer; a refused key or a dead endpoint is not).
    pub async fn probe(&self) -> Result<(), Error> {
        match &*self.0 {
            Inner::Local(files) => match tokio::fs::metadata(files.root()).await {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(Error::Io(format!(
                    "{} is not a directory",
                    files.root().display()
                ))),
                // Made by the first upload.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::Io(format!("{}: {e}", files.root().display()))),
            },
            Inner::S3 { client, prefix, .. } => {
                let k = if prefix.is_empty() {
                    ".soko-probe".to_owned()
                } else {
                    format!("{prefix}/.soko-probe")
                };
                client.head(&k).await.map(|_| ())
            }
        }
    }

    /// One line for `soko status` and whether it is good: the store, and for a bucket whether
    /// it answers (`s3 s3://shop-photos/soko-images: reachable`).
    pub async fn status(&self) -> (bool, String) {
        match self.probe().await {
            Ok(()) if self.kind() == StoreKind::S3 => {
                (true, format!("{}: reachable", self.describe()))
            }
            Ok(()) => (true, self.describe()),
            Err(e) => (false, format!("{}: NOT REACHABLE: {e}", self.describe())),
        }
    }

    /// Create the bucket (tests, and a first `soko images migrate --to s3`); an existing one
    /// of ours is fine. Nothing to do on disk.
    pub async fn create_bucket(&self) -> Result<(), Error> {
        match &*self.0 {
            Inner::Local(_) => Ok(()),
            Inner::S3 { client, .. } => client.create_bucket().await,
        }
    }
}

fn check(sha: &str) -> Result<(), Error> {
    if valid_sha(sha) {
        Ok(())
    } else {
        Err(Error::Refused(format!("{sha:?} is not a SHA-256")))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(format!("an image file task failed: {e}")))?
}

async fn write_local(files: &Files, path: std::path::PathBuf, bytes: Bytes) -> Result<bool, Error> {
    let files = files.clone();
    blocking(move || {
        files
            .write_once(&path, &bytes)
            .map_err(|e| Error::Io(format!("writing {}: {e}", path.display())))
    })
    .await
}

/// PUT unless the object is there with this size (content-addressed: same name, same bytes).
async fn put_s3(client: &Client, key: &str, bytes: Bytes, mime: &str) -> Result<bool, Error> {
    if client.head(key).await? == Some(bytes.len() as u64) {
        return Ok(false);
    }
    client.put_bytes(key, bytes, mime).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "ab34567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef";

    #[test]
    fn keys_are_prefix_shard_sha_and_object() {
        assert_eq!(
            key("soko-images", SHA, Object::Original),
            format!("soko-images/ab/{SHA}/orig")
        );
        assert_eq!(
            key("shop/img/", SHA, Object::Variant(800)),
            format!("shop/img/ab/{SHA}/800.webp")
        );
        assert_eq!(
            key("", SHA, Object::Variant(320)),
            format!("ab/{SHA}/320.webp")
        );
        assert_eq!(
            key("/p/", SHA, Object::Original),
            format!("p/ab/{SHA}/orig")
        );
    }

    #[test]
    fn an_originals_format_comes_from_its_type_else_its_bytes() {
        assert_eq!(kind_of(Some("image/png"), b""), Some(Kind::Png));
        assert_eq!(kind_of(Some("image/jpeg; x=1"), b""), Some(Kind::Jpeg));
        assert_eq!(
            kind_of(Some("binary/octet-stream"), &[0xff, 0xd8, 0xff, 0xe0]),
            Some(Kind::Jpeg)
        );
        assert_eq!(kind_of(None, b"RIFF\0\0\0\0WEBPVP8 "), Some(Kind::Webp));
        assert_eq!(kind_of(None, b"\x89PNG\r\n\x1a\n...."), Some(Kind::Png));
        assert_eq!(kind_of(None, b"GIF89a"), None);
    }

    #[test]
    fn the_cache_keeps_the_newest_variants_within_its_budget() {
        let cache = Cache::new(800);
        let b = |n: usize| Bytes::from(vec![7u8; n]);
        cache.put("a", 320, &b(100));
        cache.put("b", 320, &b(100));
        cache.put("huge", 800, &b(101));
        assert!(
            cache.get("huge", 800).is_none(),
            "over an eighth of the budget"
        );
        for n in 0..7 {
            cache.put(&format!("c{n}"), 800, &b(100));
        }
        // 900 bytes asked for, 800 allowed: the oldest went.
        assert!(cache.get("a", 320).is_none() && cache.get("b", 320).is_some());
        assert_eq!(cache.get("c6", 800).map(|b| b.len()), Some(100));
        let inner = cache.inner.lock().unwrap();
        assert_eq!((inner.bytes, inner.map.len()), (800, 8));
        drop(inner);
        cache.put("d", 320, &b(100));
        assert!(cache.get("b", 320).is_none() && cache.get("c0", 800).is_some());
        assert_eq!(cache.inner.lock().unwrap().bytes, 800);
    }

    #[tokio::test]
    async fn the_local_store_writes_once_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("soko-imgstore-{}", std::process::id()));
        let store = ImageStore::local(Files::new(&dir));
        assert_eq!(store.kind(), StoreKind::Local);
        assert!(store.original(SHA).await.unwrap().is_none());
        let bytes = Bytes::from_static(b"\x89PNG\r\n\x1a\nnot really");
        assert!(
            store
                .put_original(SHA, Kind::Png, bytes.clone())
                .await
                .unwrap()
        );
        assert!(
            !store
                .put_original(SHA, Kind::Png, bytes.clone())
                .await
                .unwrap()
        );
        let (back, kind) = store.original(SHA).await.unwrap().unwrap();
        assert_eq!((back, kind), (bytes.clone(), Kind::Png));
        assert_eq!(
            store.size(SHA, Object::Original).await.unwrap(),
            Some(bytes.len() as u64)
        );
        assert!(store.variant(SHA, 320).await.unwrap().is_none());
        assert!(
            store
                .put_variant(SHA, 320, Bytes::from_static(b"w"))
                .await
                .unwrap()
        );
        assert_eq!(
            store.variant(SHA, 320).await.unwrap().as_deref(),
            Some(&b"w"[..])
        );
        store.remove_original(SHA, Kind::Png).await.unwrap();
        assert!(store.original(SHA).await.unwrap().is_none());
        assert!(store.put_original("../x", Kind::Png, bytes).await.is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
