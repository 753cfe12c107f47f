//! `soko images build`: the bundled services' images, made on this machine without a registry.
//! A recipe (a shell script carried in the binary) makes a Debian 12 root filesystem with
//! `debootstrap` and adds the service; the tar is streamed into the engine's import
//! (`POST /images/create?fromSrc=-`) with the image's labels, environment and working directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::query_parameters::{BuildImageOptions, RemoveImageOptions};
use futures_util::StreamExt;
use tokio_util::io::ReaderStream;

use super::{Kind, LABEL_IMAGE, LABEL_VERSION, MARIADB, MILVUS};
use crate::supervisor::container::Engine;
use crate::supervisor::container::engine::describe;

const COMMON: &str = include_str!("rootfs-common.sh");
const MARIADB_RECIPE: &str = include_str!("mariadb.sh");
const MILVUS_RECIPE: &str = include_str!("milvus.sh");

/// sha256 of PyPI's `milvus-2.3.5-py3-none-manylinux2014_x86_64.whl`, checked by pip.
pub const MILVUS_WHEEL_SHA256: &str =
    "69515a0630ce29fd10e101fa442afea8ca1387b93a456cd9bd41fdf3deb93d04";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Setup(String),
    #[error("building {image}: {message}")]
    Recipe { image: String, message: String },
    #[error("importing {image} into the engine at {socket}: {message}")]
    Import {
        image: String,
        socket: String,
        message: String,
    },
}

pub struct Options {
    /// Scratch space for the root filesystems (about 1 GB while building).
    pub work_dir: PathBuf,
    /// A Python with pip, for the Milvus wheel.
    pub python: PathBuf,
    /// Rebuild images that are already there.
    pub force: bool,
}

/// What was built (or found).
#[derive(Debug)]
pub struct Built {
    pub image: String,
    pub size_bytes: u64,
    /// `false`: it was there already, of the right version.
    pub built: bool,
    pub seconds: f64,
}

/// The recipe and the Dockerfile of a kind. The image is built `FROM scratch` with the
/// recipe's root filesystem added: `POST /build` sets labels, environment and command the same
/// way on Docker and podman (podman 4.3's import ignores `tag=` and does not split `changes`).
fn recipe(kind: &Kind) -> (&'static str, String) {
    let labels = format!(
        "LABEL {LABEL_IMAGE}=\"{}\" {LABEL_VERSION}=\"{}\"",
        kind.name, kind.version
    );
    if kind.name == MILVUS.name {
        let dockerfile = format!(
            "FROM scratch\nADD rootfs.tar /\n{labels}\n\
             ENV LD_LIBRARY_PATH=/milvus/bin DEPLOY_MODE=STANDALONE MILVUSCONF=/milvus/configs/ \
             METRICS_PORT=9091\nWORKDIR /milvus\nEXPOSE 19530 9091\n\
             CMD [\"/milvus/bin/milvus\", \"run\", \"standalone\"]\n"
        );
        (MILVUS_RECIPE, dockerfile)
    } else {
        let dockerfile =
            format!("FROM scratch\nADD rootfs.tar /\n{labels}\nEXPOSE 3306\nCMD [\"mariadbd\"]\n");
        (MARIADB_RECIPE, dockerfile)
    }
}

/// `repo:tag` → (`repo`, `tag`); a reference without a tag is `latest`.
pub fn split_ref(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

/// Build each wanted image (skipping those present at the right version unless `force`),
/// printing a line per step.
pub async fn build(
    engine: &Engine,
    wanted: &[(String, &'static Kind)],
    opts: &Options,
) -> Result<Vec<Built>, Error> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::Setup(
            "building images needs root (debootstrap and chroot): run it with sudo".into(),
        ));
    }
    if which("debootstrap").is_none() {
        return Err(Error::Setup(
            "debootstrap is not installed: run scripts/setup (or apt-get install debootstrap)"
                .into(),
        ));
    }
    let mut out = Vec::new();
    for (image, kind) in wanted {
        let started = Instant::now();
        if !opts.force && engine.check_image(image, kind).await.is_ok() {
            let size = image_size(engine, image).await;
            println!(
                "{image}: present ({} MB), not rebuilt (--force rebuilds)",
                size >> 20
            );
            out.push(Built {
                image: image.clone(),
                size_bytes: size,
                built: false,
                seconds: 0.0,
            });
            continue;
        }
        let (script, dockerfile) = recipe(kind);
        let dir = opts.work_dir.join(kind.name);
        let (rootfs, context) = (dir.join("rootfs"), dir.join("context"));
        let _ = tokio::fs::remove_dir_all(&dir).await;
        tokio::fs::create_dir_all(&context)
            .await
            .map_err(|e| Error::Setup(format!("cannot create {}: {e}", context.display())))?;
        println!("{image}: making the root filesystem (debootstrap, a minute or two)");
        run_recipe(
            image,
            script,
            &rootfs,
            &context.join("rootfs.tar"),
            &opts.python,
        )
        .await?;
        let _ = tokio::fs::remove_dir_all(&rootfs).await;
        tokio::fs::write(context.join("Dockerfile"), dockerfile)
            .await
            .map_err(|e| Error::Setup(format!("cannot write the Dockerfile: {e}")))?;
        println!(
            "{image}: building the image on the engine at {}",
            engine.socket.display()
        );
        import(engine, image, &context).await?;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        engine
            .check_image(image, kind)
            .await
            .map_err(|message| Error::Import {
                image: image.clone(),
                socket: engine.socket.display().to_string(),
                message,
            })?;
        let size = image_size(engine, image).await;
        let seconds = started.elapsed().as_secs_f64();
        println!("{image}: built, {} MB, {seconds:.0} s", size >> 20);
        out.push(Built {
            image: image.clone(),
            size_bytes: size,
            built: true,
            seconds,
        });
    }
    Ok(out)
}

async fn run_recipe(
    image: &str,
    script: &str,
    rootfs: &Path,
    tar: &Path,
    python: &Path,
) -> Result<(), Error> {
    let full = format!("{COMMON}\n{script}");
    let mut cmd = crate::background::child_command("bash");
    crate::process_env::pass(cmd.as_std_mut(), &crate::process_env::NETWORK);
    let status = cmd
        .arg("-c")
        .arg(&full)
        .arg("soko-image-recipe")
        .arg(rootfs)
        .arg(tar)
        .env("PYTHON", python)
        .env("WHEEL_SHA256", MILVUS_WHEEL_SHA256)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| Error::Recipe {
            image: image.to_owned(),
            message: format!("cannot run bash: {e}"),
        })?;
    if !status.success() {
        return Err(Error::Recipe {
            image: image.to_owned(),
            message: format!("the recipe failed ({status}); its output is above"),
        });
    }
    Ok(())
}

/// Build `image` from `context` (a Dockerfile and what it adds) and remove the build the tag
/// pointed at before, unless a container still uses it.
pub async fn import(engine: &Engine, image: &str, context: &Path) -> Result<(), Error> {
    let previous = image_id(engine, image).await;
    send_context(engine, image, context).await?;
    let now = image_id(engine, image).await;
    if let Some(old) = previous.filter(|old| Some(old) != now.as_ref()) {
        remove_previous(engine, image, &old).await;
    }
    Ok(())
}

/// Stream the build context (the Dockerfile and the root filesystem's tar, tarred by `tar` on
/// the fly: never the whole archive in memory, a 2 GiB VPS builds these too) to `POST /build`.
async fn send_context(engine: &Engine, image: &str, context: &Path) -> Result<(), Error> {
    let failed = |message: String| Error::Import {
        image: image.to_owned(),
        socket: engine.socket.display().to_string(),
        message,
    };
    let mut tar = crate::process_env::command("tar")
        .arg("-C")
        .arg(context)
        .args(["-cf", "-", "."])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot run tar: {e}")))?;
    let stdout = tar.stdout.take().expect("piped");
    let options = BuildImageOptions {
        t: Some(image.to_owned()),
        rm: true,
        ..Default::default()
    };
    let body = bollard::body_try_stream(ReaderStream::with_capacity(stdout, 1 << 20));
    let mut progress = engine.docker.build_image(options, None, Some(body));
    while let Some(step) = progress.next().await {
        let step = step.map_err(|e| failed(describe(e)))?;
        if let Some(e) = step.error_detail.and_then(|d| d.message) {
            return Err(failed(e));
        }
    }
    let status = tar.wait().await.map_err(|e| failed(e.to_string()))?;
    if !status.success() {
        return Err(failed(format!(
            "tar of the build context failed ({status})"
        )));
    }
    Ok(())
}

async fn image_id(engine: &Engine, image: &str) -> Option<String> {
    engine.docker.inspect_image(image).await.ok()?.id
}

/// A rebuild moves the tag to the new image; the old one would stay behind untagged, a few
/// hundred MB each time. Removed unless a container still uses it (the engine refuses then).
async fn remove_previous(engine: &Engine, image: &str, old: &str) {
    let short = old.trim_start_matches("sha256:");
    let short = &short[..short.len().min(12)];
    match engine
        .docker
        .remove_image(old, None::<RemoveImageOptions>, None)
        .await
    {
        Ok(_) => println!("{image}: removed the previous build ({short})"),
        Err(e) => println!(
            "{image}: the previous build ({short}) stays: {} (remove it once no container uses it)",
            describe(e)
        ),
    }
}

async fn image_size(engine: &Engine, image: &str) -> u64 {
    engine
        .docker
        .inspect_image(image)
        .await
        .ok()
        .and_then(|i| i.size)
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(0)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Both images, in start order.
pub fn all(cfg: &crate::config::Config) -> Vec<(String, &'static Kind)> {
    vec![
        (cfg.database.embedded.image.clone(), &MARIADB),
        (cfg.vectors.embedded.image.clone(), &MILVUS),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repo_and_tag() {
        assert_eq!(
            split_ref("localhost/soko-mariadb:10.11"),
            ("localhost/soko-mariadb", "10.11")
        );
        assert_eq!(
            split_ref("registry:5000/milvus"),
            ("registry:5000/milvus", "latest")
        );
        assert_eq!(split_ref("mariadb"), ("mariadb", "latest"));
    }

    #[test]
    fn images_are_labelled_with_kind_and_version() {
        let (_, dockerfile) = recipe(&MARIADB);
        assert!(
            dockerfile.contains("LABEL io.soko.image=\"mariadb\" io.soko.version=\"10.11\""),
            "{dockerfile}"
        );
        let (script, dockerfile) = recipe(&MILVUS);
        assert!(script.contains("milvus==2.3.5"));
        assert!(
            dockerfile.contains("io.soko.version=\"2.3.5\""),
            "{dockerfile}"
        );
        assert!(dockerfile.starts_with("FROM scratch\nADD rootfs.tar /\n"));
    }
}
