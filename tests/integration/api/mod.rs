//! The JSON API (`/api/v1`) through HTTP against real MariaDB: tokens, the catalogue and the
//! lead funnel, seller and admin endpoints (here), and the hardening: revocation, tampering,
//! expiry, rate limits, CORS, error bodies and the OpenAPI document (`security`).

mod contract;
mod images;
mod security;

use std::sync::Arc;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use soko::config::Config;
use soko::store::{self, sellers, users};

use crate::common::{shared, test_db, test_vectors};

pub struct Api {
    pub url: String,
    pub db: sqlx::MySqlPool,
    pub http: Client,
}

/// The web app on port 0 with `edit` applied to its config (rate limits, CORS, token lifetime).
pub async fn spawn_api(edit: impl FnOnce(&mut Config)) -> Api {
    let (db, mut cfg) = test_db().await;
    edit(&mut cfg);
    store::migrate::run(&db).await.unwrap();
    let state = soko::app::WebState::new(&cfg, db.clone(), Arc::new(test_vectors(&cfg)))
        .jwt_secret(shared().secrets.jwt_secret.as_ref())
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1", listener.local_addr().unwrap());
    soko::app::spawn_web(listener, state, &cfg);
    Api {
        url,
        db,
        http: Client::new(),
    }
}

pub const PASSWORD: &str = "correct horse battery";

/// One argon2 hash per test binary: hashing is slow in debug builds.
async fn password_hash() -> String {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    HASH.get_or_init(|| async {
        soko::web::auth::hash_password(PASSWORD.into())
            .await
            .unwrap()
    })
    .await
    .clone()
}

pub async fn user(api: &Api, email: &str, role: &str) -> u64 {
    users::create(
        &api.db,
        &users::NewUser {
            email: Some(email),
            phone: None,
            name: "Wanjiru",
            password_hash: &password_hash().await,
            role: role.parse().unwrap(),
        },
    )
    .await
    .unwrap()
}

/// A user with an approved seller profile; (user id, seller id).
pub async fn seller(api: &Api, email: &str, store_name: &str) -> (u64, u64) {
    let uid = user(api, email, "user").await;
    let sid = sellers::create(
        &api.db,
        &sellers::NewSeller {
            user_id: uid,
            store_name,
            slug: &soko::market::text::slug(store_name, 60),
            description: "Handmade",
            whatsapp_phone: "+254722000111",
            city: "Mombasa",
            category_id: None,
            catalogue_url: None,
        },
    )
    .await
    .unwrap();
    sqlx::query("UPDATE sellers SET status = 'approved' WHERE id = ?")
        .bind(sid)
        .execute(&api.db)
        .await
        .unwrap();
    (uid, sid)
}

impl Api {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn login(&self, login: &str, password: &str) -> (StatusCode, Value) {
        let body = json!({ "login": login, "password": password });
        self.call(Method::POST, "/auth/token", None, Some(body))
            .await
    }

    pub async fn token(&self, login: &str) -> String {
        let (status, body) = self.login(login, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }
}

async fn add(api: &Api, token: &str, name: &str, minor: i64) -> u64 {
    let body = json!({ "name": name, "price_minor": minor, "stock": 3, "description": "Woven" });
    let (status, p) = api
        .call(Method::POST, "/seller/products", Some(token), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    p["id"].as_u64().unwrap()
}

#[tokio::test]
async fn a_token_lists_a_product_that_buyers_find_view_and_contact_on_whatsapp() {
    let api = spawn_api(|_| {}).await;
    let (_, sid) = seller(&api, "kiondo@soko.test", "Kiondo Crafts").await;
    let token = api.token("Kiondo@Soko.test").await;
    let (status, me) = api.get("/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["seller"]["id"], sid);

    let id = add(&api, &token, "Kiondo basket", 450_000).await;
    let (_, page) = api.get("/products?limit=10", None).await;
    assert_eq!(page["items"][0]["id"], id, "{page}");
    assert_eq!(page["items"][0]["price"]["display"], "KSh 4,500");
    assert!(page["next_before"].is_null(), "one page only");
    let (_, found) = api.get("/products/search?q=kiondo&max=500000", None).await;
    assert_eq!(found["items"][0]["id"], id, "{found}");
    let (_, none) = api.get("/products/search?q=kiondo&min=500000", None).await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
    let (status, detail) = api.get(&format!("/products/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["seller"]["slug"], "kiondo-crafts");
    let (status, s) = api.get("/sellers/kiondo-crafts", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s["products"]["items"][0]["id"], id);
    let (status, _) = api.get("/categories", None).await;
    assert_eq!(status, StatusCode::OK);

    let visitor = json!({ "visitor": "0123456789abcdef0123456789abcdef" });
    let view = format!("/products/{id}/view");
    let (status, _) = api
        .call(Method::POST, &view, None, Some(visitor.clone()))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let lead = format!("/products/{id}/lead");
    let (status, l) = api.call(Method::POST, &lead, None, Some(visitor)).await;
    assert_eq!(status, StatusCode::CREATED, "{l}");
    let url = l["whatsapp_url"].as_str().unwrap();
    assert!(url.starts_with("https://wa.me/254722000111?text="), "{url}");
    assert!(
        url.contains("Kiondo%20basket") && url.contains("KSh%204%2C500"),
        "{url}"
    );

    let (_, inbox) = api.get("/seller/leads", Some(&token)).await;
    assert_eq!(inbox[0]["product_id"], id, "{inbox}");
    // The view is written behind the answer (`web::view_writer`), within about a second.
    let counted = crate::common::eventually(
        || async {
            let (_, stats) = api.get("/seller/analytics?days=7", Some(&token)).await;
            (stats["views"].as_i64(), stats["leads"].as_i64())
        },
        (Some(1), Some(1)),
    )
    .await;
    assert_eq!(counted, (Some(1), Some(1)));
    let (_, stats) = api.get("/seller/analytics?days=7", Some(&token)).await;
    assert_eq!(stats["daily"].as_array().unwrap().len(), 7);
    assert_eq!(stats["conversion_percent"], 100.0);

    // Edit, hide, show, delete: each visible to buyers, each queued for the vector store.
    let (status, p) = api
        .call(
            Method::PATCH,
            &format!("/seller/products/{id}"),
            Some(&token),
            Some(json!({ "price_minor": null, "stock": 0 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert!(p["price"].is_null() && p["stock"] == 0 && p["name"] == "Kiondo basket");
    let hide = format!("/seller/products/{id}/hide");
    let (_, p) = api.call(Method::POST, &hide, Some(&token), None).await;
    assert_eq!(p["status"], "hidden");
    assert_eq!(
        api.get(&format!("/products/{id}"), None).await.0,
        StatusCode::NOT_FOUND
    );
    let show = format!("/seller/products/{id}/show");
    api.call(Method::POST, &show, Some(&token), None).await;
    assert_eq!(
        api.get(&format!("/products/{id}"), None).await.0,
        StatusCode::OK
    );
    let one = format!("/seller/products/{id}");
    let (status, _) = api.call(Method::DELETE, &one, Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&one, Some(&token)).await.0, StatusCode::NOT_FOUND);
    let ops: Vec<String> =
        sqlx::query_scalar("SELECT op FROM vector_outbox WHERE product_id = ? ORDER BY id")
            .bind(id)
            .fetch_all(&api.db)
            .await
            .unwrap();
    assert_eq!(ops, ["upsert", "upsert", "upsert", "upsert", "delete"]);
}

#[tokio::test]
async fn a_seller_cannot_touch_another_sellers_product() {
    let api = spawn_api(|_| {}).await;
    seller(&api, "a@soko.test", "Shop A").await;
    seller(&api, "b@soko.test", "Shop B").await;
    let a = api.token("a@soko.test").await;
    let b = api.token("b@soko.test").await;
    let theirs = add(&api, &b, "B's lamp", 1_000).await;
    let path = format!("/seller/products/{theirs}");
    for (method, p, body) in [
        (Method::GET, path.clone(), None),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({ "name": "Stolen" })),
        ),
        (Method::POST, format!("{path}/hide"), None),
        (Method::DELETE, path.clone(), None),
    ] {
        let (status, e) = api.call(method.clone(), &p, Some(&a), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {p}: {e}");
        assert_eq!(e["error"]["code"], "not_found");
    }
    let (_, p) = api.get(&path, Some(&b)).await;
    assert_eq!(
        (p["name"].as_str(), p["status"].as_str()),
        (Some("B's lamp"), Some("active"))
    );
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let api = spawn_api(|_| {}).await;
    seller(&api, "v@soko.test", "Valid Shop").await;
    let t = api.token("v@soko.test").await;
    for (body, field) in [
        (json!({ "name": "", "stock": 1 }), "name"),
        (
            json!({ "name": "Basket", "stock": 1, "price_minor": -5 }),
            "price_minor",
        ),
        (
            json!({ "name": "Basket", "stock": 1, "price_minor": "lots" }),
            "price_minor",
        ),
        (json!({ "name": "Basket", "stock": -1 }), "stock"),
        (
            json!({ "name": "Basket", "stock": 1, "currency": "shillings" }),
            "currency",
        ),
        (
            json!({ "name": "Basket", "stock": 1, "category": "no-such" }),
            "category",
        ),
        (json!({ "name": "Basket" }), "stock"),
    ] {
        let (status, e) = api
            .call(
                Method::POST,
                "/seller/products",
                Some(&t),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {e}");
        assert_eq!(e["error"]["code"], "validation_failed");
        assert_eq!(e["error"]["field"], field, "{body}: {e}");
    }
    for (path, field) in [
        ("/products?limit=1000", "limit"),
        ("/products?before=abc", "before"),
        ("/products/search?q=", "q"),
        ("/products/search?q=x&min=cheap", "min"),
    ] {
        let (status, e) = api.get(path, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {e}");
        assert_eq!(e["error"]["field"], field, "{path}: {e}");
    }
    // Registration: a taken login gets the very answer a new one does (no enumeration).
    let body = json!({ "name": "V", "login": "v@soko.test", "password": "long enough" });
    let taken = api
        .call(Method::POST, "/auth/register", None, Some(body))
        .await;
    let body = json!({ "name": "V", "login": "new@soko.test", "password": "long enough" });
    let new = api
        .call(Method::POST, "/auth/register", None, Some(body))
        .await;
    assert_eq!(taken.0, StatusCode::ACCEPTED, "{}", taken.1);
    assert_eq!(taken, new);
}

#[tokio::test]
async fn admins_decide_on_sellers_and_the_decision_is_audited() {
    let api = spawn_api(|_| {}).await;
    user(&api, "admin@soko.test", "admin").await;
    let (_, sid) = seller(&api, "p@soko.test", "Pending Shop").await;
    sqlx::query("UPDATE sellers SET status = 'pending' WHERE id = ?")
        .bind(sid)
        .execute(&api.db)
        .await
        .unwrap();
    let admin = api.token("admin@soko.test").await;
    let plain = api.token("p@soko.test").await;
    let (status, e) = api.get("/admin/sellers", Some(&plain)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    let (status, queue) = api.get("/admin/sellers?status=pending", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(queue[0]["id"], sid, "{queue}");
    let path = format!("/admin/sellers/{sid}/status");
    let body = json!({ "status": "approved", "reason": "" });
    let (status, _) = api
        .call(Method::POST, &path, Some(&admin), Some(body))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, e) = api
        .call(
            Method::POST,
            "/admin/sellers/999999/status",
            Some(&admin),
            Some(json!({ "status": "approved" })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    let (action, target, ip): (String, String, String) =
        sqlx::query_as("SELECT action, target, ip FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_one(&api.db)
            .await
            .unwrap();
    assert_eq!(
        (action.as_str(), ip.as_str()),
        ("seller.status", "127.0.0.1")
    );
    assert_eq!(target, format!("seller:{sid}"));
    assert_eq!(
        sellers::by_id(&api.db, sid).await.unwrap().unwrap().status,
        "approved"
    );
}
