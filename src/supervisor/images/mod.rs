//! The container images of the bundled services: which soko expects, how it recognises them,
//! and (in `build`) how `soko images build` makes them without a registry.
//!
//! Images soko builds carry two labels, `io.soko.image` (mariadb, milvus) and
//! `io.soko.version`; an image of the wrong kind or version is refused with the fix. An image
//! without them (an operator's `mariadb:10.11` from a registry) is accepted as it is.

pub mod build;

use std::collections::HashMap;

use crate::config::{Config, Mode};

pub const LABEL_IMAGE: &str = "io.soko.image";
pub const LABEL_VERSION: &str = "io.soko.version";

/// One kind of image soko runs.
#[derive(Debug)]
pub struct Kind {
    pub name: &'static str,
    /// What the image must carry in `io.soko.version`.
    pub version: &'static str,
    pub config_key: &'static str,
    pub default_ref: &'static str,
}

pub const MARIADB: Kind = Kind {
    name: "mariadb",
    version: "10.11",
    config_key: "database.embedded.image",
    default_ref: crate::config::DEFAULT_MARIADB_IMAGE,
};

pub const MILVUS: Kind = Kind {
    name: "milvus",
    version: "2.3.5",
    config_key: "vectors.embedded.image",
    default_ref: crate::config::DEFAULT_MILVUS_IMAGE,
};

/// The images this configuration runs (its embedded services').
pub fn wanted(cfg: &Config) -> Vec<(String, &'static Kind)> {
    let mut out = Vec::new();
    if cfg.database.mode == Mode::Embedded {
        out.push((cfg.database.embedded.image.clone(), &MARIADB));
    }
    if cfg.vectors.mode == Mode::Embedded {
        out.push((cfg.vectors.embedded.image.clone(), &MILVUS));
    }
    out
}

/// An image soko built must be of the kind and version wanted.
pub fn check_labels(
    image: &str,
    want: &Kind,
    labels: &HashMap<String, String>,
) -> Result<(), String> {
    let Some(kind) = labels.get(LABEL_IMAGE) else {
        tracing::info!(
            image,
            "image not built by soko (no {LABEL_IMAGE} label): used as configured"
        );
        return Ok(());
    };
    let version = labels.get(LABEL_VERSION).map(String::as_str).unwrap_or("?");
    if kind != want.name || version != want.version {
        return Err(format!(
            "image {image} is {kind} {version}, soko needs {} {}: run `soko images build`, \
             or fix {}",
            want.name, want.version, want.config_key
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_the_wrong_version_or_kind_are_refused_with_the_fix() {
        let l = |k: &str, v: &str| {
            HashMap::from([
                (LABEL_IMAGE.to_owned(), k.to_owned()),
                (LABEL_VERSION.to_owned(), v.to_owned()),
            ])
        };
        assert!(check_labels("x", &MARIADB, &l("mariadb", "10.11")).is_ok());
        let e = check_labels("x:old", &MARIADB, &l("mariadb", "10.6")).unwrap_err();
        assert!(
            e.contains("x:old is mariadb 10.6") && e.contains("soko images build"),
            "{e}"
        );
        let e = check_labels("x", &MARIADB, &l("milvus", "2.3.5")).unwrap_err();
        assert!(e.contains("database.embedded.image"), "{e}");
        assert!(check_labels("mariadb:10.11", &MARIADB, &HashMap::new()).is_ok());
    }
}
