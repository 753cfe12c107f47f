//! Passwords: argon2id with a random salt per password (PHC strings in `users.password_hash`).
//!
//! The functions here are pure CPU work on memory the caller lends (so that the web's slots can
//! keep theirs between hashes, see `web::auth`); [`hash`] and [`verify`] allocate their own for
//! callers without a gate, such as the command line.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::market::FieldError;

/// Stored hashes asking for more memory than this (KiB) are refused, not computed.
const MAX_STORED_M_COST: u32 = 64 * 1024;

/// Hashing failed (the random source or argon2 itself): an internal error.
#[derive(Debug, thiserror::Error)]
#[error("argon2: {0}")]
pub struct HashError(String);

/// argon2id, 19 MiB, 2 passes: OWASP's minimum, about 30 ms on a small VPS core.
fn params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
}

/// What argon2's `PasswordHasher` does, with `memory` (grown as needed) instead of a fresh
/// allocation.
pub fn hash_with(memory: &mut Vec<Block>, password: &[u8]) -> Result<String, HashError> {
    let internal = |e: &dyn std::fmt::Display| HashError(e.to_string());
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

/// What argon2's `PasswordVerifier` does, with `memory`: the stored hash's own algorithm,
/// version and parameters, and a constant-time comparison (`Output`'s `==`). A malformed or
/// too greedy stored hash never matches.
pub fn verify_with(memory: &mut Vec<Block>, password: &[u8], stored: &str) -> bool {
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

/// `memory`, grown to what `params` needs (it never shrinks: the next hash reuses it).
fn fit<'a>(memory: &'a mut Vec<Block>, params: &Params) -> &'a mut [Block] {
    let need = params.block_count();
    if memory.len() < need {
        memory.resize(need, Block::default());
    }
    &mut memory[..need]
}

/// Hash on the blocking pool with memory of its own, for callers without the web's gate.
pub async fn hash(password: String) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || hash_with(&mut Vec::new(), password.as_bytes()))
        .await
        .map_err(|e| HashError(e.to_string()))?
}

/// Verify on the blocking pool with memory of its own, for callers without the web's gate.
pub async fn verify(password: String, stored: String) -> Result<bool, HashError> {
    tokio::task::spawn_blocking(move || verify_with(&mut Vec::new(), password.as_bytes(), &stored))
        .await
        .map_err(|e| HashError(e.to_string()))
}

/// A new password: 8 to 200 characters.
pub fn check_new_password(password: &str) -> Result<(), FieldError> {
    let n = password.chars().count();
    if n < 8 {
        return Err(FieldError::new("password", "needs at least 8 characters"));
    }
    if n > 200 {
        return Err(FieldError::new("password", "is longer than 200 characters"));
    }
    Ok(())
}

/// 32 random bytes as 64 hex digits: session and API tokens, generated passwords.
pub fn random_token() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    let mut b2 = [0u8; 16];
    getrandom::fill(&mut b2).expect("the operating system's random source failed");
    b.iter().chain(&b2).map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    /// Our hashing agrees with argon2's `PasswordHasher`/`PasswordVerifier` both ways, so
    /// hashes stored before (and after) verify.
    #[tokio::test]
    async fn hashes_match_the_argon2_crate() {
        let ours = super::hash("correct horse".into()).await.unwrap();
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
        let verify = |p: &str, h: &str| super::verify(p.into(), h.into());
        assert!(verify("correct horse", &theirs).await.unwrap());
        assert!(!verify("wrong horse", &theirs).await.unwrap());
        assert!(verify("correct horse", &ours).await.unwrap());
        assert!(!verify("correct horse", "not a hash").await.unwrap());
        let greedy = theirs.replace("m=8192", "m=4194304");
        assert!(!verify("correct horse", &greedy).await.unwrap());
    }

    #[test]
    fn new_passwords_are_8_to_200_characters() {
        assert!(super::check_new_password("1234567").is_err());
        assert!(super::check_new_password("12345678").is_ok());
        assert!(super::check_new_password(&"x".repeat(201)).is_err());
    }
}
