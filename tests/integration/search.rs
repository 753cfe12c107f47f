//! Text search through the embedded index (src/search/) over a fixed small catalogue in a real
//! MariaDB: relevance on a fixed query set (exact > stemmed > fuzzy, name > description,
//! Swahili category names, seller and city), filters and facet counts, typos, prefix
//! suggestions, changes seen at once, a restart resuming from the stored cursor, and a
//! corrupted index rebuilt while search keeps answering.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use soko::market::states::ProductStatus;
use soko::search::{Options, Search, State};
use soko::store::catalogue::{self, NewProduct, ProductChanges, SearchFilter};

use crate::common::{Appliance, TestApp, scratch, spawn_app, test_db};

/// The fixed catalogue's product ids.
pub(crate) struct Catalogue {
    seller_a: u64,
    woven: u64,
    sisal: u64,
    bag: u64,
    pot: u64,
    spoon: u64,
}

async fn seller(db: &MySqlPool, n: u32, store: &str, city: &str) -> u64 {
    let email = format!("s{n}@soko.test");
    let user = soko::store::users::create(
        db,
        &soko::store::users::NewUser {
            email: Some(&email),
            phone: None,
            name: store,
            password_hash: "x",
            role: soko::market::states::Role::User,
        },
    )
    .await
    .unwrap();
    soko::store::sellers::create(
        db,
        &soko::store::sellers::NewSeller {
            user_id: user,
            store_name: store,
            slug: &format!("s{n}"),
            description: "",
            whatsapp_phone: &format!("+25472200{n:04}"),
            city,
            category_id: None,
            catalogue_url: None,
        },
    )
    .await
    .unwrap()
}

async fn product(
    db: &MySqlPool,
    seller: u64,
    category: Option<u64>,
    name: &str,
    description: &str,
    price_minor: i64,
) -> u64 {
    catalogue::create_product(
        db,
        &NewProduct {
            seller_id: seller,
            category_id: category,
            name,
            description,
            price_minor: Some(price_minor),
            currency: "KES",
            stock: 1,
        },
    )
    .await
    .unwrap()
}

/// Two categories (with Swahili names), two sellers in two cities, five products; the sellers
/// are approved after their products exist (a seller-scope change).
async fn catalogue(db: &MySqlPool) -> Catalogue {
    let baskets = catalogue::create_category(db, "baskets", "Baskets", "Vikapu")
        .await
        .unwrap();
    let kitchen = catalogue::create_category(db, "kitchen", "Kitchen", "Jikoni")
        .await
        .unwrap();
    let a = seller(db, 1, "Kiondo Crafts", "Nairobi").await;
    let b = seller(db, 2, "Coast Weavers", "Mombasa").await;
    let woven = product(
        db,
        a,
        Some(baskets),
        "Woven basket",
        "A sturdy basket for market days",
        150_000,
    )
    .await;
    let sisal = product(
        db,
        b,
        Some(baskets),
        "Sisal baskets set",
        "Three nested pieces",
        450_000,
    )
    .await;
    let bag = product(
        db,
        a,
        None,
        "Market bag",
        "Carries like a basket but softer",
        80_000,
    )
    .await;
    let pot = product(
        db,
        b,
        Some(kitchen),
        "Cooking pot",
        "Clay, wood fired",
        200_000,
    )
    .await;
    let spoon = product(db, a, Some(kitchen), "Wooden spoon", "Olive wood", 30_000).await;
    for s in [a, b] {
        crate::common::approve_seller(db, s).await;
    }
    Catalogue {
        seller_a: a,
        woven,
        sisal,
        bag,
        pot,
        spoon,
    }
}

/// Poll until `ok` holds (generous deadline: the suite runs on a loaded 2-core machine).
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut ok: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ids(app: &TestApp, query: &str) -> Vec<u64> {
    let r = app
        .http
        .get(format!("{}/api/v1/products/search?{query}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{query}");
    let body: serde_json::Value = r.json().await.unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect()
}

async fn suggestions(app: &TestApp, path: &str) -> Vec<String> {
    let r = app
        .http
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    let body: serde_json::Value = r.json().await.unwrap();
    body["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The app with the fixed catalogue, once its index answers (suggestions come only from the
/// index: SQL has none).
pub(crate) async fn app_with_catalogue() -> (TestApp, Catalogue) {
    let app = spawn_app().await;
    let c = catalogue(&app.db).await;
    let a = &app;
    until("the search index", || async move {
        suggestions(a, "/search/suggest?q=wov").await == ["Woven basket"]
    })
    .await;
    (app, c)
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

#[tokio::test]
async fn relevance_on_a_fixed_query_set() {
    let (app, c) = app_with_catalogue().await;
    // Exact name > stemmed name > description only; the kitchen is not a basket.
    assert_eq!(ids(&app, "q=basket").await, [c.woven, c.sisal, c.bag]);
    // "baskets" exactly is the sisal set's word; the woven basket matches by its stem.
    assert_eq!(ids(&app, "q=baskets").await[..2], [c.sisal, c.woven]);
    // Name over description: "market" is the bag's name and the woven basket's description.
    assert_eq!(ids(&app, "q=market").await, [c.bag, c.woven]);
    // Swahili category names, any case, with or without accents folded.
    assert_eq!(
        sorted(ids(&app, "q=vikapu").await),
        sorted(vec![c.woven, c.sisal])
    );
    assert_eq!(
        sorted(ids(&app, "q=JIKONI").await),
        sorted(vec![c.pot, c.spoon])
    );
    // Seller names and cities.
    assert_eq!(
        sorted(ids(&app, "q=mombasa").await),
        sorted(vec![c.sisal, c.pot])
    );
    assert_eq!(
        sorted(ids(&app, "q=weavers").await),
        sorted(vec![c.sisal, c.pot])
    );
    assert_eq!(sorted(ids(&app, "q=kiondo%20spoon").await), [c.spoon]);
    // Typos: one edit on a 5-letter word; exact matches rank above fuzzy ones.
    assert_eq!(ids(&app, "q=bsket").await[0], c.woven);
    assert_eq!(ids(&app, "q=wooden%20spon").await, [c.spoon]);
    assert!(
        ids(&app, "q=cat").await.is_empty(),
        "no typo tolerance for 3 letters"
    );
    // Filters inside the index: category, price range (minor units), city.
    assert_eq!(
        ids(&app, "q=basket&category=baskets").await,
        [c.woven, c.sisal]
    );
    assert_eq!(ids(&app, "q=basket&min=100000&max=200000").await, [c.woven]);
    assert_eq!(ids(&app, "q=basket&city=mombasa").await, [c.sisal]);
    assert_eq!(ids(&app, "q=basket&max=100000").await, [c.bag]);

    // Facet counts on the search page: every match, per category and per city.
    let html = app
        .http
        .get(format!("{}/search?q=basket", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"facets\""), "{html}");
    assert!(
        html.contains("Baskets <span class=\"count\">(2)</span>"),
        "{html}"
    );
    assert!(
        html.contains("Nairobi <span class=\"count\">(2)</span>"),
        "{html}"
    );
    assert!(
        html.contains("Mombasa <span class=\"count\">(1)</span>"),
        "{html}"
    );
    assert!(!html.contains("Kitchen <span"), "{html}");
    // Price bands, both ends included: the bag (800) and the woven basket (1,500), the sisal
    // set (4,500); each band's link applies its range.
    assert!(
        html.contains("KSh 500 – KSh 2,000 <span class=\"count\">(2)</span>"),
        "{html}"
    );
    assert!(
        html.contains("KSh 2,000 – KSh 5,000 <span class=\"count\">(1)</span>"),
        "{html}"
    );
    assert!(!html.contains("up to KSh 500"), "{html}");
    assert_eq!(
        ids(&app, "q=basket&min=50000&max=200000").await,
        [c.woven, c.bag]
    );
    // With the city applied, the facets count within it, and its link removes it.
    let html = app
        .http
        .get(format!("{}/search?q=basket&city=Nairobi", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Baskets <span class=\"count\">(1)</span>"),
        "{html}"
    );
    assert!(!html.contains("Mombasa <span"), "{html}");
    assert!(
        html.contains("href=\"/search?q=basket\" class=\"on\">Nairobi"),
        "{html}"
    );

    // A word the index has is what the visitor meant: no typo neighbours. A word it lacks
    // finds both neighbours.
    let lamp = product(&app.db, c.seller_a, None, "Clay lamp", "", 50_000).await;
    let lamb = product(&app.db, c.seller_a, None, "Roast lamb", "", 50_000).await;
    assert_eq!(ids(&app, "q=lamp").await, [lamp]);
    assert_eq!(ids(&app, "q=lamb").await, [lamb]);
    assert_eq!(sorted(ids(&app, "q=lamq").await), sorted(vec![lamp, lamb]));
}

#[tokio::test]
async fn suggestions_complete_the_last_word() {
    let (app, c) = app_with_catalogue().await;
    assert_eq!(
        suggestions(&app, "/search/suggest?q=sisal%20bas").await,
        ["Sisal baskets set"]
    );
    assert_eq!(
        suggestions(&app, "/search/suggest?q=coo").await,
        ["Cooking pot"]
    );
    assert_eq!(
        suggestions(&app, "/search/suggest?q=woo").await,
        ["Wooden spoon"]
    );
    assert_eq!(
        suggestions(&app, "/api/v1/products/suggest?q=cooki").await,
        ["Cooking pot"]
    );
    assert!(suggestions(&app, "/search/suggest?q=").await.is_empty());
    // The API names the field it refuses.
    let r = app
        .http
        .get(format!("{}/api/v1/products/suggest", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("\"q\""));
    // Names only of public products.
    catalogue::set_product_status(&app.db, c.seller_a, c.spoon, ProductStatus::Hidden)
        .await
        .unwrap();
    assert!(suggestions(&app, "/search/suggest?q=woo").await.is_empty());
}

#[tokio::test]
async fn edits_hides_and_deletes_show_at_once() {
    let (app, c) = app_with_catalogue().await;
    // Renamed: found by its new name (and a typo of it: only the index does typos), not the old.
    catalogue::update_product(
        &app.db,
        c.seller_a,
        c.spoon,
        &ProductChanges {
            name: Some("Enamel kettle"),
            description: Some("Boils fast"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(&app, "q=kettle").await, [c.spoon]);
    assert_eq!(ids(&app, "q=ketle").await, [c.spoon]);
    assert!(ids(&app, "q=spoon").await.is_empty());
    // Hidden, then shown again.
    catalogue::set_product_status(&app.db, c.seller_a, c.spoon, ProductStatus::Hidden)
        .await
        .unwrap();
    assert!(ids(&app, "q=kettle").await.is_empty());
    assert!(ids(&app, "q=ketle").await.is_empty());
    catalogue::set_product_status(&app.db, c.seller_a, c.spoon, ProductStatus::Active)
        .await
        .unwrap();
    assert_eq!(ids(&app, "q=ketle").await, [c.spoon]);
    // Deleted.
    catalogue::delete_product(&app.db, c.seller_a, c.woven)
        .await
        .unwrap();
    assert!(ids(&app, "q=woven").await.is_empty());
    assert!(!ids(&app, "q=bsket").await.contains(&c.woven));
    // A new product, found by a typo at once.
    let new = product(
        &app.db,
        c.seller_a,
        None,
        "Beaded necklace",
        "Maasai beads",
        90_000,
    )
    .await;
    assert_eq!(ids(&app, "q=necklase").await, [new]);
    assert_eq!(
        suggestions(&app, "/search/suggest?q=bead").await,
        ["Beaded necklace"]
    );
}

fn options(dir: &Path) -> Options {
    Options {
        dir: dir.to_owned(),
        writer_heap_bytes: 16 << 20,
        change_log_days: 7,
    }
}

async fn ready(search: &Search) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let State::Ready { cursor, .. } = search.state() {
            return cursor;
        }
        assert!(
            Instant::now() < deadline,
            "index not ready: {:?}",
            search.state()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn found(search: &Search, text: &str) -> Vec<u64> {
    let r = search
        .search(text, &SearchFilter::default(), 0, 40)
        .await
        .unwrap();
    r.cards.into_iter().map(|c| c.id).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    // Empty while a rebuild has removed the directory.
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    v.sort();
    v
}

/// Stop an index and wait until its writer is gone (its lock file released).
async fn stop(search: Search, token: CancellationToken, dir: &Path) {
    token.cancel();
    drop(search);
    until("the writer to let go", || async move { tantivy_free(dir) }).await;
}

fn tantivy_free(dir: &Path) -> bool {
    // The lock file is flock'ed by a live writer: try taking it ourselves.
    let Ok(f) = std::fs::File::open(dir.join(".tantivy-writer.lock")) else {
        return true;
    };
    let taken = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock);
    taken.is_ok()
}

#[tokio::test]
async fn a_restart_resumes_from_the_stored_cursor() {
    let (db, _) = test_db().await;
    soko::store::migrate::run(&db).await.unwrap();
    let c = catalogue(&db).await;
    let dir = scratch("search-resume").join("index");
    let token = CancellationToken::new();
    let first = Search::start(db.clone(), options(&dir), token.clone());
    let cursor = ready(&first).await;
    assert_eq!(found(&first, "bsket").await[0], c.woven);
    stop(first, token, &dir).await;
    let before = segment_files(&dir);
    assert!(!before.is_empty());

    // While no index runs: a new product, a rename and a delete.
    let new = product(
        &db,
        c.seller_a,
        None,
        "Carved giraffe",
        "Jacaranda wood",
        120_000,
    )
    .await;
    catalogue::update_product(
        &db,
        c.seller_a,
        c.bag,
        &ProductChanges {
            name: Some("Leather satchel"),
            description: Some("Stitched by hand"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    catalogue::delete_product(&db, c.seller_a, c.spoon)
        .await
        .unwrap();

    let token = CancellationToken::new();
    let second = Search::start(db.clone(), options(&dir), token.clone());
    let resumed = ready(&second).await;
    assert!(resumed >= cursor);
    // Typos only the index forgives: the changes made while it was down are in it.
    assert_eq!(found(&second, "girafe").await, [new]);
    assert_eq!(found(&second, "sachel").await, [c.bag]);
    assert!(found(&second, "spon").await.is_empty());
    // Resumed, not rebuilt: the segments written before the restart are still there.
    let after = segment_files(&dir);
    for f in &before {
        assert!(
            after.contains(f),
            "{} gone: the index was rebuilt",
            f.display()
        );
    }
    token.cancel();
}

#[tokio::test]
async fn a_corrupted_index_is_rebuilt_and_search_answers_meanwhile() {
    let (db, _) = test_db().await;
    soko::store::migrate::run(&db).await.unwrap();
    let c = catalogue(&db).await;
    let dir = scratch("search-corrupt").join("index");
    let token = CancellationToken::new();
    let first = Search::start(db.clone(), options(&dir), token.clone());
    ready(&first).await;
    stop(first, token, &dir).await;
    let before = segment_files(&dir);
    // Scribble over every file of the index.
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::write(e.path(), b"not an index").unwrap();
        }
    }

    let token = CancellationToken::new();
    let second = Search::start(db.clone(), options(&dir), token.clone());
    // At once, whatever state the index is in: an answer (from SQL until it is rebuilt).
    assert!(found(&second, "basket").await.contains(&c.woven));
    ready(&second).await;
    assert_eq!(found(&second, "bsket").await[0], c.woven);
    let after = segment_files(&dir);
    assert!(before.iter().all(|f| !after.contains(f)), "not rebuilt");
    token.cancel();
}

#[tokio::test]
async fn an_index_behind_the_pruned_change_log_is_rebuilt() {
    let (db, _) = test_db().await;
    soko::store::migrate::run(&db).await.unwrap();
    let c = catalogue(&db).await;
    let dir = scratch("search-pruned").join("index");
    let token = CancellationToken::new();
    let first = Search::start(db.clone(), options(&dir), token.clone());
    ready(&first).await;
    stop(first, token, &dir).await;
    let before = segment_files(&dir);

    // While no index runs: a new product, then the log pruned past it (as after days away).
    let new = product(
        &db,
        c.seller_a,
        None,
        "Carved giraffe",
        "Jacaranda wood",
        120_000,
    )
    .await;
    // Every row a day old, so that pruning at 0 days takes them all: a row written within the
    // same millisecond as the prune would otherwise stay (`created_at < now` is false).
    sqlx::query("UPDATE search_changes SET created_at = created_at - INTERVAL 1 DAY")
        .execute(&db)
        .await
        .unwrap();
    let pruned = soko::store::search::prune(&db, 0).await.unwrap();
    assert!(pruned > 0);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM search_changes")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(left, 0, "the new product's change is pruned too");
    assert!(soko::store::search::horizon(&db).await.unwrap() > 0);

    let token = CancellationToken::new();
    let second = Search::start(db.clone(), options(&dir), token.clone());
    ready(&second).await;
    // The change itself is gone from the log: only a rebuild from MySQL can know the product.
    assert_eq!(found(&second, "girafe").await, [new]);
    let after = segment_files(&dir);
    assert!(before.iter().all(|f| !after.contains(f)), "not rebuilt");
    token.cancel();
}

#[tokio::test]
async fn a_rebuild_request_in_the_log_rebuilds_a_running_index() {
    let (db, _) = test_db().await;
    soko::store::migrate::run(&db).await.unwrap();
    let c = catalogue(&db).await;
    let dir = scratch("search-rebuild").join("index");
    let token = CancellationToken::new();
    let search = Search::start(db.clone(), options(&dir), token.clone());
    ready(&search).await;
    let before = segment_files(&dir);
    // What `soko search rebuild` (and a restore) writes.
    soko::store::search::record_all(&db).await.unwrap();
    // The next search waits for the log to be applied, which is a rebuild: it answers either way.
    assert!(found(&search, "basket").await.contains(&c.woven));
    let d = dir.clone();
    let b = before.clone();
    until("the rebuilt index", || {
        let (d, b) = (d.clone(), b.clone());
        async move {
            d.join("meta.json").exists()
                && !segment_files(&d).is_empty()
                && segment_files(&d).iter().all(|f| !b.contains(f))
        }
    })
    .await;
    ready(&search).await;
    assert_eq!(found(&search, "bsket").await[0], c.woven);
    token.cancel();
}

#[tokio::test]
async fn search_pages_walk_through_every_match() {
    let (app, c) = app_with_catalogue().await;
    let rows: Vec<soko::store::bulk::BulkProduct> = (0..45)
        .map(|i| soko::store::bulk::BulkProduct {
            seller_id: c.seller_a,
            category_id: None,
            name: format!("Enamel mug {i}"),
            description: "Tin".into(),
            price_minor: 50_000 + i,
            stock: 1,
        })
        .collect();
    soko::store::bulk::insert_products(&app.db, &rows)
        .await
        .unwrap();
    let page = |n: u32| {
        let url = format!("{}/search?q=mug&page={n}", app.url);
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let cards = |html: &str| -> Vec<String> {
        html.split("<li class=\"card\">")
            .skip(1)
            .map(|li| {
                li.split("href=\"/p/")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let first = page(1).await;
    assert_eq!(cards(&first).len(), 40, "{first}");
    assert!(first.contains("rel=\"next\""), "{first}");
    assert!(first.contains("page=2"), "{first}");
    let second = page(2).await;
    assert_eq!(cards(&second).len(), 5, "{second}");
    assert!(!second.contains("rel=\"next\""), "{second}");
    let mut all: Vec<String> = cards(&first).into_iter().chain(cards(&second)).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 45);
}

#[tokio::test]
async fn soko_up_searches_its_index_shows_it_in_status_and_rebuilds_on_request() {
    let http = reqwest::Client::new();
    let mut app = Appliance::prepare("search-up", |_| {});
    app.start();
    app.wait_ready(&http, Duration::from_secs(120)).await;
    let db = app.app_pool();
    let c = catalogue(&db).await;
    let first_hit = |q: &'static str| {
        let (http, url) = (
            http.clone(),
            app.url(&format!("/api/v1/products/search?q={q}")),
        );
        async move {
            let body: serde_json::Value = http.get(url).send().await.unwrap().json().await.unwrap();
            body["items"][0]["id"].as_u64()
        }
    };
    // A typo only the index forgives.
    until("soko up's index", || async {
        first_hit("bsket").await == Some(c.woven)
    })
    .await;
    let (_, status) = app.status();
    let line = status["search"].as_str().unwrap_or_default().to_owned();
    assert!(line.starts_with("ready: "), "{status}");
    let text = app.command(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("SEARCH       ready: "), "{text}");

    // `soko search rebuild` beside the running appliance: its index is rebuilt from MySQL.
    let dir = app.cfg.data_dir.join("search").join(&app.cfg.database.name);
    let before = segment_files(&dir);
    assert!(!before.is_empty(), "{}", dir.display());
    let out = app.command(&["search", "rebuild"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = dir.clone();
    until("the rebuilt index", || {
        let (d, b) = (d.clone(), before.clone());
        async move {
            let now = segment_files(&d);
            !now.is_empty() && now.iter().all(|f| !b.contains(f))
        }
    })
    .await;
    until("search after the rebuild", || async {
        first_hit("bsket").await == Some(c.woven)
    })
    .await;
}
