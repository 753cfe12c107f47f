//! Bearer tokens: HS256 JWTs signed with the generated `jwt_secret`. Claims: `sub` (user id),
//! `role`, `ver` (the user's `token_version` when issued), `iat`, `exp`. A token is refused
//! when its signature, algorithm or expiry is wrong, and (checked by the extractor against the
//! database) when `ver` is no longer the user's: a password change or "log out everywhere"
//! revokes every token at once.
//!
//! `jsonwebtoken` does the parsing and claim validation; its cryptography is a pluggable
//! provider, and ours is `ring`'s HMAC (already used by rustls here), HS256 only. That keeps
//! RSA and elliptic-curve code we never use out of the binary, and any other `alg` is refused.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::hmac;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::clock::now_unix;
use crate::market::states::Role;
use crate::store::users::User;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub ver: u32,
    pub iat: u64,
    pub exp: u64,
}

impl Claims {
    pub fn user_id(&self) -> Option<u64> {
        self.sub.parse().ok()
    }
}

pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
}

impl Keys {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        // Once per process; a second call (tests start many apps) keeps the first, identical one.
        let _ = PROVIDER.install_default();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// A fresh token for `user`.
    pub fn issue(&self, user: &User) -> Result<String, ApiError> {
        let now = now_unix();
        let claims = Claims {
            sub: user.id.to_string(),
            role: user.role,
            ver: user.token_version,
            iat: now,
            exp: now + self.ttl_secs,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("signing a token: {e}")))
    }

    /// The claims of a well-formed, correctly signed, unexpired token.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("token_expired", "the token has expired; log in again")
                }
                _ => ApiError::unauthorized("invalid_token", "the token is not valid"),
            })
    }
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

fn signer(alg: &Algorithm, key: &EncodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    match alg {
        Algorithm::HS256 => Ok(Box::new(Hs256(hmac::Key::new(
            hmac::HMAC_SHA256,
            key.as_bytes(),
        )))),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn verifier(
    alg: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    match alg {
        Algorithm::HS256 => Ok(Box::new(Hs256(hmac::Key::new(
            hmac::HMAC_SHA256,
            key.try_get_as_bytes()?,
        )))),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

struct Hs256(hmac::Key);

impl signature::Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(hmac::sign(&self.0, msg).as_ref().to_vec())
    }
}

impl signature::Verifier<Vec<u8>> for Hs256 {
    /// Constant-time comparison (ring's).
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        hmac::verify(&self.0, msg, sig).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::states::UserStatus;

    fn user() -> User {
        User {
            id: 7,
            email: Some("a@b.ke".into()),
            phone: None,
            name: "A".into(),
            password_hash: String::new(),
            role: Role::User,
            status: UserStatus::Active,
            token_version: 3,
            locale: "en".into(),
        }
    }

    #[test]
    fn issued_tokens_verify_and_tampered_ones_do_not() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef", 60);
        let token = keys.issue(&user()).unwrap();
        let c = keys.verify(&token).unwrap();
        assert_eq!((c.user_id(), c.ver, c.role), (Some(7), 3, Role::User));
        let other = Keys::new(b"another secret, another signature", 60);
        assert_eq!(other.verify(&token).unwrap_err().code, "invalid_token");
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut b = parts[1].clone().into_bytes();
        b[5] = if b[5] == b'A' { b'B' } else { b'A' };
        parts[1] = String::from_utf8(b).unwrap();
        assert!(keys.verify(&parts.join(".")).is_err());
    }

    #[test]
    fn other_algorithms_and_expired_tokens_are_refused() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef", 60);
        let claims = format!(
            r#"{{"sub":"7","role":"admin","ver":3,"iat":0,"exp":{}}}"#,
            now_unix() + 60
        );
        let none = format!(
            "{}.{}.",
            base64_url(r#"{"alg":"none","typ":"JWT"}"#),
            base64_url(&claims)
        );
        assert_eq!(keys.verify(&none).unwrap_err().code, "invalid_token");
        let expired = Keys::new(b"0123456789abcdef0123456789abcdef", 0)
            .issue(&user())
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(keys.verify(&expired).unwrap_err().code, "token_expired");
    }

    fn base64_url(s: &str) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let b = s.as_bytes();
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, x)| acc | (u32::from(*x) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
