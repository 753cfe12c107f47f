//! Object storage: the S3 client (`s3.rs`, SigV4 in `sigv4.rs`; backups copy their archives
//! with it) and the image store (`images.rs`: product photos on local disk or in an
//! S3-compatible bucket, the one place web, workers and commands read and write them).

pub mod images;
pub mod migrate;
pub mod s3;
pub mod sigv4;

/// What an S3 exchange or a local file operation can fail with. `S3` is worth another try
/// (the network, a 5xx); `Refused` is a definite answer (403, a bad request).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(String),
    #[error("corrupt object: {0}")]
    Corrupt(String),
    #[error("S3 request failed: {0}")]
    S3(String),
    #[error("{0}")]
    Refused(String),
}
