//! Rebuilding an image (`soko images build --force`) moves its tag to the new build and removes
//! the build it replaced, which would otherwise stay behind untagged, a few hundred MB each
//! time; a build a container still uses is left for later. Tiny images, the same code path.

use std::process::Command;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};
use soko::supervisor::container::Engine;
use soko::supervisor::images::build::import;

use super::{ENGINE_USE, engine};
use crate::common::{random_suffix, scratch};

/// Build context: a root filesystem of one file, and a label that makes each build distinct.
async fn build(engine: &Engine, tag: &str, n: u32) -> String {
    let dir = scratch(&format!("image-{n}"));
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello"), format!("build {n}\n")).unwrap();
    let context = dir.join("context");
    std::fs::create_dir_all(&context).unwrap();
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(context.join("rootfs.tar"))
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM scratch\nADD rootfs.tar /\nLABEL io.soko.test.build={n}\n"),
    )
    .unwrap();
    import(engine, tag, &context).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    id(engine, tag)
        .await
        .expect("the tag points at the new build")
}

async fn id(engine: &Engine, image: &str) -> Option<String> {
    engine.docker.inspect_image(image).await.ok()?.id
}

#[tokio::test]
async fn a_rebuild_removes_the_build_it_replaces_unless_a_container_uses_it() {
    let _engine = ENGINE_USE.read().await;
    let engine = engine().await;
    let tag = format!("localhost/soko-test-{}:1", random_suffix());
    let first = build(&engine, &tag, 1).await;
    let second = build(&engine, &tag, 2).await;
    assert_ne!(first, second);
    assert_eq!(
        id(&engine, &first).await,
        None,
        "the replaced build is gone"
    );

    // A container made from the second build keeps it through the next rebuild.
    let name = format!("soko-test-{}", random_suffix());
    engine
        .docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            ContainerCreateBody {
                image: Some(second.clone()),
                cmd: Some(vec!["/hello".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let third = build(&engine, &tag, 3).await;
    assert_ne!(second, third);
    assert_eq!(
        id(&engine, &second).await.as_ref(),
        Some(&second),
        "in use: kept"
    );

    engine
        .docker
        .remove_container(
            &name,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    for image in [second, third] {
        engine
            .docker
            .remove_image(
                &image,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
            .unwrap();
    }
}
