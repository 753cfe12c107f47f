//! Passwords: argon2id with a random salt per password (PHC strings in `users.password_hash`).
//!
//! A hash costs 19 MiB and tens of milliseconds of a core, so every hash and verification takes
//! a [`Slot`] first: one per core, each with its own memory for argon2, run on the blocking
//! pool, and a short queue in front. A request that finds the queue full, or waits in it longer
//! than [`QUEUE_WAIT`], is refused with [`Error::Busy`] (503 + `Retry-After`) rather than
//! queued: 500 parallel password checks would otherwise need about 9.5 GiB and starve every
//! page of CPU.
//!
//! The slots keep their memory (19 MiB each, so about 40 MiB on two cores) instead of
//! allocating it per hash: freed and reallocated on whichever blocking thread runs the next
//! hash, glibc keeps it cached in each thread's arena, and resident memory grew by over
//! 150 MiB in a 300-request burst although only two hashes ever ran at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Error;

/// Requests allowed to wait for a slot, per slot: at ~30 ms a hash, a wait of a few hashes, so
/// that two people logging in at once on a small box are not refused. The queue's length, not
/// its wait, is what bounds memory.
const QUEUE_PER_SLOT: usize = 4;
/// The longest a request waits for a slot before it is answered 503: normally a few hashes'
/// time, this only caps a box so loaded that hashes crawl.
pub const QUEUE_WAIT: Duration = Duration::from_secs(3);
/// Stored hashes asking for more memory than this (KiB) are refused, not computed.
const MAX_STORED_M_COST: u32 = 64 * 1024;

/// argon2id, 19 MiB, 2 passes: OWASP's minimum, about 30 ms on a small VPS core.
fn params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
}

/// The slots (one per core), the requests waiting for one, and the slots' argon2 memory.
struct Gate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// At most one buffer per slot: a slot takes one (or starts one) and gives it back.
    memory: Mutex<Vec<Vec<Block>>>,
}

fn gate() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Gate {
            slots: Arc::new(Semaphore::new(cores)),
            waiting: AtomicUsize::new(0),
            max_waiting: cores * QUEUE_PER_SLOT,
            memory: Mutex::new(Vec::new()),
        }
    })
}

/// Leaves the queue however the wait ends (slot, timeout, or the request dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    async fn enter(&'static self) -> Result<Slot, Error> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(Error::Busy);
                }
                let _queued = Waiting(&self.waiting);
                match tokio::time::timeout(QUEUE_WAIT, self.slots.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) | Err(_) => return Err(Error::Busy),
                }
            }
        };
        let memory = self
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        Ok(Slot {
            memory,
            _permit: permit,
        })
    }
}

/// The right to run one hash or verification now. Taken before a rate limit counts an attempt,
/// so that a request refused for want of a slot costs its account nothing.
pub struct Slot {
    memory: Vec<Block>,
    // Dropped after `Drop::drop` has given the memory back: no slot is ever without one.
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let memory = std::mem::take(&mut self.memory);
        if memory.capacity() > 0 {
            gate()
                .memory
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(memory);
        }
    }
}

/// Wait for a slot (briefly, see [`QUEUE_WAIT`]); `Err(Busy)` when there is none.
pub async fn slot() -> Result<Slot, Error> {
    gate().enter().await
}

impl Slot {
    /// Run `work` on the blocking pool. The slot moves into the blocking task: a request
    /// dropped mid-hash (client gone, request timeout) cannot free it early and let more
    /// hashes run than there are slots.
    async fn run<T: Send + 'static>(
        mut self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, Error> {
        tokio::task::spawn_blocking(move || work(&mut self.memory))
            .await
            .map_err(|e| Error::Internal(e.to_string()))
    }

    pub async fn hash(self, password: String) -> Result<String, Error> {
        self.run(move |memory| hash_with(memory, password.as_bytes()))
            .await?
    }

    /// Constant-time verification; a malformed stored hash never matches.
    pub async fn verify(self, password: String, stored: String) -> Result<bool, Error> {
        self.run(move |memory| verify_with(memory, password.as_bytes(), &stored))
            .await
    }
}

pub async fn hash_password(password: String) -> Result<String, Error> {
    slot().await?.hash(password).await
}

/// `Err(Busy)` when no slot is free: the password was not checked.
pub async fn verify_password(password: String, stored: String) -> Result<bool, Error> {
    slot().await?.verify(password, stored).await
}

/// Check `password` as one attempt on `key` of `limiter` (failed logins per account): a slot
/// first, so that a request refused for want of one costs the account nothing; then the
/// attempt is counted, before the check, so that parallel guesses cannot overrun the allowance
/// while they are being checked; a right password clears the count.
pub async fn verify_metered(
    limiter: &super::api::limit::Limiter,
    key: &str,
    password: String,
    stored: String,
) -> Result<bool, Error> {
    let slot = slot().await?;
    limiter.check(key).map_err(Error::Throttled)?;
    let ok = slot.verify(password, stored).await?;
    if ok {
        limiter.forget(key);
    }
    Ok(ok)
}

/// What argon2's `PasswordHasher` does, with the slot's memory instead of a fresh allocation.
fn hash_with(memory: &mut Vec<Block>, password: &[u8]) -> Result<String, Error> {
    let internal = |e: &dyn std::fmt::Display| Error::Internal(format!("argon2: {e}"));
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| internal(&e))?;
    let salt_b64 = SaltString::encode_b64(&salt).map_err(|e| internal(&e))?;
    let params = params();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(password, &salt, &mut out, fit(memory, &params))
        .map_err(|e| internal(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| internal(&e))?,
        salt: Some(salt_b64.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| internal(&e))?),
    };
    Ok(hash.to_string())
}

/// What argon2's `PasswordVerifier` does, with the slot's memory: the stored hash's own
/// algorithm, version and parameters, and a constant-time comparison (`Output`'s `==`).
fn verify_with(memory: &mut Vec<Block>, password: &[u8], stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(hash.algorithm),
        Params::try_from(&hash),
        hash.salt,
        hash.hash,
    ) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    if params.m_cost() > MAX_STORED_M_COST {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = fit(memory, &params);
    let argon2 = Argon2::new(algorithm, version, params);
    Output::init_with(expected.len(), |out| {
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut *blocks)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .is_ok_and(|computed| computed == expected)
}

/// The slot's memory, grown to what `params` needs (it never shrinks: the next hash reuses it).
fn fit<'a>(memory: &'a mut Vec<Block>, params: &Params) -> &'a mut [Block] {
    let need = params.block_count();
    if memory.len() < need {
        memory.resize(need, Block::default());
    }
    &mut memory[..need]
}

/// A real hash of a random password, verified against when the login name is unknown, so that
/// unknown and known accounts take the same time to refuse.
pub async fn dummy_hash() -> Result<String, Error> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_try_init(|| hash_password(super::session::random_token()))
        .await
        .cloned()
}

pub fn check_new_password(password: &str) -> Result<(), crate::market::FieldError> {
    let n = password.chars().count();
    if n < 8 {
        return Err(crate::market::FieldError::new(
            "password",
            "needs at least 8 characters",
        ));
    }
    if n > 200 {
        return Err(crate::market::FieldError::new(
            "password",
            "is longer than 200 characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    /// The slots' own hashing agrees with argon2's `PasswordHasher`/`PasswordVerifier` both
    /// ways, so hashes stored before (and after) verify.
    #[tokio::test]
    async fn slot_hashes_match_the_argon2_crate() {
        let ours = super::hash_password("correct horse".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let stock = argon2::Argon2::default();
        assert!(stock.verify_password(b"correct horse", &parsed).is_ok());
        assert!(stock.verify_password(b"wrong horse", &parsed).is_err());
        // A hash made by the crate itself (argon2id v19, other parameters), verified by ours.
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let theirs = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8 * 1024, 3, 1, None).unwrap(),
        )
        .hash_password(b"correct horse", &salt)
        .unwrap()
        .to_string();
        let verify = |p: &str, h: &str| super::verify_password(p.into(), h.into());
        assert!(verify("correct horse", &theirs).await.unwrap());
        assert!(!verify("wrong horse", &theirs).await.unwrap());
        assert!(verify("correct horse", &ours).await.unwrap());
        assert!(!verify("correct horse", "not a hash").await.unwrap());
        let greedy = theirs.replace("m=8192", "m=4194304");
        assert!(!verify("correct horse", &greedy).await.unwrap());
    }
}
