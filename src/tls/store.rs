//! The certificate store: plain files under one directory (normally `<data_dir>/tls`).
//!
//! ```text
//! <dir>/<ca>/account.json                    ACME account credentials (instant-acme's JSON)
//! <dir>/<ca>/certs/<names>/chain.pem         leaf first, then the intermediates
//! <dir>/<ca>/certs/<names>/key.pem           the leaf's private key (PKCS#8)
//! ```
//!
//! `<ca>` is the directory URL made file-name safe (a staging certificate is never served once
//! the operator switches to production) and `<names>` the sorted name set. Directories are
//! 0700, files 0600, each written atomically: a temporary file, fsync, rename, fsync of the
//! directory. A chain and a key that do not belong together (a crash between the two renames)
//! are refused at load, which only means a new order.
//!
//! With `tls.store: database` ([`CertStore::database`]) the same things live in MariaDB
//! (`store::tls_state`) instead, so that every node serves the same certificate: the account
//! under `account <ca>`, the chain and key together under `cert <ca> <names>` (one row, so a
//! chain and a key that do not belong together cannot be read), each sealed with age to the
//! secrets file's `tls_store_key` (X25519 + ChaCha20-Poly1305): the database holds no private
//! key, nor any PEM, in the clear, and a copy of the database without the secrets file
//! cannot serve the shop's certificate.
//!
//! One node of a shared store renews at a time: the one holding the [`RENEWAL_LEASE`] lease
//! (`store::leases`, kept renewed while its order runs: [`CertStore::renewal_lock`]). The
//! blobs are written only under that lease, each write fenced by its tenure in its own
//! transaction, so a renewer paused past its lease (and taken over) writes nothing afterwards.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::AccountCredentials;
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;

use super::Error;
use crate::store::tls_state;
use crate::workers::lease::{self, Keeper, Tenure};

/// The lease of the one node renewing a shared store's certificate (`leases.name`).
pub const RENEWAL_LEASE: &str = "acme-renewal";

/// Free space the store wants before talking to a CA.
pub const MIN_FREE_BYTES: u64 = 1024 * 1024;

#[derive(Clone)]
pub struct CertStore {
    dir: PathBuf,
    shared: Option<Arc<Shared>>,
    /// Who renews, as the [`RENEWAL_LEASE`] names it, and for how long a tenure lasts
    /// without a renewal (`node.name`, `node.lease_secs`: see [`CertStore::renewer`]).
    node: String,
    lease_ttl: Duration,
}

/// The database half of a shared store.
struct Shared {
    db: MySqlPool,
    identity: age::x25519::Identity,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shared {
            None => write!(f, "CertStore({})", self.dir.display()),
            Some(_) => f.write_str("CertStore(database)"),
        }
    }
}

/// A certificate chain and its key as stored (PEM).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCert {
    pub chain_pem: String,
    pub key_pem: String,
}

/// What one node holds while it renews (see [`CertStore::renewal_lock`]): for a shared
/// store, its tenure of the [`RENEWAL_LEASE`], renewed while this value lives.
pub struct RenewalGuard(Option<Tenure>);

impl RenewalGuard {
    /// Run `work` (the order) under the lease: its writes to a shared store are fenced by
    /// this tenure. `None` when the lease was lost first (the work is dropped).
    pub async fn run<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        match &self.0 {
            Some(tenure) => tenure.run(work).await,
            None => Some(work.await),
        }
    }

    /// The tenure (a shared store).
    pub fn fence(&self) -> Option<&crate::store::leases::Fence> {
        self.0.as_ref().map(Tenure::fence)
    }

    /// The lease was lost while held (a shared store).
    pub fn is_lost(&self) -> bool {
        self.0.as_ref().is_some_and(Tenure::is_lost)
    }

    /// Give the lease up now (dropping the guard lets it run out within its ttl).
    pub async fn release(self) {
        if let Some(tenure) = self.0 {
            tenure.release().await;
        }
    }
}

impl CertStore {
    pub fn new(dir: impl Into<PathBuf>) -> CertStore {
        CertStore {
            dir: dir.into(),
            shared: None,
            node: "soko".into(),
            lease_ttl: Duration::from_secs(30),
        }
    }

    /// Who renews a shared store: the node's name as the [`RENEWAL_LEASE`] shows it, and the
    /// lease's time to live (renewed every third of it while an order runs).
    pub fn renewer(mut self, node: impl Into<String>, ttl: Duration) -> CertStore {
        self.node = node.into();
        self.lease_ttl = ttl;
        if self.shared.is_some() {
            lease::note(RENEWAL_LEASE);
        }
        self
    }

    /// The store in the database `db`, sealed to `key` (an age identity, `AGE-SECRET-KEY-1…`:
    /// the secrets file's `tls_store_key`).
    pub fn database(db: MySqlPool, key: &str) -> Result<CertStore, Error> {
        let identity = age::x25519::Identity::from_str(key.trim()).map_err(|e| {
            Error::Config(format!(
                "tls_store_key (secrets file) is not an age identity (AGE-SECRET-KEY-1…): {e}"
            ))
        })?;
        Ok(CertStore {
            shared: Some(Arc::new(Shared { db, identity })),
            ..CertStore::new(PathBuf::new())
        })
    }

    /// The database of a shared store.
    pub fn shared_db(&self) -> Option<&MySqlPool> {
        self.shared.as_ref().map(|s| &s.db)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// See [`preflight`] (nothing to check on disk for a shared store).
    pub fn preflight(&self) -> Result<(), Error> {
        match self.shared {
            Some(_) => Ok(()),
            None => preflight(&self.dir),
        }
    }

    pub fn account_path(&self, directory_url: &str) -> PathBuf {
        self.dir.join(safe_name(directory_url)).join("account.json")
    }

    pub fn cert_dir(&self, directory_url: &str, names: &[String]) -> PathBuf {
        self.dir
            .join(safe_name(directory_url))
            .join("certs")
            .join(names_key(names))
    }

    /// The row names of a shared store.
    pub fn account_row(directory_url: &str) -> String {
        format!("account {}", safe_name(directory_url))
    }

    pub fn cert_row(directory_url: &str, names: &[String]) -> String {
        format!("cert {} {}", safe_name(directory_url), names_key(names))
    }

    fn seal(shared: &Shared, plain: &[u8]) -> Result<Vec<u8>, Error> {
        age::encrypt(&shared.identity.to_public(), plain)
            .map_err(|e| Error::Cert(format!("cannot seal for the database: {e}")))
    }

    fn open(shared: &Shared, name: &str, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        age::decrypt(&shared.identity, sealed).map_err(|e| {
            Error::Cert(format!(
                "{name} in the database cannot be opened with this node's tls_store_key ({e}): \
                 every node needs the same secrets file"
            ))
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        shared: &Shared,
        name: &str,
    ) -> Result<Option<T>, Error> {
        let Some(row) = tls_state::get(&shared.db, name).await? else {
            return Ok(None);
        };
        let plain = Self::open(shared, name, &row.value)?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| Error::Cert(format!("{name} in the database: {e}")))
    }

    /// Written only by the renewer: under its tenure of the [`RENEWAL_LEASE`] (the task-local
    /// [`lease::current`] that [`RenewalGuard::run`] sets), fenced by it.
    async fn put_json(shared: &Shared, name: &str, value: &impl Serialize) -> Result<(), Error> {
        let Some(fence) = lease::current().filter(|f| f.name == RENEWAL_LEASE) else {
            return Err(Error::Cert(format!(
                "{name}: the certificate store in the database is written only by the node \
                 holding the {RENEWAL_LEASE} lease"
            )));
        };
        let json = serde_json::to_vec(value).map_err(|e| Error::Cert(format!("{name}: {e}")))?;
        tls_state::put(&shared.db, name, &Self::seal(shared, &json)?, Some(&fence)).await?;
        Ok(())
    }

    pub async fn load_account(
        &self,
        directory_url: &str,
    ) -> Result<Option<AccountCredentials>, Error> {
        if let Some(shared) = &self.shared {
            return Self::get_json(shared, &Self::account_row(directory_url)).await;
        }
        let path = self.account_path(directory_url);
        let Some(text) = read_optional(&path)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Cert(format!("{}: {e}", path.display())))
    }

    pub async fn save_account(
        &self,
        directory_url: &str,
        credentials: &AccountCredentials,
    ) -> Result<(), Error> {
        if let Some(shared) = &self.shared {
            return Self::put_json(shared, &Self::account_row(directory_url), credentials).await;
        }
        let path = self.account_path(directory_url);
        let json = serde_json::to_vec_pretty(credentials)
            .map_err(|e| Error::Cert(format!("account credentials: {e}")))?;
        write_atomic(&path, &json)
    }

    pub async fn load_cert(
        &self,
        directory_url: &str,
        names: &[String],
    ) -> Result<Option<StoredCert>, Error> {
        if let Some(shared) = &self.shared {
            return Self::get_json(shared, &Self::cert_row(directory_url, names)).await;
        }
        self.load_cert_file(directory_url, names)
    }

    /// The files of a local store (what `Manager::start` reads without waiting).
    pub fn load_cert_file(
        &self,
        directory_url: &str,
        names: &[String],
    ) -> Result<Option<StoredCert>, Error> {
        let dir = self.cert_dir(directory_url, names);
        let chain = read_optional(&dir.join("chain.pem"))?;
        let key = read_optional(&dir.join("key.pem"))?;
        Ok(match (chain, key) {
            (Some(chain_pem), Some(key_pem)) => Some(StoredCert { chain_pem, key_pem }),
            _ => None,
        })
    }

    pub async fn save_cert(
        &self,
        directory_url: &str,
        names: &[String],
        cert: &StoredCert,
    ) -> Result<(), Error> {
        if let Some(shared) = &self.shared {
            return Self::put_json(shared, &Self::cert_row(directory_url, names), cert).await;
        }
        let dir = self.cert_dir(directory_url, names);
        write_atomic(&dir.join("key.pem"), cert.key_pem.as_bytes())?;
        write_atomic(&dir.join("chain.pem"), cert.chain_pem.as_bytes())
    }

    /// The stamp of the stored certificate's last write (shared stores; `None` for files or
    /// none stored): a node reloads when it changes.
    pub async fn cert_stamp(
        &self,
        directory_url: &str,
        names: &[String],
    ) -> Result<Option<String>, Error> {
        match &self.shared {
            Some(shared) => {
                Ok(tls_state::stamp(&shared.db, &Self::cert_row(directory_url, names)).await?)
            }
            None => Ok(None),
        }
    }

    /// Leave to renew: always for files (one node; the manager's own mutex keeps one order
    /// at a time), and for a shared store only with the [`RENEWAL_LEASE`] (`Ok(None)`: another
    /// node holds it, it is renewing). The lease is renewed while the guard lives.
    pub async fn renewal_lock(&self) -> Result<Option<RenewalGuard>, Error> {
        match &self.shared {
            None => Ok(Some(RenewalGuard(None))),
            Some(shared) => {
                let keeper = Keeper {
                    db: shared.db.clone(),
                    node: self.node.clone(),
                    ttl: self.lease_ttl,
                };
                Ok(Tenure::take(&keeper, RENEWAL_LEASE)
                    .await?
                    .map(|t| RenewalGuard(Some(t))))
            }
        }
    }
}

/// Before any ACME call: the directory exists (made 0700 if not), a file can be written,
/// synced, read back and removed, and at least [`MIN_FREE_BYTES`] are free.
pub fn preflight(dir: &Path) -> Result<(), Error> {
    let fail = |message: String| Error::Preflight {
        dir: dir.to_owned(),
        message,
    };
    create_dir(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
    let probe = dir.join(format!(".preflight-{}", std::process::id()));
    let data = vec![0x5a; 4096];
    write_atomic(&probe, &data).map_err(|e| fail(format!("not writable: {e}")))?;
    let back = fs::read(&probe).map_err(|e| fail(format!("cannot read back: {e}")))?;
    let _ = fs::remove_file(&probe);
    if back != data {
        return Err(fail("a file written there reads back differently".into()));
    }
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| fail(format!("statvfs: {e}")))?;
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    if free < MIN_FREE_BYTES {
        return Err(fail(format!(
            "only {free} bytes free, {MIN_FREE_BYTES} needed"
        )));
    }
    Ok(())
}

/// Write `bytes` to `path` (0600) so that readers see the old or the new content, never a
/// torn file: temporary file in the same directory, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Cert(format!("{} has no parent directory", path.display())))?;
    create_dir(dir).map_err(Error::io(dir))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // An existing temporary file keeps its mode through `open`: set it again.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(Error::io(path))
}

fn create_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path)(e)),
    }
}

/// A URL or name as one safe path component: `[A-Za-z0-9.-]` kept, the rest `_`.
fn safe_name(s: &str) -> String {
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    out.truncate(120);
    out
}

/// The name set's directory: the first name (sorted), plus a count and a hash for the rest.
fn names_key(names: &[String]) -> String {
    let mut sorted: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    sorted.sort();
    sorted.dedup();
    let first = safe_name(sorted.first().map(String::as_str).unwrap_or("default"));
    if sorted.len() <= 1 {
        return first;
    }
    // FNV-1a: stable across versions and platforms, which `DefaultHasher` does not promise.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sorted.join(",").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{first}+{}-{:08x}", sorted.len() - 1, h as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn names_and_urls_become_safe_stable_paths() {
        assert_eq!(
            safe_name("https://acme-v02.api.letsencrypt.org/directory"),
            "acme-v02.api.letsencrypt.org_directory"
        );
        assert_eq!(
            safe_name("https://127.0.0.1:14000/dir"),
            "127.0.0.1_14000_dir"
        );
        assert_eq!(safe_name("../x"), "_.._x");
        let a = names_key(&["www.shop.test".into(), "shop.test".into()]);
        let b = names_key(&["shop.test".into(), "WWW.shop.test".into()]);
        assert_eq!(a, b);
        assert!(a.starts_with("shop.test+1-"), "{a}");
        assert_eq!(names_key(&["*.shop.test".into()]), "_.shop.test");
    }

    #[tokio::test]
    async fn files_are_0600_in_0700_directories_and_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CertStore::new(tmp.path().join("tls"));
        store.preflight().unwrap();
        assert_eq!(mode(store.dir()), 0o700);
        let names = vec!["shop.test".to_string()];
        let url = "https://ca.test/dir";
        assert!(store.load_cert(url, &names).await.unwrap().is_none());
        let cert = StoredCert {
            chain_pem: "chain".into(),
            key_pem: "key".into(),
        };
        store.save_cert(url, &names, &cert).await.unwrap();
        let dir = store.cert_dir(url, &names);
        assert_eq!(mode(&dir.join("chain.pem")), 0o600);
        assert_eq!(mode(&dir.join("key.pem")), 0o600);
        assert_eq!(mode(&dir), 0o700);
        let back = store.load_cert(url, &names).await.unwrap().unwrap();
        assert_eq!(
            (back.chain_pem.as_str(), back.key_pem.as_str()),
            ("chain", "key")
        );
        // Overwrite keeps the mode and leaves no temporary files behind.
        write_atomic(&dir.join("key.pem"), b"key2").unwrap();
        assert_eq!(fs::read(dir.join("key.pem")).unwrap(), b"key2");
        assert_eq!(mode(&dir.join("key.pem")), 0o600);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn preflight_refuses_an_unwritable_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain-file");
        fs::write(&file, b"x").unwrap();
        let err = preflight(&file.join("tls")).unwrap_err();
        assert!(matches!(err, Error::Preflight { .. }), "{err}");
        assert!(err.to_string().contains("cannot create"), "{err}");
    }
}
