//! Backup sets in S3: read back (`soko restore s3://…`, `--from s3`) and pruned.
//!
//! A set in S3 is `<prefix><set_id>/` with its archives and `manifest.json`, as on disk.
//! Restoring downloads the set's archives into a private directory under the backup dir
//! (each streamed to disk and its SHA-256 checked against the manifest), and the kinds the set
//! lacks from the newest older set that has them, each set in a directory of its own, so the
//! local restore (`restore::plan`) finds them as it finds older sets on disk.
//!
//! Pruning follows the local retention policy: the copies of archives pruned here are deleted
//! with them (`Engine::prune`); the sets of another box (unknown to this database) are pruned
//! by the same rule from their manifests; sets whose every archive this box pruned lose any
//! copy a failed delete left behind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::s3::Client;
use super::{Error, MANIFEST, Manifest, file_name, make_private_dir};
use crate::config::backup::{Kind, Retention};

/// A set in S3: its manifest and the keys of its objects there.
#[derive(Debug, Clone)]
pub struct RemoteSet {
    pub manifest: Manifest,
    pub keys: BTreeSet<String>,
}

impl RemoteSet {
    /// The archives of the manifest whose object is there.
    fn present(&self, client: &Client) -> Vec<&super::Entry> {
        self.manifest
            .archives
            .iter()
            .filter(|e| {
                self.keys
                    .contains(&client.key(&self.manifest.set_id, &e.file))
            })
            .collect()
    }
}

/// Every set under the client's prefix that has a readable manifest, oldest first (by set id,
/// which is its UTC start time). Objects without a manifest are left out.
pub async fn sets(client: &Client) -> Result<Vec<RemoteSet>, Error> {
    let prefix = client.prefix().to_owned();
    let mut by_set: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, _) in client.list(&prefix).await? {
        let Some(rest) = key.strip_prefix(&prefix) else {
            continue;
        };
        if let Some((set, _)) = rest.split_once('/') {
            by_set
                .entry(set.to_owned())
                .or_default()
                .insert(key.clone());
        }
    }
    let mut out = Vec::new();
    for (set, keys) in by_set {
        let key = client.key(&set, MANIFEST);
        if !keys.contains(&key) {
            continue;
        }
        let Some(body) = client.get_small(&key).await? else {
            continue;
        };
        match serde_json::from_slice::<Manifest>(&body) {
            Ok(manifest) if manifest.set_id == set => out.push(RemoteSet { manifest, keys }),
            Ok(m) => tracing::warn!(
                "{}: the manifest names set {}, not {set}: left out",
                client.location(&key),
                m.set_id
            ),
            Err(e) => tracing::warn!("{}: unreadable manifest: {e}", client.location(&key)),
        }
    }
    Ok(out)
}

/// Download set `set_id` (the newest when `None`) into `<root>/<set_id>/`, and what it lacks
/// (database, vectors, images) from older sets beside it. The set's directory.
pub async fn download(
    client: &Client,
    set_id: Option<&str>,
    root: &Path,
) -> Result<PathBuf, Error> {
    let all = sets(client).await?;
    let where_ = client.location(client.prefix());
    let chosen = match set_id {
        Some(id) => all
            .iter()
            .find(|s| s.manifest.set_id == id)
            .ok_or_else(|| {
                Error::Refused(format!(
                    "no backup set {id} in {where_} (sets there: {})",
                    names(&all)
                ))
            })?,
        None => all.last().ok_or_else(|| {
            Error::Refused(format!(
                "no backup set in {where_} (no manifest.json under it)"
            ))
        })?,
    };
    make_private_dir(root)?;
    let chosen_dir = fetch_set(client, chosen, None, root).await?;
    let has = |k: Kind| chosen.present(client).iter().any(|e| e.kind == k);
    for kind in [Kind::Database, Kind::Vectors, Kind::Images] {
        if has(kind) {
            continue;
        }
        let older = all.iter().rev().find(|s| {
            s.manifest.set_id < chosen.manifest.set_id
                && s.present(client).iter().any(|e| e.kind == kind)
        });
        if let Some(older) = older {
            fetch_set(client, older, Some(kind), root).await?;
        }
    }
    Ok(chosen_dir)
}

fn names(all: &[RemoteSet]) -> String {
    if all.is_empty() {
        return "none".into();
    }
    let n: Vec<&str> = all.iter().map(|s| s.manifest.set_id.as_str()).collect();
    n.join(", ")
}

/// One set's manifest and its archives (only `only`'s when given) into `<root>/<set_id>/`.
async fn fetch_set(
    client: &Client,
    set: &RemoteSet,
    only: Option<Kind>,
    root: &Path,
) -> Result<PathBuf, Error> {
    let m = &set.manifest;
    let dir = root.join(&m.set_id);
    make_private_dir(&dir)?;
    for e in set.present(client) {
        if only.is_some_and(|k| k != e.kind) || e.file != file_name(e.kind) {
            continue;
        }
        let key = client.key(&m.set_id, &e.file);
        let bytes = client.get_file(&key, &dir.join(&e.file), &e.sha256).await?;
        if bytes != e.bytes {
            return Err(Error::Corrupt(format!(
                "{}: {bytes} bytes downloaded, the manifest says {}",
                client.location(&key),
                e.bytes
            )));
        }
        tracing::info!(set = %m.set_id, kind = %e.kind, bytes, "downloaded from S3");
    }
    // The manifest and its signature as they are (the restore checks the signature over the
    // exact bytes); archives it lists but S3 lacks (the secrets of an unencrypted set never go
    // there) are simply absent, and the restore goes without them or takes them from an
    // older set.
    for name in [MANIFEST, super::seal::SIGNATURE] {
        let key = client.key(&m.set_id, name);
        if let Some(body) = client.get_small(&key).await? {
            let path = dir.join(name);
            std::fs::write(&path, &body)
                .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        }
    }
    Ok(dir)
}

/// The S3 side of the retention policy. `known`: every set id of the local table with
/// whether it still has a live archive. The keys deleted.
pub async fn prune(
    client: &Client,
    retention: &Retention,
    known: &[(String, bool)],
    now: i64,
) -> Result<Vec<String>, Error> {
    let all = sets(client).await?;
    let mut deleted = Vec::new();
    let max_age = retention.max_days as i64 * 86_400;
    // Another box's sets: the rule, per kind, from their manifests.
    let foreign: Vec<&RemoteSet> = all
        .iter()
        .filter(|s| !known.iter().any(|(id, _)| *id == s.manifest.set_id))
        .collect();
    let mut doomed: BTreeSet<String> = BTreeSet::new();
    for kind in Kind::ALL {
        let mut of_kind: Vec<&RemoteSet> = foreign
            .iter()
            .copied()
            .filter(|s| s.present(client).iter().any(|e| e.kind == kind))
            .collect();
        of_kind.sort_by(|a, b| b.manifest.set_id.cmp(&a.manifest.set_id));
        for (i, s) in of_kind.iter().enumerate().skip(1) {
            if i < retention.keep as usize && now - s.manifest.created_at <= max_age {
                continue;
            }
            doomed.insert(client.key(&s.manifest.set_id, file_name(kind)));
        }
    }
    for s in &all {
        let id = &s.manifest.set_id;
        let ours_gone = known.iter().any(|(k, live)| k == id && !live);
        let keys: Vec<&String> = if ours_gone {
            // Every archive of ours pruned: whatever is left of it in S3 goes too.
            s.keys.iter().collect()
        } else {
            let left = s
                .present(client)
                .iter()
                .filter(|e| !doomed.contains(&client.key(id, &e.file)))
                .count();
            let mut keys: Vec<&String> = s.keys.iter().filter(|k| doomed.contains(*k)).collect();
            if left == 0 && !keys.is_empty() {
                keys.extend(s.keys.iter().filter(|k| !doomed.contains(*k)));
            }
            keys
        };
        // The manifest last: a set interrupted half-way is still found and finished next time.
        let manifest = client.key(id, MANIFEST);
        let mut keys: Vec<&String> = keys.into_iter().filter(|k| **k != manifest).collect();
        let with_manifest = s.keys.contains(&manifest)
            && (ours_gone
                || s.present(client)
                    .iter()
                    .all(|e| doomed.contains(&client.key(id, &e.file))));
        if with_manifest {
            keys.push(&manifest);
        }
        for key in keys {
            client.delete(key).await?;
            deleted.push(client.location(key));
        }
    }
    Ok(deleted)
}

/// The key of an S3 location `s3://<bucket>/<key>` of this client's bucket.
pub fn key_of<'a>(client: &Client, location: &'a str) -> Option<&'a str> {
    let bucket_prefix = client.location("");
    location.strip_prefix(bucket_prefix.as_str())
}
