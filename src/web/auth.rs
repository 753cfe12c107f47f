//! The gate in front of password hashing (the hashing itself is `accounts::password`).
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

use argon2::Block;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Error;
use super::api::limit::Limits;
use super::audit::{self, Event};
use crate::accounts::password::{hash_with, verify_with};
use crate::market::{FieldError, FieldErrors};
use crate::store::users::User;

/// Requests allowed to wait for a slot, per slot: at ~30 ms a hash, a wait of a few hashes, so
/// that two people logging in at once on a small box are not refused. The queue's length, not
/// its wait, is what bounds memory.
const QUEUE_PER_SLOT: usize = 4;
/// The longest a request waits for a slot before it is answered 503: normally a few hashes'
/// time, this only caps a box so loaded that hashes crawl.
pub const QUEUE_WAIT: Duration = Duration::from_secs(3);

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
            .map_err(|e| Error::Internal(e.to_string()))
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

/// What a login attempt came to.
pub enum Login {
    Ok(User),
    /// The right password of a suspended account (its id).
    Suspended(u64),
    /// An unknown account or a wrong password (told apart by no answer nor its timing).
    Wrong,
}

/// Passwords are at most 200 characters at registration: a far longer one is no password of
/// ours, and refused without costing a hash.
const MAX_PASSWORD_BYTES: usize = 1024;

/// The login name an input stands for: an email (lower-cased) or a phone number as stored;
/// anything else as typed (trimmed, lower-cased, cut): no account has it, and it is throttled
/// on its own key like any other name.
pub fn login_name(input: &str) -> String {
    match parse_login(input) {
        Ok((email, phone)) => email.or(phone).unwrap_or_default(),
        Err(_) => input.trim().to_lowercase().chars().take(254).collect(),
    }
}

/// The one login check, for the browser's form and the API's `/auth/token` alike: attempts
/// metered per client (`login_ip`, keyed `client`) and failures per account and client
/// (`logins`, see `web::lockout`: the owner from another address is not held up); an unknown
/// account costs the same argon2 work as a wrong password; an over-long password is refused
/// unhashed; the right password of a suspended account is told apart only after it was
/// checked. `Err(Error::Throttled)` when a limit is reached, `Err(Error::Busy..)` when every
/// hashing slot is taken.
///
/// Failures (and the right password of a suspended account) are written to the audit log with
/// `ip` and `via`; a success is the caller's to record (a session, or a token).
pub async fn authenticate(
    limits: &Limits,
    db: &sqlx::MySqlPool,
    ip: std::net::IpAddr,
    via: &str,
    input: &str,
    password: String,
) -> Result<Login, Error> {
    let client = &super::api::limit::client_key(ip);
    limits.login_ip.check(client).map_err(Error::Throttled)?;
    let login = login_name(input);
    limits
        .logins
        .check(db, &login, client)
        .await?
        .map_err(Error::Throttled)?;
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES || login.is_empty() {
        audit::record(db, Event::LoginFailed, None, &login, via, ip).await?;
        return Ok(Login::Wrong);
    }
    let user = crate::store::users::by_login(db, &login).await?;
    let stored = match &user {
        Some(u) => u.password_hash.clone(),
        None => dummy_hash().await?,
    };
    // A slot first, so that a request refused for want of one costs nothing; then the attempt
    // is counted, before the check, so that parallel guesses cannot overrun the allowance.
    let slot = slot().await?;
    let attempt = limits
        .logins
        .count(db, &login, client)
        .await?
        .map_err(Error::Throttled)?;
    let ok = slot.verify(password, stored).await?;
    if ok {
        limits
            .logins
            .record_success(db, attempt, &login, client)
            .await?;
    }
    let outcome = match user {
        Some(u) if ok && u.is_active() => Login::Ok(u),
        Some(u) if ok => Login::Suspended(u.id),
        _ => Login::Wrong,
    };
    match &outcome {
        Login::Ok(_) => {}
        Login::Suspended(id) => {
            let target = audit::user_target(*id);
            audit::record(db, Event::LoginSuspended, Some(*id), &target, via, ip).await?;
        }
        Login::Wrong => audit::record(db, Event::LoginFailed, None, &login, via, ip).await?,
    }
    Ok(outcome)
}

/// Email if it has an @, else a phone number, as stored: `(email, phone)`.
fn parse_login(input: &str) -> Result<(Option<String>, Option<String>), FieldError> {
    use crate::market::{phone::Phone, text};
    if input.trim().is_empty() {
        return Err(FieldError::new("login", "is required"));
    }
    if input.contains('@') {
        Ok((Some(text::email("login", input)?), None))
    } else {
        Ok((None, Some(Phone::parse("login", input)?.to_string())))
    }
}

/// Why a registration was refused; the fields name what to fix.
pub enum Refused {
    Invalid(FieldErrors),
    /// The login has an account already. Callers answer it exactly as a new account (see
    /// [`register`]): nobody learns from registering who has an account.
    Taken,
}

/// The one registration, for the browser's form and the API's `/auth/register` alike: metered
/// per client like logins (each costs an argon2 hash), the name, login and new password
/// checked by the domain's rules, the account created as a buyer. A login that has an account
/// already costs the same work (the hash, the insert refused by the unique key) and is answered
/// the same way by both callers: "registered; now log in", with no session or token either way.
pub async fn register(
    limits: &Limits,
    db: &sqlx::MySqlPool,
    client: &str,
    name: &str,
    login: &str,
    password: &str,
) -> Result<Result<User, Refused>, Error> {
    use crate::store::users;
    limits.login_ip.check(client).map_err(Error::Throttled)?;
    let mut errors = FieldErrors::default();
    let name = errors.check(crate::market::text::line("name", name, 1, 120));
    let login = errors.check(parse_login(login));
    errors.check(crate::accounts::check_new_password(password));
    let (Some(name), Some((email, phone)), true) = (name, login, errors.is_empty()) else {
        return Ok(Err(Refused::Invalid(errors)));
    };
    let hash = hash_password(password.to_owned()).await?;
    let created = users::create(
        db,
        &users::NewUser {
            email: email.as_deref(),
            phone: phone.as_deref(),
            name: &name,
            password_hash: &hash,
            role: crate::market::states::Role::User,
        },
    )
    .await;
    match created {
        Ok(id) => Ok(Ok(users::by_id(db, id).await?.ok_or(Error::NotFound)?)),
        Err(crate::store::Error::Conflict(_)) => Ok(Err(Refused::Taken)),
        Err(e) => Err(e.into()),
    }
}

/// A real hash of a random password, verified against when the login name is unknown, so that
/// unknown and known accounts take the same time to refuse.
pub async fn dummy_hash() -> Result<String, Error> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_try_init(|| hash_password(crate::accounts::random_token()))
        .await
        .cloned()
}

#[cfg(test)]
mod tests {
    /// The gated hashing is `accounts::password`'s: what one hashes the other verifies.
    #[tokio::test]
    async fn gated_hashes_verify_both_ways() {
        let gated = super::hash_password("correct horse".into()).await.unwrap();
        assert!(
            crate::accounts::password::verify("correct horse".into(), gated)
                .await
                .unwrap()
        );
        let plain = crate::accounts::password::hash("correct horse".into())
            .await
            .unwrap();
        assert!(
            super::verify_password("correct horse".into(), plain.clone())
                .await
                .unwrap()
        );
        assert!(
            !super::verify_password("wrong horse".into(), plain)
                .await
                .unwrap()
        );
    }
}
