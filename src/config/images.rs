//! The `images:` section: where product photos are kept. `local` (the default): under
//! `<data_dir>/images`, for one box. `s3`: in an S3-compatible bucket (`images.s3`), shared by
//! every node in front of the same database. The keys live in the secrets file
//! (`images_s3_access_key_id` / `images_s3_secret_access_key`, else the backups'
//! `s3_access_key_id` / `s3_secret_access_key`) or `SOKO_*` variables, never here.

use serde::{Deserialize, Serialize};

use super::{Config, Error};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Images {
    /// `local` or `s3`.
    pub store: StoreKind,
    /// The bucket, when `store` is `s3` (and the other side of `soko images migrate`).
    pub s3: Option<S3>,
    /// With `store: s3`, the WebP variants last served are kept in memory up to this many MiB
    /// (content-addressed: never stale); 0: every request reads the bucket.
    pub cache_mb: u64,
}

impl Default for Images {
    fn default() -> Self {
        Images {
            store: StoreKind::Local,
            s3: None,
            cache_mb: 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Local,
    S3,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Local => "local",
            StoreKind::S3 => "s3",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3 {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://10.0.0.9:9000` ...
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Objects are `<prefix>/<sha[0..2]>/<sha>/orig` (and `800.webp`, `320.webp`); empty: no
    /// prefix.
    pub prefix: String,
    /// `endpoint/bucket/key` (MinIO, most self-hosted servers) instead of `bucket.endpoint/key`.
    pub path_style: bool,
    /// Seconds to open a connection (TCP and TLS) to the endpoint.
    pub connect_timeout_secs: u64,
    /// Seconds a request may go without progress before it fails (the photo answers 503).
    pub read_timeout_secs: u64,
}

impl Default for S3 {
    fn default() -> Self {
        S3 {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            prefix: "soko-images".into(),
            path_style: true,
            connect_timeout_secs: 5,
            read_timeout_secs: 30,
        }
    }
}

impl S3 {
    /// The prefix without leading or trailing slashes.
    pub fn prefix(&self) -> &str {
        self.prefix.trim_matches('/')
    }

    /// The S3 client's settings (the client is shared with backups).
    pub fn client_config(&self) -> super::backup::S3 {
        super::backup::S3 {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            prefix: self.prefix().to_owned(),
            path_style: self.path_style,
            connect_timeout_secs: self.connect_timeout_secs,
            read_timeout_secs: self.read_timeout_secs,
            ..super::backup::S3::default()
        }
    }
}

pub(super) fn validate(cfg: &Config, bad: &impl Fn(&str, String) -> Error) -> Result<(), Error> {
    let i = &cfg.images;
    if i.store == StoreKind::S3 && i.s3.is_none() {
        return Err(bad(
            "images.store",
            "is s3 but images.s3 (endpoint, bucket, region) is not set".into(),
        ));
    }
    if i.cache_mb > 4096 {
        return Err(bad(
            "images.cache_mb",
            format!("must be 0 (off) to 4096 MiB, got {}", i.cache_mb),
        ));
    }
    let Some(s3) = &i.s3 else {
        return Ok(());
    };
    super::backup::check_place("images.s3", &s3.endpoint, &s3.bucket, &s3.region, bad)?;
    let prefix_ok = s3.prefix.len() <= 200
        && s3
            .prefix
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/'))
        && !s3.prefix().split('/').any(|p| p == "." || p == "..")
        && !s3.prefix().contains("//");
    if !prefix_ok {
        return Err(bad(
            "images.s3.prefix",
            format!(
                "must be letters, digits, '-', '_', '.' and '/' between names (at most 200), \
                 such as shop/images, got {:?}",
                s3.prefix
            ),
        ));
    }
    for (key, v) in [
        ("images.s3.connect_timeout_secs", s3.connect_timeout_secs),
        ("images.s3.read_timeout_secs", s3.read_timeout_secs),
    ] {
        if !(1..=600).contains(&v) {
            return Err(bad(key, format!("must be 1 to 600 seconds, got {v}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(yaml: &str) -> Result<Config, crate::config::Error> {
        Config::parse(yaml, Path::new("a.yaml"))
    }

    fn err(yaml: &str) -> String {
        parse(yaml).unwrap_err().to_string()
    }

    #[test]
    fn default_is_local_without_a_bucket() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.images.store, super::StoreKind::Local);
        assert!(cfg.images.s3.is_none());
    }

    #[test]
    fn s3_store_parses_with_its_bucket() {
        let cfg = parse(
            "images:\n  store: s3\n  s3:\n    endpoint: http://10.0.0.9:9000\n    bucket: shop-photos\n    prefix: /shop/img/\n",
        )
        .unwrap();
        assert_eq!(cfg.images.store, super::StoreKind::S3);
        let s3 = cfg.images.s3.unwrap();
        assert_eq!(s3.prefix(), "shop/img");
        assert_eq!(s3.client_config().prefix, "shop/img");
        assert_eq!(s3.region, "us-east-1");
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        let e = err("images:\n  store: s3\n");
        assert!(
            e.contains("`images.store`") && e.contains("images.s3"),
            "{e}"
        );
        let e = err("images:\n  store: disk\n");
        assert!(e.contains("images.store") || e.contains("store"), "{e}");
        let s3 = |line: &str| {
            format!(
                "images:\n  s3:\n    endpoint: http://127.0.0.1:9000\n    bucket: shop-photos\n    {line}\n"
            )
        };
        let e = err("images:\n  s3:\n    endpoint: 127.0.0.1:9000\n    bucket: shop-photos\n");
        assert!(
            e.contains("`images.s3.endpoint`") && e.contains(":3"),
            "{e}"
        );
        let e = err("images:\n  s3:\n    endpoint: http://k:s@127.0.0.1\n    bucket: b-1\n");
        assert!(e.contains("`images.s3.endpoint`"), "{e}");
        let e =
            err("images:\n  s3:\n    endpoint: http://127.0.0.1:9000\n    bucket: Shop_Photos\n");
        assert!(e.contains("`images.s3.bucket`"), "{e}");
        let e = err(&s3("region: \"\""));
        assert!(e.contains("`images.s3.region`"), "{e}");
        let e = err(&s3("prefix: ../up"));
        assert!(e.contains("`images.s3.prefix`"), "{e}");
        let e = err(&s3("prefix: a//b"));
        assert!(e.contains("`images.s3.prefix`"), "{e}");
        let e = err(&s3("prefix: \"a b\""));
        assert!(e.contains("`images.s3.prefix`"), "{e}");
        let e = err(&s3("read_timeout_secs: 0"));
        assert!(e.contains("`images.s3.read_timeout_secs`"), "{e}");
        let e = err(&s3("connect_timeout_secs: 601"));
        assert!(e.contains("`images.s3.connect_timeout_secs`"), "{e}");
        let e = err("images:\n  cache_mb: 5000\n");
        assert!(e.contains("`images.cache_mb`") && e.contains(":2"), "{e}");
        let e = err(&s3("secret_access_key: x"));
        assert!(e.contains("secret_access_key"), "{e}");
    }
}
