//! The storefront in a real browser: Debian's Chromium, headless, on a phone-sized viewport,
//! driven through chromedriver (WebDriver). Seller registers and lists, an admin approves, a
//! buyer finds the product by search, opens it and taps WhatsApp; the seller sees the lead.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::common::{free_port, scratch, spawn_app};

struct Driver {
    process: Child,
    url: String,
    /// Chromium profiles, removed when the test passes.
    profiles: std::sync::Mutex<Vec<std::path::PathBuf>>,
    screens: std::path::PathBuf,
}

impl Driver {
    async fn start() -> Driver {
        let port = free_port();
        let process = Command::new(
            std::env::var("SOKO_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()),
        )
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian package chromium-driver; scripts/setup installs it)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver {
            process,
            url: format!("http://127.0.0.1:{port}"),
            profiles: Default::default(),
            screens: scratch("screens"),
        }
    }

    /// A fresh headless Chromium with its own profile, 412×915 like a mid-range Android phone.
    async fn session(&self) -> Client {
        let profile = scratch("chromium-profile");
        self.profiles.lock().unwrap().push(profile.clone());
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": std::env::var("SOKO_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=412,915",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "mobileEmulation": { "deviceMetrics": { "width": 412, "height": 915, "pixelRatio": 2.6 } }
            },
            // The console and what the browser says about the page (failed loads, refused
            // scripts or styles), read by `console`.
            "goog:loggingPrefs": { "browser": "ALL" }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Driver {
    /// What the browser logged since the last call: the page's console and the browser's own
    /// messages about it (a failed load, a script or style the CSP refused), from
    /// chromedriver's log endpoint.
    async fn console(&self, c: &Client) -> Vec<serde_json::Value> {
        let id = c.session_id().await.unwrap().expect("a session");
        let r = reqwest::Client::new()
            .post(format!("{}/session/{id}/se/log", self.url))
            .json(&serde_json::json!({ "type": "browser" }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(status.is_success(), "chromedriver's log: {status} {body}");
        body["value"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        if !std::thread::panicking() {
            for p in self.profiles.lock().unwrap().drain(..) {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
}

/// Type into the form field `name` (in a form: the page's `<meta name="description">` is not one).
async fn fill(c: &Client, name: &str, value: &str) {
    let field = c
        .find(Locator::Css(&format!("form [name=\"{name}\"]")))
        .await
        .unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn submit(c: &Client) {
    c.find(Locator::Css("form.form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Wait for the browser to arrive at a path starting with `prefix` (after a click or submit).
async fn arrive(c: &Client, prefix: &str) {
    let start = Instant::now();
    loop {
        let url = c.current_url().await.unwrap();
        if url.path().starts_with(prefix) {
            return;
        }
        if start.elapsed() > Duration::from_secs(10) {
            panic!(
                "still at {url}, expected {prefix}:\n{}",
                c.source().await.unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait for an element to appear (the page after a click or submit has loaded).
async fn wait_for(c: &Client, xpath: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(xpath))
        .await
    {
        Ok(e) => e,
        Err(e) => panic!(
            "{xpath} never appeared ({e}):\n{}",
            c.source().await.unwrap()
        ),
    }
}

async fn register(c: &Client, base: &str, name: &str, login: &str) {
    c.goto(&format!("{base}/register")).await.unwrap();
    fill(c, "name", name).await;
    fill(c, "login", login).await;
    fill(c, "password", "a good long password").await;
    submit(c).await;
    // Registering logs nobody in (a taken login gets the same answer): the login page next.
    arrive(c, "/login").await;
    fill(c, "login", login).await;
    fill(c, "password", "a good long password").await;
    submit(c).await;
}

#[tokio::test]
async fn a_seller_lists_a_buyer_finds_it_on_a_phone_and_contacts_them() {
    let app = spawn_app().await;
    let base = app.url.clone();
    let driver = Driver::start().await;

    // The seller registers, onboards and adds a product.
    let seller = driver.session().await;
    register(&seller, &base, "Achieng", "0711 222 333").await;
    arrive(&seller, "/sell").await;
    fill(&seller, "store_name", "Lake Basket Co").await;
    fill(&seller, "whatsapp", "0799 888 777").await;
    fill(&seller, "city", "Kisumu").await;
    fill(&seller, "description", "Woven papyrus baskets").await;
    submit(&seller).await;
    let status = seller
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("p.status"))
        .await
        .unwrap();
    assert_eq!(status.text().await.unwrap(), "Status: pending");
    seller
        .goto(&format!("{base}/sell/products/new"))
        .await
        .unwrap();
    fill(&seller, "name", "Papyrus market basket").await;
    fill(&seller, "price", "1,850").await;
    fill(&seller, "stock", "4").await;
    fill(&seller, "description", "Strong handles, 40 cm").await;
    submit(&seller).await;
    wait_for(&seller, "//td/a[text()='Papyrus market basket']").await;
    // ...and a photo of it, through the file input.
    seller
        .find(Locator::LinkText("Photos"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(&seller, "/sell/products/").await;
    let photo = driver.screens.join("basket.jpg");
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(120 + x / 8) as u8, (80 + y / 8) as u8, 40])
    }))
    .save(&photo)
    .unwrap();
    seller
        .find(Locator::Css("input[type=file][name=image]"))
        .await
        .unwrap()
        .send_keys(photo.to_str().unwrap())
        .await
        .unwrap();
    seller
        .find(Locator::Css("form.form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&seller, "//span[contains(text(), '640×480')]").await;

    // An admin approves the seller.
    let hash = soko::web::auth::hash_password("admin password 1".into())
        .await
        .unwrap();
    soko::store::users::create(
        &app.db,
        &soko::store::users::NewUser {
            email: Some("boss@soko.test"),
            phone: None,
            name: "Boss",
            password_hash: &hash,
            role: soko::market::states::Role::Admin,
        },
    )
    .await
    .unwrap();
    let admin = driver.session().await;
    admin.goto(&format!("{base}/login")).await.unwrap();
    fill(&admin, "login", "boss@soko.test").await;
    fill(&admin, "password", "admin password 1").await;
    submit(&admin).await;
    arrive(&admin, "/admin").await;
    admin
        .find(Locator::XPath("//button[text()='Approve']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&admin, "//td[text()='seller.status']").await;

    // A buyer on a phone searches, opens the product, taps WhatsApp.
    let buyer = driver.session().await;
    buyer.goto(&base).await.unwrap();
    let search = buyer.find(Locator::Css("input[name=q]")).await.unwrap();
    search.send_keys("papyrus\n").await.unwrap();
    let card = wait_for(&buyer, "//ul[@class='grid']/li/a").await;
    assert!(card.text().await.unwrap().contains("KSh 1,850"));
    // The card shows the photo, and the browser loads it (lazily: give it a moment).
    let start = Instant::now();
    let loaded = loop {
        let w = buyer
            .execute(
                "const i = document.querySelector('ul.grid li img'); \
                 return i && i.complete ? i.naturalWidth : 0",
                vec![],
            )
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(0);
        if w > 0 || start.elapsed() > Duration::from_secs(10) {
            break w;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(loaded > 0, "the card's photo did not load");
    card.click().await.unwrap();
    arrive(&buyer, "/p/").await;
    let width: f64 = buyer
        .execute("return document.documentElement.clientWidth", vec![])
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(width <= 420.0, "phone-sized viewport, got {width}");
    // "Similar items" not ready when the page was made: app.js puts the block in place from its
    // fragment (with the items, or the line saying why there are none).
    wait_for(&buyer, "//section[@id='similar' and not(@data-fragment)]").await;
    // Kept for a look: the product page as a phone shows it.
    let png = buyer.screenshot().await.unwrap();
    std::fs::write(driver.screens.join("product-phone.png"), png).unwrap();
    let wa = buyer.find(Locator::Css("a.whatsapp")).await.unwrap();
    assert!(
        wa.attr("href")
            .await
            .unwrap()
            .unwrap()
            .ends_with("/whatsapp")
    );
    wa.click().await.unwrap();
    // The network is closed here, so the page itself fails to load; the address is what counts.
    let start = Instant::now();
    let landed = loop {
        let url = buyer.current_url().await.unwrap();
        if url.host_str() == Some("wa.me") || start.elapsed() > Duration::from_secs(10) {
            break url;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(landed.host_str(), Some("wa.me"), "{landed}");
    assert_eq!(landed.path(), "/254799888777");
    let text: String = landed
        .query_pairs()
        .find(|(k, _)| k == "text")
        .unwrap()
        .1
        .into_owned();
    assert!(
        text.contains("Papyrus market basket") && text.contains("KSh 1,850"),
        "{text}"
    );

    // The seller sees the view and the lead (the view is written behind the page, in a group
    // about a second later: `web::view_writer`).
    let started = std::time::Instant::now();
    let dash = loop {
        seller.goto(&format!("{base}/sell")).await.unwrap();
        let dash = seller.source().await.unwrap();
        if dash.contains("<strong>1</strong> views") || started.elapsed() > Duration::from_secs(60)
        {
            break dash;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        dash.contains("<strong>1</strong> views")
            && dash.contains("<strong>1</strong> WhatsApp leads"),
        "{dash}"
    );
    assert!(dash.contains("Papyrus market basket"));

    // A newcomer's feed is the shared (cached) page; app.js fills its "recommended for you"
    // strip from the visitor's own fragment (with no history of theirs: trending).
    let s = soko::workers::recommend::Settings::default();
    soko::workers::recommend::refresh_trending(&app.db, &s)
        .await
        .unwrap();
    let newcomer = driver.session().await;
    newcomer.goto(&base).await.unwrap();
    let strip = wait_for(&newcomer, "//section[@id='for-you']//li/a").await;
    assert!(
        strip
            .text()
            .await
            .unwrap()
            .contains("Papyrus market basket")
    );
    for c in [seller, admin, buyer, newcomer] {
        c.close().await.unwrap();
    }
}

#[tokio::test]
async fn the_search_box_suggests_product_names_as_one_types() {
    let (app, _) = crate::search::app_with_catalogue().await;
    let driver = Driver::start().await;
    let buyer = driver.session().await;
    buyer.goto(&app.url).await.unwrap();
    let field = buyer
        .find(Locator::Css("form.search input[name=q]"))
        .await
        .unwrap();
    field.send_keys("sisal bas").await.unwrap();
    // app.js asks /search/suggest and fills the box's <datalist>.
    let option = "//datalist[@id='search-suggestions']/option[@value='Sisal baskets set']";
    if let Err(e) = buyer
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath(option))
        .await
    {
        panic!("no suggestion ({e}):\n{}", buyer.source().await.unwrap());
    }
    assert_eq!(
        field.attr("list").await.unwrap().as_deref(),
        Some("search-suggestions")
    );
    buyer.close().await.unwrap();
}

/// Infinite scroll appends the next page's cards to the listing itself, not to the trending
/// strip above it (app.js used to take the page's first `ul.grid`, the strip's).
#[tokio::test]
async fn the_feed_grows_as_one_scrolls_and_the_strips_stay_as_they_were() {
    let app = spawn_app().await;
    let (seller, first) = crate::images::seller_with_product(&app, 1).await;
    let admin = app.admin().await;
    app.approve_all(&admin).await;
    for i in 0..44 {
        app.add_product(&seller, &format!("Kiondo basket {i}"), "900")
            .await;
    }
    // A view of the first product, written behind the page, then trending computed: the
    // shared feed shows a trending strip above the listing.
    let visitor = crate::common::browser();
    let r = visitor
        .get(format!("{}/p/{first}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let views = crate::common::eventually(
        || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events WHERE kind = 'view'")
                .fetch_one(&app.db)
                .await
                .unwrap()
        },
        1,
    )
    .await;
    assert_eq!(views, 1);
    soko::workers::recommend::refresh_trending(
        &app.db,
        &soko::workers::recommend::Settings::default(),
    )
    .await
    .unwrap();

    let driver = Driver::start().await;
    let buyer = driver.session().await;
    buyer.goto(&app.url).await.unwrap();
    let count = |xpath: &'static str| {
        let buyer = &buyer;
        async move { buyer.find_all(Locator::XPath(xpath)).await.unwrap().len() }
    };
    let trending = "//section[@id='trending']//li";
    let listing = "//ul[@id='cards']/li";
    assert_eq!(
        count(trending).await,
        1,
        "{}",
        buyer.source().await.unwrap()
    );
    assert_eq!(count(listing).await, 40);
    buyer
        .execute("window.scrollTo(0, document.body.scrollHeight)", vec![])
        .await
        .unwrap();
    let started = Instant::now();
    while count(listing).await < 45 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(listing).await,
        45,
        "the listing holds both pages:\n{}",
        buyer.source().await.unwrap()
    );
    assert_eq!(count(trending).await, 1, "the strip is as it was");
    buyer.close().await.unwrap();
}

/// A page that logs errors to a buyer's console is a page with a bug: the feed, a product with
/// a photo, one without, a seller's page and a search log no error or warning, once loaded and
/// its placeholders filled. Each has a description and OpenGraph tags for link previews.
#[tokio::test]
async fn the_buyer_pages_log_nothing_to_the_console_and_describe_themselves() {
    let app = spawn_app().await;
    let (seller, with_photo) = crate::images::seller_with_product(&app, 1).await;
    let r = crate::images::upload(
        &seller,
        &app,
        with_photo,
        crate::images::jpeg(640, 480),
        "basket.jpg",
        "image/jpeg",
        true,
    )
    .await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let admin = app.admin().await;
    app.approve_all(&admin).await;
    let without = app.add_product(&seller, "Kiondo basket", "900").await;
    let slug: String = sqlx::query_scalar("SELECT slug FROM sellers LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();

    let driver = Driver::start().await;
    let buyer = driver.session().await;
    // Loaded: the document and its scripts, and each placeholder's fetch answered.
    let settled = r#"return document.readyState === "complete" &&
        Array.from(document.querySelectorAll("[data-fragment]")).every(function (s) {
          var url = new URL(s.getAttribute("data-fragment"), location.href).href;
          return performance.getEntriesByName(url).length > 0;
        });"#;
    for path in [
        "/".to_owned(),
        format!("/p/{with_photo}"),
        format!("/p/{without}"),
        format!("/s/{slug}"),
        "/search?q=basket".to_owned(),
    ] {
        buyer.goto(&format!("{}{path}", app.url)).await.unwrap();
        let started = Instant::now();
        while buyer.execute(settled, vec![]).await.unwrap() != serde_json::json!(true) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{path} never settled:\n{}",
                buyer.source().await.unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let said: Vec<_> = driver
            .console(&buyer)
            .await
            .into_iter()
            .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
            .collect();
        assert!(said.is_empty(), "{path} logged to the console: {said:#?}");
        let description = buyer
            .find(Locator::Css("meta[name=description]"))
            .await
            .unwrap_or_else(|_| panic!("{path} has no description"))
            .attr("content")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(
            !description.trim().is_empty(),
            "{path}: an empty description"
        );
        for property in ["og:title", "og:description", "og:type"] {
            assert!(
                buyer
                    .find(Locator::Css(&format!("meta[property=\"{property}\"]")))
                    .await
                    .is_ok(),
                "{path} lacks {property}"
            );
        }
    }
    // The product page: its photo, its price and its own words for link previews.
    buyer
        .goto(&format!("{}/p/{with_photo}", app.url))
        .await
        .unwrap();
    let meta = |property: &'static str| {
        let buyer = &buyer;
        async move {
            buyer
                .find(Locator::Css(&format!("meta[property=\"{property}\"]")))
                .await
                .unwrap_or_else(|_| panic!("no {property}"))
                .attr("content")
                .await
                .unwrap()
                .unwrap_or_default()
        }
    };
    assert!(meta("og:image").await.contains("/img/"));
    assert!(
        meta("og:title").await.contains("KSh"),
        "{}",
        meta("og:title").await
    );
    assert_eq!(meta("product:price:currency").await, "KES");
    assert!(!meta("product:price:amount").await.is_empty());
    buyer.close().await.unwrap();
}
