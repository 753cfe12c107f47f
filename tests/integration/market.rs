//! The marketplace through HTTP, against real MariaDB and Milvus: accounts, CSRF, onboarding,
//! approval, listing, the storefront and the WhatsApp lead funnel.

use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};

use crate::common::{browser, spawn_app};

#[tokio::test]
async fn seller_lists_admin_approves_buyer_finds_and_contacts_on_whatsapp() {
    let app = spawn_app().await;
    let seller = app.register("0712 345 678").await;
    assert_eq!(
        app.onboard(&seller, "Kiondo Crafts", "0722 000 111")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let id = app.add_product(&seller, "Kiondo basket", "4,500").await;
    // Pending seller: not public yet.
    let buyer = browser();
    assert_eq!(
        buyer
            .get(format!("{}/p/{id}", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    app.approve_all(&app.admin().await).await;

    let home = buyer
        .get(&app.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        home.contains("Kiondo basket") && home.contains("KSh 4,500"),
        "{home}"
    );
    let found = buyer
        .get(format!("{}/search?q=kiondo", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(found.contains(&format!("/p/{id}")), "search finds it");
    let page = buyer
        .get(format!("{}/p/{id}", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("og:title") && page.contains("Kiondo basket · KSh 4,500"));
    assert!(page.contains("Chat on WhatsApp"));

    let r = buyer
        .get(format!("{}/p/{id}/whatsapp", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()["location"].to_str().unwrap();
    assert!(
        to.starts_with("https://wa.me/254722000111?text="),
        "the seller's own number: {to}"
    );
    assert!(
        to.contains("Kiondo%20basket") && to.contains("KSh%204%2C500"),
        "{to}"
    );

    // The view is written behind the page (`web::view_writer`), within about a second.
    let (views, leads): (i64, i64) = crate::common::eventually(
        || async {
            sqlx::query_as(
                "SELECT CAST(SUM(kind = 'view') AS SIGNED), CAST(SUM(kind = 'whatsapp_start') AS SIGNED) FROM events",
            ).fetch_one(&app.db).await.unwrap()
        },
        (1, 1),
    )
    .await;
    assert_eq!((views, leads), (1, 1));
    let dashboard = seller
        .get(format!("{}/sell", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        dashboard.contains("<strong>1</strong> views"),
        "{dashboard}"
    );
    assert!(dashboard.contains("<strong>1</strong> WhatsApp leads"));
    assert!(dashboard.contains("100.0 %"));
    // The product write queued its vector sync in the same transaction.
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vector_outbox WHERE product_id = ?")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(queued >= 1);
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused() {
    let app = spawn_app().await;
    let b = browser();
    b.get(format!("{}/login", app.url)).send().await.unwrap();
    let r = b
        .post(format!("{}/register", app.url))
        .form(&[
            ("name", "X"),
            ("login", "x@soko.test"),
            ("password", "12345678"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = b
        .post(format!("{}/register", app.url))
        .form(&[
            ("name", "X"),
            ("login", "x@soko.test"),
            ("password", "12345678"),
            ("csrf", &"0".repeat(64)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 0, "nothing written");
}

#[tokio::test]
async fn script_in_a_title_renders_as_text() {
    let app = spawn_app().await;
    let seller = app.register("s@soko.test").await;
    app.onboard(&seller, "Duka", "+254 711 222 333").await;
    app.approve_all(&app.admin().await).await;
    let id = app
        .add_product(&seller, "<script>alert(1)</script>", "10")
        .await;
    let page = browser()
        .get(format!("{}/p/{id}", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>alert(1)</script>"));
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || page.contains("&lt;script&gt;"),
        "{page}"
    );
}

#[tokio::test]
async fn hostile_search_input_is_harmless() {
    let app = spawn_app().await;
    let b = browser();
    for q in [
        "' OR 1=1 --",
        "\"; DROP TABLE products; --",
        "%_\\",
        &"x".repeat(10 * 1024),
    ] {
        let r = b
            .get(format!("{}/search", app.url))
            .query(&[("q", q)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{q:.20}");
    }
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn an_invalid_whatsapp_number_names_the_field_and_saves_nothing() {
    let app = spawn_app().await;
    let seller = app.register("w@soko.test").await;
    let r = app.onboard(&seller, "Duka", "12345").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("WhatsApp number must be a phone number"),
        "{html}"
    );
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sellers")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_tampered_session_is_logged_out_and_admin_pages_need_the_role() {
    let app = spawn_app().await;
    let b = app.register("t@soko.test").await;
    assert_eq!(
        b.get(format!("{}/sell", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        b.get(format!("{}/admin", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let stranger = Client::builder().redirect(Policy::none()).build().unwrap();
    let r = stranger
        .get(format!("{}/sell", app.url))
        .header("cookie", format!("soko_session={}", "ab".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login");
}

#[tokio::test]
async fn logout_everywhere_ends_every_session() {
    let app = spawn_app().await;
    let first = app.register("e@soko.test").await;
    let second = browser();
    let r = app
        .post(
            &second,
            "/login",
            &[("login", "e@soko.test"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        second
            .get(format!("{}/sell", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = app.post(&first, "/logout/everywhere", &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        second
            .get(format!("{}/sell", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SEE_OTHER
    );
    let wrong = app
        .post(
            &browser(),
            "/login",
            &[("login", "e@soko.test"), ("password", "wrong horse")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn pages_carry_strict_security_headers() {
    let app = spawn_app().await;
    let r = browser().get(&app.url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    // The feed is shared and sets no cookie (see web::page_cache); a page with a form does.
    assert!(h.get("set-cookie").is_none());
    let r = browser()
        .get(format!("{}/login", app.url))
        .send()
        .await
        .unwrap();
    let h = r.headers();
    assert!(
        h.get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().contains("HttpOnly; SameSite=Lax"))
    );
}

#[tokio::test]
async fn favourites_reviews_leads_orders_analytics_and_sitemap() {
    let app = spawn_app().await;
    let seller = app.register("shop@soko.test").await;
    app.onboard(&seller, "Duka La Mama", "0733 444 555").await;
    app.approve_all(&app.admin().await).await;
    let id = app.add_product(&seller, "Clay pot", "1,350").await;
    let buyer = app.register("buyer@soko.test").await;

    // Favourite, shown in the watchlist; a second tap removes it.
    let r = app.post(&buyer, &format!("/p/{id}/favourite"), &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let list = buyer
        .get(format!("{}/favourites", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("Clay pot"), "{list}");
    // One review per user; the seller's rating follows.
    let r = app
        .post(
            &buyer,
            &format!("/p/{id}/reviews"),
            &[("rating", "4"), ("body", "Sturdy <b>pot</b>")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let again = app
        .post(
            &buyer,
            &format!("/p/{id}/reviews"),
            &[("rating", "5"), ("body", "again")],
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let bad = app
        .post(
            &buyer,
            &format!("/p/{id}/reviews"),
            &[("rating", "9"), ("body", "")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = buyer
        .get(format!("{}/p/{id}", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("★★★★"), "{page}");
    assert!(
        page.contains("Sturdy &#60;b&#62;pot") || page.contains("Sturdy &lt;b&gt;pot"),
        "the review is escaped: {page}"
    );
    assert!(page.contains("★ 4"), "seller rating shown");

    // A lead, converted into an order that moves along its states.
    buyer
        .get(format!("{}/p/{id}/whatsapp", app.url))
        .send()
        .await
        .unwrap();
    let lead: u64 = sqlx::query_scalar("SELECT id FROM leads")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let r = app
        .post(
            &seller,
            &format!("/sell/leads/{lead}/status"),
            &[("status", "converted")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (order, total): (u64, i64) =
        sqlx::query_as("SELECT id, total_minor FROM orders WHERE lead_id = ?")
            .bind(lead)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(total, 135_000);
    let skip = app
        .post(
            &seller,
            &format!("/sell/orders/{order}/status"),
            &[("status", "delivered")],
        )
        .await;
    assert_eq!(skip.status(), StatusCode::CONFLICT);
    let ok = app
        .post(
            &seller,
            &format!("/sell/orders/{order}/status"),
            &[("status", "confirmed")],
        )
        .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    // Another seller cannot touch this lead.
    let other = app.register("other@soko.test").await;
    app.onboard(&other, "Other Shop", "0733 444 556").await;
    let r = app
        .post(
            &other,
            &format!("/sell/leads/{lead}/status"),
            &[("status", "lost")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Analytics: chart and CSV from the persisted events.
    let html = seller
        .get(format!("{}/sell/analytics?days=7", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<svg") && html.contains("Clay pot"), "{html}");
    // The view is written behind the page (`web::view_writer`), within about a second.
    let csv = {
        let mut csv = String::new();
        for _ in 0..600 {
            csv = seller
                .get(format!("{}/sell/analytics.csv?days=7", app.url))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if csv.lines().last().unwrap_or("").ends_with(",1,1,100.0") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        csv
    };
    assert!(csv.starts_with("day,views,leads,conversion_percent\n"));
    assert_eq!(csv.lines().count(), 8);
    // One product-page view and one WhatsApp tap today.
    assert!(csv.lines().last().unwrap().ends_with(",1,1,100.0"), "{csv}");

    let sitemap = browser()
        .get(format!("{}/sitemap.xml", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        sitemap.contains(&format!("/p/{id}</loc>")) && sitemap.contains("/s/duka-la-mama</loc>"),
        "{sitemap}"
    );
}

#[tokio::test]
async fn admins_moderate_products_manage_categories_and_suspend_users_with_an_audit_trail() {
    let app = spawn_app().await;
    let seller = app.register("mod@soko.test").await;
    app.onboard(&seller, "Moderated", "0733 111 222").await;
    let admin = app.admin().await;
    app.approve_all(&admin).await;
    let id = app.add_product(&seller, "Fake watch", "999").await;
    assert_eq!(
        browser()
            .get(format!("{}/p/{id}", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let no_reason = app
        .post(
            &admin,
            &format!("/admin/products/{id}/moderation"),
            &[("moderation", "rejected"), ("reason", "")],
        )
        .await;
    assert_eq!(no_reason.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .post(
            &admin,
            &format!("/admin/products/{id}/moderation"),
            &[("moderation", "rejected"), ("reason", "counterfeit brand")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        browser()
            .get(format!("{}/p/{id}", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let dash = seller
        .get(format!("{}/sell", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        dash.contains("rejected counterfeit brand"),
        "the seller sees why: {dash}"
    );
    // A seller cannot reach the admin routes, even with a valid CSRF token.
    let r = app
        .post(
            &seller,
            &format!("/admin/products/{id}/moderation"),
            &[("moderation", "approved"), ("reason", "")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let r = app
        .post(
            &admin,
            "/admin/categories",
            &[("name", "Kitchen & Home"), ("name_sw", "Jikoni")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let home = browser()
        .get(&app.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("/?category=kitchen-home"), "{home}");

    let user_id: u64 = sqlx::query_scalar("SELECT id FROM users WHERE email = 'mod@soko.test'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let r = app
        .post(
            &admin,
            &format!("/admin/users/{user_id}/status"),
            &[("status", "suspended")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        seller
            .get(format!("{}/sell", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SEE_OTHER,
        "session ended"
    );
    let login = app
        .post(
            &browser(),
            "/login",
            &[("login", "mod@soko.test"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(login.status(), StatusCode::FORBIDDEN);

    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    for a in [
        "seller.status",
        "product.moderation",
        "category.create",
        "user.status",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
    let page = admin
        .get(format!("{}/admin", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("product.moderation") && page.contains("counterfeit brand"));
}

#[tokio::test]
async fn the_storefront_speaks_swahili_when_asked_and_remembers_it() {
    let app = spawn_app().await;
    let b = browser();
    let home = b.get(&app.url).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("Fresh on Soko") && home.contains("lang=\"en\""));
    let r = b
        .get(format!("{}/lang/sw?back=/search", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/search");
    let home = b.get(&app.url).send().await.unwrap().text().await.unwrap();
    assert!(
        home.contains("Mpya sokoni")
            && home.contains("lang=\"sw\"")
            && home.contains("Tafuta bidhaa"),
        "{home}"
    );
    // No open redirect: another site, however spelled (browsers drop a tab or a newline in a
    // URL, so `/%09/evil.example` would be `//evil.example`), is sent home instead.
    for back in [
        "//evil.example/x",
        "/%09/evil.example",
        "/%0A/evil.example",
        "/%0D%0A/evil.example",
        "/%5C/evil.example",
        "https://evil.example/",
    ] {
        let r = b
            .get(format!("{}/lang/en?back={back}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["location"], "/", "{back}");
    }
    let home = b.get(&app.url).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("Fresh on Soko"));
    assert_eq!(
        b.get(format!("{}/lang/fr", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

/// The browser's form and the API log in through one path: the same answer for a wrong
/// password, a login that is no email or phone, and an over-long password (refused without
/// being hashed); the right password opens both doors.
#[tokio::test]
async fn the_form_and_the_api_share_one_login_path() {
    let app = spawn_app().await;
    app.register("door@soko.test").await;
    let long = "x".repeat(2048);
    let token = |login: &str, password: &str| {
        app.http
            .post(format!("{}/api/v1/auth/token", app.url))
            .json(&serde_json::json!({"login": login, "password": password}))
            .send()
    };
    for (login, password) in [
        ("door@soko.test", "wrong horse"),
        ("not a login", "correct horse"),
        ("door@soko.test", long.as_str()),
    ] {
        let form = app
            .post(
                &browser(),
                "/login",
                &[("login", login), ("password", password)],
            )
            .await;
        assert_eq!(form.status(), StatusCode::UNAUTHORIZED, "form: {login}");
        let api = token(login, password).await.unwrap();
        assert_eq!(api.status(), StatusCode::UNAUTHORIZED, "api: {login}");
    }
    let form = app
        .post(
            &browser(),
            "/login",
            &[("login", "door@soko.test"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(form.status(), StatusCode::SEE_OTHER);
    let api = token("door@soko.test", "correct horse").await.unwrap();
    assert_eq!(api.status(), StatusCode::OK);
}
