//! Sealing a backup set so that it is safe to leave the box: every archive encrypted (age,
//! X25519) to the operator's recipient (`backup.encrypt_to`, made by `soko backup keygen`, its
//! identity kept off the box) and to the box's own identity (`backup_box_identity` in the
//! secrets file: the drill and a restore on this box need nothing else); the manifest signed
//! (Ed25519, `backup_signing_key` in the secrets file) over its exact bytes, which carry each
//! archive's SHA-256 of its ciphertext. A restore checks the signature against the keys it
//! trusts (this box's, the `--identity` file's `# soko-backup-verify-key:` line, `--verify-key`)
//! and decrypts with the identities it was given, before anything is touched.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Error;
use super::sigv4::hex;
use crate::config::secrets::Secrets;

/// The signature of a set's manifest, beside it.
pub const SIGNATURE: &str = "manifest.sig";
/// How an age file starts.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// The line of an identity file that names the key the manifests are signed with.
pub const VERIFY_KEY_LINE: &str = "# soko-backup-verify-key: ";
/// What is signed: this context, then the manifest's bytes as written.
const CONTEXT: &[u8] = b"soko backup manifest v1\n";

/// What a backup run seals with.
#[derive(Clone, Default)]
pub struct Sealer {
    /// Empty: archives are written unencrypted (`backup.encrypt_to` unset).
    recipients: Vec<age::x25519::Recipient>,
    /// The Ed25519 seed (32 bytes); `None` when the secrets file has none (manifests unsigned).
    signing_seed: Option<Vec<u8>>,
}

impl Sealer {
    pub fn new(encrypt_to: &str, secrets: &Secrets) -> Result<Sealer, Error> {
        let mut recipients = Vec::new();
        if !encrypt_to.trim().is_empty() {
            recipients.push(parse_recipient(encrypt_to)?);
            if let Some(id) = box_identity(secrets)? {
                recipients.push(id.to_public());
            }
        }
        Ok(Sealer {
            recipients,
            signing_seed: signing_seed(secrets)?,
        })
    }

    pub fn encrypts(&self) -> bool {
        !self.recipients.is_empty()
    }

    /// Wrap `out` so that what is written to it is encrypted (when this sealer encrypts).
    pub fn wrap<W: Write>(&self, out: W) -> Result<Sink<W>, Error> {
        if self.recipients.is_empty() {
            return Ok(Sink::Plain(out));
        }
        let enc = age::Encryptor::with_recipients(
            self.recipients.iter().map(|r| r as &dyn age::Recipient),
        )
        .map_err(|e| Error::Io(format!("cannot encrypt: {e}")))?;
        let w = enc
            .wrap_output(out)
            .map_err(|e| Error::Io(format!("cannot encrypt: {e}")))?;
        Ok(Sink::Sealed(w))
    }

    /// Sign the manifest of `set_dir` as it is on disk: writes `manifest.sig`.
    pub fn sign(&self, set_dir: &Path) -> Result<Option<PathBuf>, Error> {
        let Some(seed) = &self.signing_seed else {
            return Ok(None);
        };
        let body = std::fs::read(set_dir.join(super::MANIFEST))
            .map_err(|e| Error::Io(format!("{}: {e}", set_dir.display())))?;
        let sig = sign_bytes(seed, &body)?;
        let path = set_dir.join(SIGNATURE);
        let tmp = set_dir.join(".manifest.sig.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&sig).unwrap_or_default())
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        Ok(Some(path))
    }
}

/// Where archive bytes go: straight to `W`, or through age's streaming encryption.
pub enum Sink<W: Write> {
    Plain(W),
    Sealed(age::stream::StreamWriter<W>),
}

impl<W: Write> Sink<W> {
    pub fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(buf),
            Sink::Sealed(w) => w.write_all(buf),
        }
    }

    /// Finish the encryption (its last chunk and tag): the underlying writer.
    pub fn finish(self) -> std::io::Result<W> {
        match self {
            Sink::Plain(w) => Ok(w),
            Sink::Sealed(w) => w.finish(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Signature {
    alg: String,
    /// The verifying key, hex.
    key: String,
    /// Over `CONTEXT` + the manifest's bytes, hex.
    sig: String,
}

fn sign_bytes(seed: &[u8], body: &[u8]) -> Result<Signature, Error> {
    let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| {
        Error::Refused("backup_signing_key in the secrets file is not valid".into())
    })?;
    let mut msg = CONTEXT.to_vec();
    msg.extend_from_slice(body);
    Ok(Signature {
        alg: "ed25519".into(),
        key: hex(pair.public_key().as_ref()),
        sig: hex(pair.sign(&msg).as_ref()),
    })
}

/// The box's signing seed from the secrets file (64 hex characters).
fn signing_seed(secrets: &Secrets) -> Result<Option<Vec<u8>>, Error> {
    let Some(s) = secrets
        .backup_signing_key
        .as_ref()
        .filter(|s| !s.is_empty())
    else {
        return Ok(None);
    };
    let seed = unhex(s.expose()).filter(|b| b.len() == 32).ok_or_else(|| {
        Error::Refused("backup_signing_key in the secrets file must be 64 hex characters".into())
    })?;
    Ok(Some(seed))
}

/// The key that verifies this box's manifests (hex), when it has a signing key.
pub fn verify_key(secrets: &Secrets) -> Result<Option<String>, Error> {
    let Some(seed) = signing_seed(secrets)? else {
        return Ok(None);
    };
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| {
        Error::Refused("backup_signing_key in the secrets file is not valid".into())
    })?;
    Ok(Some(hex(pair.public_key().as_ref())))
}

fn box_identity(secrets: &Secrets) -> Result<Option<age::x25519::Identity>, Error> {
    let Some(s) = secrets
        .backup_box_identity
        .as_ref()
        .filter(|s| !s.is_empty())
    else {
        return Ok(None);
    };
    age::x25519::Identity::from_str(s.expose().trim())
        .map(Some)
        .map_err(|e| {
            Error::Refused(format!(
                "backup_box_identity in the secrets file is not an age identity: {e}"
            ))
        })
}

pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, Error> {
    age::x25519::Recipient::from_str(s.trim()).map_err(|e| {
        Error::Refused(format!(
            "backup.encrypt_to: not an age X25519 recipient (age1...): {e}"
        ))
    })
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A new identity for `soko backup keygen`: (identity text, its recipient).
pub fn generate_identity() -> (String, String) {
    let id = age::x25519::Identity::generate();
    (
        id.to_string().expose_secret().to_owned(),
        id.to_public().to_string(),
    )
}

/// What a restore (or a drill) opens a set with.
#[derive(Default)]
pub struct Opener {
    identities: Vec<age::x25519::Identity>,
    /// The identities came from the operator (`--identity`): a wrong one is said so.
    explicit: bool,
    /// Ed25519 verifying keys trusted to sign manifests.
    trusted: Vec<Vec<u8>>,
    /// Restore sets whose manifest is unsigned or signed by an unknown key (`--trust-unverified`).
    pub unverified_ok: bool,
}

impl Opener {
    /// This box's own keys (its secrets file): the box identity and its verifying key.
    pub fn from_box(secrets: &Secrets) -> Result<Opener, Error> {
        let mut o = Opener::default();
        if let Some(id) = box_identity(secrets)? {
            o.identities.push(id);
        }
        if let Some(k) = verify_key(secrets)? {
            o.trusted.extend(unhex(&k));
        }
        Ok(o)
    }

    /// An identity file from `soko backup keygen` (or any age identity file): only its
    /// identities decrypt; its `# soko-backup-verify-key:` line is trusted too.
    pub fn use_identity_file(&mut self, path: &Path) -> Result<(), Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Refused(format!("--identity {}: {e}", path.display())))?;
        let mut ids = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(k) = line.strip_prefix(VERIFY_KEY_LINE.trim_end()) {
                self.trust_key(k)
                    .map_err(|e| Error::Refused(format!("{}:{}: {e}", path.display(), n + 1)))?;
            } else if line.starts_with("AGE-SECRET-KEY-") {
                ids.push(age::x25519::Identity::from_str(line).map_err(|e| {
                    Error::Refused(format!(
                        "{}:{}: not an age identity: {e}",
                        path.display(),
                        n + 1
                    ))
                })?);
            }
        }
        if ids.is_empty() {
            return Err(Error::Refused(format!(
                "--identity {}: no AGE-SECRET-KEY-1... line in it",
                path.display()
            )));
        }
        self.identities = ids;
        self.explicit = true;
        Ok(())
    }

    /// Trust a verifying key given as hex (64 characters).
    pub fn trust_key(&mut self, key: &str) -> Result<(), Error> {
        let k = unhex(key).filter(|k| k.len() == 32).ok_or_else(|| {
            Error::Refused(format!(
                "not a backup verifying key (64 hex characters): {:?}",
                key.trim()
            ))
        })?;
        self.trusted.push(k);
        Ok(())
    }

    /// The manifest of `set_dir` is signed by a trusted key. Refused otherwise (unless
    /// `unverified_ok`, then a warning is returned).
    pub fn check_manifest(&self, set_dir: &Path) -> Result<Option<String>, Error> {
        let body = std::fs::read(set_dir.join(super::MANIFEST))
            .map_err(|e| Error::Refused(format!("{}: {e}", set_dir.display())))?;
        let refused = |why: String| -> Result<Option<String>, Error> {
            if self.unverified_ok {
                Ok(Some(format!(
                    "{why} (restoring anyway: --trust-unverified)"
                )))
            } else {
                Err(Error::Refused(why))
            }
        };
        let sig: Signature = match std::fs::read(set_dir.join(SIGNATURE)) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(s) => s,
                Err(e) => {
                    return refused(format!("{}: unreadable signature: {e}", set_dir.display()));
                }
            },
            Err(_) => {
                return refused(format!(
                    "{}: the manifest is not signed ({SIGNATURE} missing): it may have been \
                     tampered with",
                    set_dir.display()
                ));
            }
        };
        let (Some(key), Some(s)) = (unhex(&sig.key), unhex(&sig.sig)) else {
            return refused(format!("{}: malformed signature", set_dir.display()));
        };
        if !self.trusted.contains(&key) {
            if self.trusted.is_empty() {
                return refused(format!(
                    "{}: no key to check the manifest's signature with: pass --identity FILE \
                     (from `soko backup keygen`, it holds the verifying key) or --verify-key KEY",
                    set_dir.display()
                ));
            }
            return refused(format!(
                "{}: the manifest is signed by an unknown key {}: not made by this shop \
                 (or the wrong --identity / --verify-key)",
                set_dir.display(),
                sig.key
            ));
        }
        let mut msg = CONTEXT.to_vec();
        msg.extend_from_slice(&body);
        if sig.alg != "ed25519"
            || UnparsedPublicKey::new(&ED25519, &key)
                .verify(&msg, &s)
                .is_err()
        {
            return refused(format!(
                "{}: the manifest's signature does not match: the set has been tampered with",
                set_dir.display()
            ));
        }
        Ok(None)
    }

    /// A reader of the archive's plain (compressed) bytes: decrypted when it is an age file.
    pub fn open(&self, path: &Path) -> Result<Box<dyn Read + Send>, Error> {
        let mut f =
            std::fs::File::open(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let mut head = [0u8; 22];
        let n = read_up_to(&mut f, &mut head)?;
        let f = std::io::Read::chain(std::io::Cursor::new(head[..n].to_vec()), f);
        if &head[..n] != AGE_MAGIC {
            return Ok(Box::new(f));
        }
        if self.identities.is_empty() {
            return Err(Error::Refused(format!(
                "{}: the archive is encrypted: pass --identity FILE (the identity printed by \
                 `soko backup keygen`)",
                path.display()
            )));
        }
        let dec = age::Decryptor::new(f).map_err(|e| {
            Error::Corrupt(format!("{}: not a readable age file: {e}", path.display()))
        })?;
        dec.decrypt(self.identities.iter().map(|i| i as &dyn age::Identity))
            .map(|r| Box::new(r) as Box<dyn Read + Send>)
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => Error::Refused(format!(
                    "{}: {}",
                    path.display(),
                    if self.explicit {
                        "the given --identity does not decrypt this archive (wrong identity: \
                         use the one `soko backup keygen` printed for this shop)"
                    } else {
                        "this box's key does not decrypt this archive: pass --identity FILE"
                    }
                )),
                e => Error::Corrupt(format!("{}: cannot decrypt: {e}", path.display())),
            })
    }
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> Result<usize, Error> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(Error::Io(e.to_string())),
        }
    }
    Ok(n)
}

/// An archive file starts as an age file.
pub fn is_encrypted(path: &Path) -> bool {
    let mut head = [0u8; 22];
    std::fs::File::open(path)
        .ok()
        .and_then(|mut f| read_up_to(&mut f, &mut head).ok())
        == Some(AGE_MAGIC.len())
        && head == AGE_MAGIC
}

/// A writer that hashes and counts what goes through it (the ciphertext on disk).
pub struct Hashing<W: Write> {
    pub inner: W,
    pub hash: Sha256,
    pub bytes: u64,
}

impl<W: Write> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_decrypt_only_with_the_identity_and_signatures_verify() {
        let (id, recipient) = generate_identity();
        let mut s = Sealer {
            recipients: vec![parse_recipient(&recipient).unwrap()],
            signing_seed: Some(vec![7u8; 32]),
        };
        let mut sink = s.wrap(Vec::new()).unwrap();
        sink.write_all(b"hello archive").unwrap();
        let bytes = sink.finish().unwrap();
        assert!(bytes.starts_with(AGE_MAGIC));
        assert!(!bytes.windows(5).any(|w| w == b"hello"));
        let dir = std::env::temp_dir().join(format!("soko-seal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a");
        std::fs::write(&f, &bytes).unwrap();
        assert!(is_encrypted(&f));
        let idfile = dir.join("id");
        std::fs::write(&idfile, format!("# x\n{id}\n")).unwrap();
        let mut o = Opener::default();
        o.use_identity_file(&idfile).unwrap();
        let mut out = String::new();
        o.open(&f).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello archive");
        let (other, _) = generate_identity();
        std::fs::write(&idfile, format!("{other}\n")).unwrap();
        let mut o = Opener::default();
        o.use_identity_file(&idfile).unwrap();
        let e = o.open(&f).err().unwrap().to_string();
        assert!(e.contains("wrong identity"), "{e}");
        // Signatures.
        std::fs::write(dir.join(super::super::MANIFEST), b"{\"a\":1}").unwrap();
        s.sign(&dir).unwrap();
        let key = hex(Ed25519KeyPair::from_seed_unchecked(&[7u8; 32])
            .unwrap()
            .public_key()
            .as_ref());
        let mut o = Opener::default();
        assert!(
            o.check_manifest(&dir)
                .unwrap_err()
                .to_string()
                .contains("no key")
        );
        o.trust_key(&key).unwrap();
        o.check_manifest(&dir).unwrap();
        std::fs::write(dir.join(super::super::MANIFEST), b"{\"a\":2}").unwrap();
        let e = o.check_manifest(&dir).unwrap_err().to_string();
        assert!(e.contains("tampered"), "{e}");
        s.recipients.clear();
        let _ = std::fs::remove_dir_all(dir);
    }
}
