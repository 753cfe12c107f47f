//! The API's hardening: tokens that are missing, tampered, expired or revoked; rate limits and
//! login throttling; CORS; error bodies; and the OpenAPI document against the router.

use std::num::NonZeroU64;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use soko::config::api::{IpNet, Origin};
use soko::store::users;

use super::{PASSWORD, seller, spawn_api, user};

#[tokio::test]
async fn bad_tokens_get_401_and_a_password_change_revokes_every_token() {
    let api = spawn_api(|_| {}).await;
    let uid = user(&api, "t@soko.test", "user").await;
    let token = api.token("t@soko.test").await;
    assert_eq!(api.get("/me", Some(&token)).await.0, StatusCode::OK);

    let (status, e) = api.get("/me", None).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_token"))
    );
    // Change one character of the payload or of the signature: refused.
    let (head, rest) = token.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let flip = |s: &str, i: usize| {
        let mut b = s.as_bytes().to_vec();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    for bad in [
        format!("{head}.{}.{sig}", flip(payload, 5)),
        format!("{head}.{payload}.{}", flip(sig, 3)),
        format!("{head}.{payload}."),
        "not-a-token".to_owned(),
    ] {
        let (status, e) = api.get("/me", Some(&bad)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}: {e}");
        assert_eq!(e["error"]["code"], "invalid_token");
    }

    let hash = soko::web::auth::hash_password("a new password".into())
        .await
        .unwrap();
    users::set_password(&api.db, uid, &hash).await.unwrap();
    let (status, e) = api.get("/me", Some(&token)).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_revoked"))
    );

    // Log out everywhere: the same, through the API.
    let fresh = api.token_with("t@soko.test", "a new password").await;
    let (status, _) = api
        .call(Method::POST, "/auth/logout-everywhere", Some(&fresh), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/me", Some(&fresh)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

impl super::Api {
    async fn token_with(&self, login: &str, password: &str) -> String {
        let (status, body) = self.login(login, password).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn an_expired_token_gets_401() {
    let api = spawn_api(|c| c.api.token_ttl_secs = NonZeroU64::new(1).unwrap()).await;
    user(&api, "e@soko.test", "user").await;
    let (_, body) = api.login("e@soko.test", PASSWORD).await;
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, e) = api.get("/me", Some(token)).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_expired"))
    );
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn over_the_rate_limit_is_429_with_retry_after() {
    let api = spawn_api(|c| c.api.rate_limit.requests = 3).await;
    for _ in 0..3 {
        assert_eq!(api.get("/categories", None).await.0, StatusCode::OK);
    }
    let r = api
        .http
        .get(format!("{}/categories", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&r);
    assert!((1..=300).contains(&wait), "{wait}");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "rate_limited");

    // Behind a trusted proxy each forwarded client has its own allowance; not otherwise.
    let api = spawn_api(|c| {
        c.api.rate_limit.requests = 1;
        c.api.trusted_proxies = vec![IpNet::try_from("127.0.0.1".to_owned()).unwrap()];
    })
    .await;
    let from = |ip: &str| {
        api.http
            .get(format!("{}/categories", api.url))
            .header("x-forwarded-for", format!("203.0.113.9, {ip}"))
            .send()
    };
    assert_eq!(from("198.51.100.1").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        from("198.51.100.1").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(from("198.51.100.2").await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn logins_are_throttled_per_address_and_per_account() {
    let api = spawn_api(|c| {
        c.api.rate_limit.login_requests = 0;
        c.api.rate_limit.login_failures = 2;
    })
    .await;
    user(&api, "victim@soko.test", "user").await;
    user(&api, "other@soko.test", "user").await;
    for _ in 0..2 {
        let (status, e) = api.login("victim@soko.test", "wrong password").await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
        );
    }
    // Even the right password waits now, for this account only.
    let (status, e) = api.login("victim@soko.test", PASSWORD).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("login_throttled"))
    );
    assert_eq!(
        api.login("other@soko.test", PASSWORD).await.0,
        StatusCode::OK
    );
    // Unknown accounts are throttled the same way (no hint which exist).
    for _ in 0..2 {
        assert_eq!(
            api.login("nobody@soko.test", "x").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        api.login("nobody@soko.test", "x").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    let api = spawn_api(|c| c.api.rate_limit.login_requests = 2).await;
    user(&api, "ip@soko.test", "user").await;
    api.token("ip@soko.test").await;
    api.token("ip@soko.test").await;
    let r = api
        .http
        .post(format!("{}/auth/token", api.url))
        .json(&json!({ "login": "ip@soko.test", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&r) >= 1);
}

#[tokio::test]
async fn cors_preflight_is_answered_for_listed_origins_only() {
    let api = spawn_api(|c| {
        c.api.cors_origins = vec![Origin::try_from("https://app.soko.test".to_owned()).unwrap()];
    })
    .await;
    let preflight = |origin: &str| {
        api.http
            .request(Method::OPTIONS, format!("{}/seller/products", api.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight("https://app.soko.test").await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.soko.test");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );

    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-credentials")
    );

    let get = |origin: &str| {
        api.http
            .get(format!("{}/categories", api.url))
            .header("origin", origin)
            .send()
    };
    let listed = get("https://app.soko.test").await.unwrap();
    assert_eq!(
        listed.headers()["access-control-allow-origin"],
        "https://app.soko.test"
    );
    let other = get("https://evil.example").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn errors_are_json_with_a_request_id_and_never_sql() {
    let api = spawn_api(|_| {}).await;
    let (status, e) = api.get("/no/such/route", None).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_route"))
    );
    let (status, e) = api.call(Method::PUT, "/categories", None, None).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    let r = api
        .http
        .post(format!("{}/auth/token", api.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let huge = json!({ "login": "x@soko.test", "password": "y".repeat(100_000) });
    let (status, e) = api
        .call(Method::POST, "/auth/token", None, Some(huge))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(e["error"]["code"], "payload_too_large");
    // SQL metacharacters and 10 KB strings are only data.
    let nasty = format!("' OR 1=1; DROP TABLE products; -- {}", "x".repeat(10_000));
    let r = api
        .http
        .get(format!("{}/products/search", api.url))
        .query(&[("q", nasty.as_str()), ("city", "'\"\\")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A real database failure: an opaque 500 naming the request, nothing of the SQL.
    sqlx::query("RENAME TABLE categories TO categories_gone")
        .execute(&api.db)
        .await
        .unwrap();
    let r = api
        .http
        .get(format!("{}/categories", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let text = r.text().await.unwrap();
    let e: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(e["error"]["code"], "internal");
    assert_eq!(e["request_id"], id.as_str());
    for leak in [
        "SELECT",
        "categories",
        "sql",
        "database",
        "1146",
        "doesn't exist",
    ] {
        assert!(
            !text.to_lowercase().contains(&leak.to_lowercase()),
            "{leak} in {text}"
        );
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_every_listed_route_answers() {
    let api = spawn_api(|_| {}).await;
    let (status, doc) = api.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let paths = doc["paths"].as_object().unwrap();
    let mut listed: Vec<String> = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            listed.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    listed.sort();
    let mut expected = vec![
        "GET /openapi.json",
        "GET /categories",
        "GET /products",
        "GET /products/search",
        "GET /products/suggest",
        "GET /products/{id}",
        "POST /products/{id}/view",
        "POST /products/{id}/lead",
        "GET /products/{id}/similar",
        "POST /search/image",
        "GET /products/{id}/recommendations",
        "GET /recommendations",
        "GET /trending",
        "GET /sellers/{slug}",
        "POST /auth/token",
        "POST /auth/register",
        "POST /auth/logout-everywhere",
        "GET /me",
        "GET /seller/products",
        "POST /seller/products",
        "GET /seller/products/{id}",
        "PATCH /seller/products/{id}",
        "DELETE /seller/products/{id}",
        "POST /seller/products/{id}/hide",
        "POST /seller/products/{id}/show",
        "POST /seller/imports",
        "GET /seller/imports",
        "GET /seller/imports/{id}",
        "GET /seller/products/{id}/images",
        "POST /seller/products/{id}/images",
        "DELETE /seller/products/{id}/images/{sha256}",
        "GET /seller/leads",
        "GET /seller/analytics",
        "GET /admin/sellers",
        "POST /admin/sellers/{id}/status",
        "GET /admin/quality",
        "POST /admin/quality/{id}",
    ];
    expected.sort();
    assert_eq!(listed, expected);
    // Each documented operation is routed: whatever it answers, it is not "no such route".
    // (Logging out everywhere goes last: it revokes the token.)
    seller(&api, "o@soko.test", "Open Shop").await;
    let token = api.token("o@soko.test").await;
    listed.sort_by_key(|op| op.contains("logout-everywhere"));
    for op in &listed {
        let (method, path) = op.split_once(' ').unwrap();
        let path = path.replace("{id}", "999999").replace("{slug}", "nobody");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        let (status, e) = api.call(method, &path, Some(&token), body).await;
        let code = e["error"]["code"].as_str().unwrap_or_default();
        assert!(
            code != "no_route"
                && code != "method_not_allowed"
                && status != StatusCode::INTERNAL_SERVER_ERROR,
            "{op}: {status} {e}"
        );
    }
}
