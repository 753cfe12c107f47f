//! Passwords: argon2id with a random salt per password (PHC strings in `users.password_hash`).
//! Hashing is CPU-heavy, so it runs on the blocking pool, never on the async workers.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::Error;

/// argon2id, 19 MiB, 2 passes: OWASP's minimum, about 30 ms on a small VPS core.
fn hasher() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters"),
    )
}

pub async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| Error::Internal(e.to_string()))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(e.to_string()))?;
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(e.to_string()))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

/// Constant-time verification; a malformed stored hash never matches.
pub async fn verify_password(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .is_ok_and(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
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
