//! What a seller does after listing (edit, hide, show, delete) and the login throttle that
//! protects every account, through the browser forms against real MariaDB.

use reqwest::StatusCode;

use crate::common::browser;
use crate::common::spawn_app;

#[tokio::test]
async fn a_seller_edits_hides_shows_and_deletes_a_product_and_each_change_queues_a_resync() {
    let app = spawn_app().await;
    let seller = app.register("0712 345 678").await;
    app.onboard(&seller, "Kiondo Crafts", "0722 000 111").await;
    let admin = app.admin().await;
    app.approve_all(&admin).await;
    let id = app.add_product(&seller, "Sisal basket", "1,500").await;
    let outbox = |id: u64| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM vector_outbox WHERE product_id = ?")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let queued = outbox(id).await;

    // The edit form shows the stored values, the price as plain digits.
    let form = seller
        .get(format!("{}/sell/products/{id}/edit", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form.contains("value=\"Sisal basket\""), "{form}");
    assert!(form.contains("value=\"1500\""), "{form}");

    // A bad edit names the field and changes nothing.
    let r = app
        .post(
            &seller,
            &format!("/sell/products/{id}/edit"),
            &[
                ("name", "Sisal basket"),
                ("price", "cheap"),
                ("stock", "2"),
                ("category", ""),
                ("description", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("price"));
    let r = app
        .post(
            &seller,
            &format!("/sell/products/{id}/edit"),
            &[
                ("name", "Large sisal basket"),
                ("price", "2,250.50"),
                ("stock", "7"),
                ("category", ""),
                ("description", "Bigger"),
            ],
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let (name, price, stock): (String, i64, u32) =
        sqlx::query_as("SELECT name, price_minor, stock FROM products WHERE id = ?")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        (name.as_str(), price, stock),
        ("Large sisal basket", 225_050, 7)
    );
    assert_eq!(
        outbox(id).await,
        queued + 1,
        "the edit queued a vector re-sync"
    );

    // Hidden: gone from the storefront, still on the dashboard with a "Show" button.
    let buyer = browser();
    let page = |b: reqwest::Client| {
        let url = format!("{}/p/{id}", app.url);
        async move { b.get(url).send().await.unwrap().status() }
    };
    assert_eq!(page(buyer.clone()).await, StatusCode::OK);
    let r = app
        .post(&seller, &format!("/sell/products/{id}/hide"), &[])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(page(buyer.clone()).await, StatusCode::NOT_FOUND);
    let dash = seller
        .get(format!("{}/sell", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        dash.contains(&format!("/sell/products/{id}/show")),
        "{dash}"
    );
    let r = app
        .post(&seller, &format!("/sell/products/{id}/show"), &[])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(page(buyer.clone()).await, StatusCode::OK);

    // Another seller cannot touch it, and learns nothing (404, not 403).
    let other = app.register("0733 111 222").await;
    app.onboard(&other, "Other Shop", "0733 111 223").await;
    app.approve_all(&admin).await;
    let r = app
        .post(&other, &format!("/sell/products/{id}/delete"), &[])
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = other
        .get(format!("{}/sell/products/{id}/edit", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Deleted: off the storefront and the dashboard, the row kept for leads, a delete queued.
    let r = app
        .post(&seller, &format!("/sell/products/{id}/delete"), &[])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(page(buyer).await, StatusCode::NOT_FOUND);
    let last: String = sqlx::query_scalar(
        "SELECT op FROM vector_outbox WHERE product_id = ? ORDER BY id DESC LIMIT 1",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(last, "delete");
    let dash = seller
        .get(format!("{}/sell", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!dash.contains("Large sisal basket"));
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account_for_a_while_and_say_when_to_retry() {
    let app = spawn_app().await;
    app.register("wanjiku@soko.test").await;
    let b = browser();
    let attempt = |password: &'static str| {
        let (b, app) = (b.clone(), &app);
        async move {
            app.post(
                &b,
                "/login",
                &[("login", "wanjiku@soko.test"), ("password", password)],
            )
            .await
        }
    };
    // Five failures per account from one address (api.rate_limit.login_failures)...
    for _ in 0..5 {
        assert_eq!(
            attempt("wrong password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // ...then even the right password waits there, told for how long.
    let r = attempt("correct horse").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 900, "{wait}");
    assert!(r.text().await.unwrap().contains("too many attempts"));
    // The JSON API shares the same limiter: no way around it there.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/token", app.url))
        .json(&serde_json::json!({"login": "wanjiku@soko.test", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_client_trying_many_accounts_is_throttled_by_address() {
    let app = spawn_app().await;
    let b = browser();
    let mut statuses = Vec::new();
    // api.rate_limit.login_requests = 10 per window per client address.
    for i in 0..11 {
        let login = format!("nobody{i}@soko.test");
        let r = app
            .post(
                &b,
                "/login",
                &[("login", &login), ("password", "guess guess")],
            )
            .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses[..10], [401; 10]);
    assert_eq!(statuses[10], 429);
}

#[tokio::test]
async fn search_finds_products_by_category_name_and_a_seller_link_previews() {
    let app = spawn_app().await;
    sqlx::query("INSERT INTO categories (slug, name, name_sw) VALUES ('crafts', 'Handicrafts', 'Kazi za mikono')")
        .execute(&app.db)
        .await
        .unwrap();
    let seller = app.register("0712 345 678").await;
    app.onboard(&seller, "Kiondo Crafts", "0722 000 111").await;
    let admin = app.admin().await;
    app.approve_all(&admin).await;
    let r = app
        .post(
            &seller,
            "/sell/products/new",
            &[
                ("name", "Sisal basket"),
                ("price", "1500"),
                ("stock", "1"),
                ("category", "crafts"),
                ("description", "Woven"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.add_product(&seller, "Wooden spoon", "300").await;
    let buyer = browser();
    for q in ["handicraft", "mikono"] {
        let html = buyer
            .get(format!("{}/search?q={q}", app.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("Sisal basket"), "{q}: {html}");
        assert!(
            !html.contains("Wooden spoon"),
            "{q}: only the category's products"
        );
    }
    let slug: String = sqlx::query_scalar("SELECT slug FROM sellers")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let html = buyer
        .get(format!("{}/s/{slug}", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<meta property=\"og:title\" content=\"Kiondo Crafts · Mombasa\">"),
        "{html}"
    );
    // The canonical URL is the configured base URL (not the test's own port) plus the slug.
    assert!(
        html.contains(&format!("/s/{slug}\">")) && html.contains("rel=\"canonical\""),
        "{html}"
    );
    assert!(html.contains("Sisal basket") && html.contains("Wooden spoon"));
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions_and_revokes_api_tokens() {
    let app = spawn_app().await;
    let first = app.register("p@soko.test").await;
    let second = browser();
    let r = app
        .post(
            &second,
            "/login",
            &[("login", "p@soko.test"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let api = reqwest::Client::new();
    let token: serde_json::Value = api
        .post(format!("{}/api/v1/auth/token", app.url))
        .json(&serde_json::json!({"login": "p@soko.test", "password": "correct horse"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let me = |bearer: String| {
        let (api, url) = (api.clone(), format!("{}/api/v1/me", app.url));
        async move {
            api.get(url)
                .header("authorization", bearer)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(me(bearer.clone()).await, StatusCode::OK);
    let status = |b: reqwest::Client| {
        let url = format!("{}/account", app.url);
        async move { b.get(url).send().await.unwrap().status() }
    };
    assert_eq!(status(second.clone()).await, StatusCode::OK);

    // Wrong current password (401), or a confirmation that differs (422): refused, named,
    // nothing changed.
    let r = app
        .post(
            &first,
            "/account",
            &[
                ("current", "not it at all"),
                ("password", "a new secret"),
                ("confirm", "a new secret"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Current password is not right")
    );
    let r = app
        .post(
            &first,
            "/account",
            &[
                ("current", "correct horse"),
                ("password", "a new secret"),
                ("confirm", "a new secrex"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        me(bearer.clone()).await,
        StatusCode::OK,
        "nothing changed yet"
    );

    let r = app
        .post(
            &first,
            "/account",
            &[
                ("current", "correct horse"),
                ("password", "a new secret"),
                ("confirm", "a new secret"),
            ],
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(
        status(first.clone()).await,
        StatusCode::OK,
        "this browser stays in"
    );
    assert_eq!(
        status(second).await,
        StatusCode::SEE_OTHER,
        "the other session ended"
    );
    assert_eq!(
        me(bearer).await,
        StatusCode::UNAUTHORIZED,
        "the old token is revoked"
    );
    let r = app
        .post(
            &browser(),
            "/login",
            &[("login", "p@soko.test"), ("password", "a new secret")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

/// The configured `timezone` is the one sellers and admins read times in: a lead made now
/// shows in the seller's inbox at its UTC time moved to Asia/Kolkata (+05:30, "IST").
#[tokio::test]
async fn the_lead_inbox_and_the_audit_log_show_times_in_the_configured_zone() {
    let app = crate::common::spawn_app_with(|c| c.timezone = "Asia/Kolkata".into()).await;
    let seller = app.register("zone-seller@soko.test").await;
    app.onboard(&seller, "Saa Crafts", "0722 000 222").await;
    let admin = app.admin().await;
    app.approve_all(&admin).await;
    let id = app.add_product(&seller, "Sisal basket", "1,500").await;
    let buyer = browser();
    let r = buyer
        .get(format!("{}/p/{id}/whatsapp", app.url))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let utc: String = sqlx::query_scalar(
        "SELECT DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%sZ') FROM leads WHERE product_id = ?",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let zone = soko::clock::Zone::named("Asia/Kolkata").unwrap();
    let shown = zone.show(&utc);
    assert!(shown.ends_with(" IST"), "{shown}");
    for page in ["/sell", "/sell/analytics"] {
        let html = seller
            .get(format!("{}{page}", app.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains(&shown),
            "{page} shows the lead at {shown}: {html}"
        );
        assert!(!html.contains(&utc), "{page} shows the raw UTC time {utc}");
    }
    // The audit log: the seller's approval, in the zone.
    let html = admin
        .get(format!("{}/admin", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(" IST</td>"),
        "the audit log's times are in IST: {html}"
    );
    assert!(
        !html.contains("Z</td>"),
        "no UTC time left in the audit log"
    );
}
