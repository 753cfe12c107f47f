//! Account rules and the work behind them that is not the web's: password hashing (argon2id)
//! and verification, the new-password rule, random tokens, account mail (`mail`). Below `web` and `cli`, which both
//! use it; the web keeps its own gate in front of the hashing (one slot per core, see
//! `web::auth`), the command line hashes directly.

pub mod mail;
pub mod password;

pub use password::{check_new_password, random_token};
