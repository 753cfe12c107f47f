//! Item 9: an error of one request (a bad expression) never trips the vector store's breaker,
//! which would take visual search down for every visitor; the server going away still does.
//! Against a milvus-lite of the test's own, so that it can be killed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use soko::config::secrets::Secrets;
use soko::config::{Config, Mode};
use soko::vectors::{Error, Point, VectorStore};
use soko::web::visual::guarded_search;

use crate::common::{free_port, milvus_lite, random_suffix, scratch};

struct Lite {
    child: Child,
    url: String,
}

impl Drop for Lite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// milvus-lite on a free loopback port, answering.
async fn lite() -> Lite {
    let dir = scratch("breaker-milvus");
    let port = free_port();
    let child = Command::new(milvus_lite())
        .args(["server", "--data-dir"])
        .arg(&dir)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while soko::vectors::probe(&url, None).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "milvus-lite did not answer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Lite { child, url }
}

fn unit(dim: usize, i: usize) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    v[i % dim] = 1.0;
    v
}

#[tokio::test]
async fn a_bad_expression_fails_its_request_only_and_a_dead_server_trips_the_breaker() {
    let mut server = lite().await;
    let mut cfg = Config::default();
    cfg.vectors.mode = Mode::External;
    cfg.vectors.url = server.url.clone();
    cfg.vectors.nlist = 4;
    let store = VectorStore::for_profile(
        &cfg,
        &Secrets::default(),
        &format!("t{}", random_suffix()),
        8,
    );
    store.ensure_collection().await.unwrap();
    let points: Vec<Point> = (1..=8u64)
        .map(|id| Point {
            id,
            vector: unit(8, id as usize),
            seller_id: 1,
            category_id: 1,
            price_minor: 1000,
            name: format!("p{id}"),
            city: "Nairobi".into(),
        })
        .collect();
    store.upsert(&points).await.unwrap();
    store.seal().await.unwrap();
    let q = unit(8, 3);

    // At the lowest level: a broken expression is an error of the request.
    for expr in [
        "city == \"Nai",
        "category_id === 1",
        "category_id == ",
        "price_minor >= \"x\"",
        "(city == \"a\"",
    ] {
        let e = store.search_expr(&q, expr, 5, 4).await.unwrap_err();
        assert!(matches!(e, Error::Query(_)), "{expr}: {e:?}");
        assert!(!e.trips_breaker());
    }
    // Through the breaker: refused, and the index stays up for everyone.
    let refused = guarded_search(&store, &q, "city == \"Nai", 5).await;
    assert!(refused.is_err());
    assert!(
        !store.marked_down(),
        "a bad expression marked the index down"
    );
    // The next search is answered by Milvus at once.
    let hits = guarded_search(&store, &q, "", 5).await.unwrap();
    assert_eq!(hits.first().map(|h| h.id), Some(3), "{hits:?}");
    let hits = guarded_search(&store, &q, "city == \"Nairobi\"", 5)
        .await
        .unwrap();
    assert_eq!(hits.first().map(|h| h.id), Some(3), "{hits:?}");

    // The server killed: that is the breaker's case.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let down = guarded_search(&store, &q, "", 5).await;
    assert!(down.is_err());
    assert!(
        store.marked_down(),
        "a dead server did not trip the breaker"
    );
}
