//! The secrets file: generated once by `soko init` (or the first `soko up`), mode 0600, kept in
//! the data directory, never in `appliance.yaml` or git. Every value can be overridden by a
//! `SOKO_<NAME>` environment variable (e.g. `SOKO_DATABASE_PASSWORD` for an external database).

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the secrets file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the secrets file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secrets file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "the secrets file {path} can be read by other users (mode {mode:o}); fix it with: chmod 600 {path}"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("cannot generate random secrets: {0}")]
    Random(String),
    #[error(
        "{source_name} is {len} bytes long: a key that signs API tokens must have at least \
         {JWT_SECRET_MIN_BYTES} bytes (`openssl rand -hex 32` makes one; `soko init` generates \
         jwt_secret in the secrets file when it is absent)"
    )]
    Weak { source_name: String, len: usize },
}

/// The shortest `jwt_secret` soko starts with: HS256 keys shorter than the hash (32 bytes)
/// can be guessed offline from one token.
pub const JWT_SECRET_MIN_BYTES: usize = 32;

/// A value that never shows up in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(<empty>)"
        } else {
            "Secret(<redacted>)"
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Secrets {
    /// Password of the application database user (embedded: generated; external: yours).
    pub database_password: Option<Secret>,
    /// Embedded MariaDB only: root, reachable through the unix socket alone.
    pub mysql_root_password: Option<Secret>,
    /// Password of the database owner (`database.owner_user`): migrations and operators'
    /// commands; the running app's own user cannot change the schema or the audit log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_owner_password: Option<Secret>,
    /// External Milvus / Zilliz Cloud: API key or `user:password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vectors_token: Option<Secret>,
    /// Signs session cookies and CSRF tokens.
    pub session_key: Option<Secret>,
    /// Signs API bearer tokens.
    pub jwt_secret: Option<Secret>,
    /// Error tracking: the Sentry / GlitchTip DSN (`sentry:` in appliance.yaml).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentry_dsn: Option<Secret>,
    /// Key of the HMAC-SHA256 signature on alert webhooks (`alerts.webhook`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts_webhook_secret: Option<Secret>,
    /// Password of the SMTP login for alert email (`alerts.email`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_password: Option<Secret>,
    /// Password of the SMTP login for account mail (`mail:`, password reset links).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_password: Option<Secret>,
    /// Backups copied to S3-compatible storage: the access key id and its secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_access_key_id: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_secret_access_key: Option<Secret>,
    /// Photos in S3 (`images.s3`): the access key id and its secret; unset, the backups' keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images_s3_access_key_id: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images_s3_secret_access_key: Option<Secret>,
    /// Signs backup manifests (an Ed25519 seed, hex): a restore refuses a set whose manifest
    /// was not signed by a key it trusts. Generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_signing_key: Option<Secret>,
    /// This box's own age identity: encrypted archives are sealed to it as well as to
    /// `backup.encrypt_to`, so the restore drill runs here without the operator's key. Generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_box_identity: Option<Secret>,
    /// Warm standby: the password of the primary's replication users (`soko standby grant`
    /// draws it and prints it once, inside the standby's token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_password: Option<Secret>,
    /// `tls.store: database`: the age identity the ACME account and certificate keys are
    /// sealed to in MariaDB. The same on every node (copy this file). Generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_store_key: Option<Secret>,
    /// Read replicas (`database.replicas`): the password of their user, when it is not
    /// `database_password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_replica_password: Option<Secret>,
}

/// The names, in file order, with whether `soko init` generates them.
const FIELDS: [(&str, bool); 19] = [
    ("database_password", true),
    ("mysql_root_password", true),
    ("database_owner_password", true),
    ("vectors_token", false),
    ("session_key", true),
    ("jwt_secret", true),
    ("sentry_dsn", false),
    ("alerts_webhook_secret", false),
    ("smtp_password", false),
    ("mail_password", false),
    ("s3_access_key_id", false),
    ("s3_secret_access_key", false),
    ("images_s3_access_key_id", false),
    ("images_s3_secret_access_key", false),
    ("backup_signing_key", true),
    ("backup_box_identity", true),
    ("replication_password", false),
    ("tls_store_key", true),
    ("database_replica_password", false),
];

impl Secrets {
    fn slot(&mut self, name: &str) -> &mut Option<Secret> {
        match name {
            "database_password" => &mut self.database_password,
            "mysql_root_password" => &mut self.mysql_root_password,
            "database_owner_password" => &mut self.database_owner_password,
            "vectors_token" => &mut self.vectors_token,
            "session_key" => &mut self.session_key,
            "jwt_secret" => &mut self.jwt_secret,
            "sentry_dsn" => &mut self.sentry_dsn,
            "alerts_webhook_secret" => &mut self.alerts_webhook_secret,
            "smtp_password" => &mut self.smtp_password,
            "mail_password" => &mut self.mail_password,
            "s3_access_key_id" => &mut self.s3_access_key_id,
            "s3_secret_access_key" => &mut self.s3_secret_access_key,
            "images_s3_access_key_id" => &mut self.images_s3_access_key_id,
            "images_s3_secret_access_key" => &mut self.images_s3_secret_access_key,
            "backup_signing_key" => &mut self.backup_signing_key,
            "backup_box_identity" => &mut self.backup_box_identity,
            "replication_password" => &mut self.replication_password,
            "tls_store_key" => &mut self.tls_store_key,
            "database_replica_password" => &mut self.database_replica_password,
            _ => unreachable!("unknown secret {name}"),
        }
    }

    /// Read the file (it must exist) and apply `SOKO_*` overrides.
    pub fn load(path: &Path) -> Result<Secrets, Error> {
        let mut secrets = Self::read(path)?.unwrap_or_default();
        secrets.apply_env(|name| std::env::var(name).ok());
        Ok(secrets)
    }

    /// Read the file if it exists, checking that only its owner can read it.
    pub fn read(path: &Path) -> Result<Option<Secrets>, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Read {
                    path: path.into(),
                    source,
                });
            }
        };
        let mode = std::fs::metadata(path)
            .map_err(|source| Error::Read {
                path: path.into(),
                source,
            })?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::Exposed {
                path: path.into(),
                mode,
            });
        }
        if text.trim().is_empty() {
            return Ok(Some(Secrets::default()));
        }
        serde_norway::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Parse {
                path: path.into(),
                message: e.to_string(),
            })
    }

    /// Refuse a `jwt_secret` shorter than [`JWT_SECRET_MIN_BYTES`], naming where it came from:
    /// `SOKO_JWT_SECRET` when `from_env` (the variable is set), else the file at `path`.
    pub fn check_strength(&self, path: &Path, from_env: bool) -> Result<(), Error> {
        let Some(jwt) = self.jwt_secret.as_ref().filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        let len = jwt.expose().len();
        if len >= JWT_SECRET_MIN_BYTES {
            return Ok(());
        }
        Err(Error::Weak {
            source_name: if from_env {
                "SOKO_JWT_SECRET".to_owned()
            } else {
                format!("jwt_secret in {}", path.display())
            },
            len,
        })
    }

    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        for (name, _) in FIELDS {
            if let Some(value) =
                lookup(&format!("SOKO_{}", name.to_ascii_uppercase())).filter(|v| !v.is_empty())
            {
                *self.slot(name) = Some(Secret::new(value));
            }
        }
    }

    /// Create the file, or add any generated secret it lacks. Existing values are never
    /// replaced. Returns the names that were generated now.
    pub fn ensure(path: &Path) -> Result<Vec<&'static str>, Error> {
        let mut secrets = Self::read(path)?.unwrap_or_default();
        let mut generated = Vec::new();
        for (name, generate) in FIELDS {
            let slot = secrets.slot(name);
            if generate && slot.as_ref().is_none_or(Secret::is_empty) {
                *slot = Some(
                    if name == "backup_box_identity" || name == "tls_store_key" {
                        Secret(
                            age::x25519::Identity::generate()
                                .to_string()
                                .expose_secret()
                                .to_owned(),
                        )
                    } else {
                        random_secret()?
                    },
                );
                generated.push(name);
            }
        }
        if !generated.is_empty() || !path.exists() {
            secrets.write(path)?;
        }
        Ok(generated)
    }

    /// A new `replication_password` drawn and written into the file at `path` (the rest kept).
    pub fn rotate_replication_password(path: &Path) -> Result<Secret, Error> {
        let mut secrets = Self::read(path)?.unwrap_or_default();
        let password = random_secret()?;
        secrets.replication_password = Some(password.clone());
        secrets.write(path)?;
        Ok(password)
    }

    /// Atomic write: a 0600 temporary file, fsync, rename, fsync of the directory.
    fn write(&self, path: &Path) -> Result<(), Error> {
        let failed = |source| Error::Write {
            path: path.into(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(failed)?;
        let mut body = String::from(
            "# Soko secrets: generated by `soko init`. Keep this file private (mode 0600), out of\n\
             # git and out of appliance.yaml. Back it up separately from the data. Any value can be\n\
             # overridden by the environment variable SOKO_<NAME> (e.g. SOKO_DATABASE_PASSWORD).\n",
        );
        body.push_str(
            &serde_norway::to_string(self).map_err(|e| failed(std::io::Error::other(e)))?,
        );
        let tmp = dir.join(format!(".secrets.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(failed)?;
        file.write_all(body.as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        std::fs::rename(&tmp, path).map_err(failed)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(failed)?;
        Ok(())
    }
}

/// 32 random bytes as 64 hex characters: safe in URLs, SQL literals and YAML.
pub fn random_secret() -> Result<Secret, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(Secret(bytes.iter().map(|b| format!("{b:02x}")).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_jwt_secret_is_refused_naming_its_source() {
        let path = Path::new("/var/lib/soko/secrets.yaml");
        let mut s = Secrets::default();
        assert!(
            s.check_strength(path, false).is_ok(),
            "absent: a key per process"
        );
        s.jwt_secret = Some(Secret::new("x".repeat(31)));
        let e = s.check_strength(path, true).unwrap_err().to_string();
        assert!(e.starts_with("SOKO_JWT_SECRET is 31 bytes long"), "{e}");
        let e = s.check_strength(path, false).unwrap_err().to_string();
        assert!(
            e.contains("jwt_secret in /var/lib/soko/secrets.yaml"),
            "{e}"
        );
        s.jwt_secret = Some(Secret::new("x".repeat(32)));
        assert!(s.check_strength(path, true).is_ok());
    }

    #[test]
    fn ensure_generates_once_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.yaml");
        let first = Secrets::ensure(&path).unwrap();
        assert_eq!(first.len(), 8);
        assert!(first.contains(&"tls_store_key"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let before = Secrets::read(&path).unwrap().unwrap();
        assert_eq!(before.session_key.as_ref().unwrap().expose().len(), 64);
        assert_ne!(before.session_key, before.jwt_secret);
        // An age identity, which `tls.store: database` seals certificate keys to.
        let tls_key = before.tls_store_key.as_ref().unwrap().expose();
        assert!(
            tls_key.parse::<age::x25519::Identity>().is_ok(),
            "{}",
            tls_key.len()
        );
        assert!(Secrets::ensure(&path).unwrap().is_empty());
        assert_eq!(Secrets::read(&path).unwrap().unwrap(), before);
    }

    #[test]
    fn ensure_fills_only_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.yaml");
        std::fs::write(&path, "database_password: mine\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let generated = Secrets::ensure(&path).unwrap();
        assert!(!generated.contains(&"database_password"));
        let s = Secrets::read(&path).unwrap().unwrap();
        assert_eq!(s.database_password.unwrap().expose(), "mine");
        assert!(s.jwt_secret.is_some());
    }

    #[test]
    fn a_world_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.yaml");
        std::fs::write(&path, "jwt_secret: x\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Secrets::read(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file_and_debug_redacts() {
        let mut s = Secrets {
            database_password: Some(Secret::new("file")),
            ..Default::default()
        };
        s.apply_env(|name| (name == "SOKO_DATABASE_PASSWORD").then(|| "env".to_string()));
        assert_eq!(s.database_password.as_ref().unwrap().expose(), "env");
        assert!(!format!("{s:?}").contains("env"));
    }
}
