//! The web skeleton on port 0: health, readiness, request ids.

use crate::common::spawn_app;

#[tokio::test]
async fn healthz_answers_with_version_and_uptime() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn readyz_is_ready_with_every_check_named() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    for check in ["mysql", "migrations", "milvus"] {
        assert_eq!(body[check]["ok"], true, "{check}: {body}");
    }
    assert!(
        body["milvus"]["detail"]
            .as_str()
            .unwrap()
            .contains("loaded")
    );
}

#[tokio::test]
async fn readyz_is_503_with_the_reason_when_the_collection_is_gone() {
    let app = spawn_app().await;
    app.vectors.drop_collection().await.unwrap();
    let resp = app
        .http
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["mysql"]["ok"], true);
    assert_eq!(body["milvus"]["ok"], false);
    assert!(
        body["milvus"]["detail"]
            .as_str()
            .unwrap()
            .contains("missing"),
        "{body}"
    );
}

#[tokio::test]
async fn readyz_reports_pending_migrations() {
    let app = spawn_app().await;
    sqlx::query("DELETE FROM _sqlx_migrations")
        .execute(&app.db)
        .await
        .unwrap();
    let resp = app
        .http
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["migrations"]["ok"], false);
    assert!(
        body["migrations"]["detail"]
            .as_str()
            .unwrap()
            .contains("pending"),
        "{body}"
    );
}

/// Migrations current is not ready yet while `soko up` is still granting the app user its
/// rights on the new tables (a write there would be refused): ready once that is done.
#[tokio::test]
async fn readyz_waits_for_the_start_up_work_after_migrations() {
    let (db, cfg) = crate::common::test_db().await;
    soko::store::migrate::run(&db).await.unwrap();
    let vectors = std::sync::Arc::new(crate::common::test_vectors(&cfg));
    vectors.ensure_collection().await.unwrap();
    let startup = soko::ops::readiness::Startup::pending();
    let state = soko::app::WebState::new(&cfg, db.clone(), vectors)
        .startup(startup.clone())
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/readyz", listener.local_addr().unwrap());
    soko::app::spawn_web(listener, state, &cfg);
    let http = reqwest::Client::new();
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["mysql"]["ok"], true, "{body}");
    assert_eq!(body["migrations"]["ok"], false, "{body}");
    let detail = body["migrations"]["detail"].as_str().unwrap();
    assert!(detail.contains("granting"), "{body}");
    startup.finish();
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let app = spawn_app().await;
    let resp = app
        .http
        .post(format!("{}/healthz", app.url))
        .body(vec![b'x'; 11 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert!(
        resp.status() == 413 || resp.status() == 405,
        "{}",
        resp.status()
    );
}

#[tokio::test]
async fn pages_and_scripts_are_compressed_for_slow_links() {
    let app = spawn_app().await;
    for path in ["/", "/static/app.css", "/static/app.js"] {
        let resp = app
            .http
            .get(format!("{}{path}", app.url))
            .header("accept-encoding", "br, gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-encoding"], "br", "{path}");
    }
}
