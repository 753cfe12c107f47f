//! Event retention on a running `soko up`: raw events older than `limits.raw_event_days` are
//! rolled up into daily counts and deleted by the roll-up worker, and the seller insights (API
//! and the CSV export page) show exactly what they showed before.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use soko::config::Mode;

use super::{count, spawn_on};
use crate::common::{Appliance, TestApp, browser, csrf, random_suffix, shared, test_db};
use crate::vecsync::seller;

/// The seller's insights over 60 days: the API's JSON and the CSV export page.
async fn insights(url: &str, http: &Client, token: &str, page: &Client) -> (Value, String) {
    let r = http
        .get(format!("{url}/api/v1/seller/analytics?days=60"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let json: Value = r.json().await.unwrap();
    let r = page
        .get(format!("{url}/sell/analytics.csv?days=60"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    (json, r.text().await.unwrap())
}

async fn token(url: &str, http: &Client) -> String {
    let body: Value = http
        .post(format!("{url}/api/v1/auth/token"))
        .json(&json!({ "login": "seller1@soko.test", "password": "correct horse" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().expect("a token").to_owned()
}

#[tokio::test]
async fn retention_rolls_up_and_prunes_old_events_while_insights_stay_the_same() {
    let (db, db_cfg) = test_db().await;
    let app: TestApp = spawn_on(db.clone(), db_cfg.clone(), false, |_| {}).await;
    let s = seller(&app, 1, "Nairobi").await;
    let basket = app.add_product(&s, "Sisal basket", "1,500").await;
    let mat = app.add_product(&s, "Woven mat", "900").await;
    // Today's traffic through the pages.
    for id in [basket, mat] {
        let buyer = browser();
        buyer
            .get(format!("{}/p/{id}", app.url))
            .send()
            .await
            .unwrap();
        buyer
            .get(format!("{}/p/{id}/whatsapp", app.url))
            .send()
            .await
            .unwrap();
    }
    // The pages write views behind the answer, in groups (`web::view_writer`).
    let today = "SELECT COUNT(*) FROM events WHERE kind = 'view'";
    assert_eq!(crate::common::eventually(|| count(&db, today), 2).await, 2);
    // History: views and taps from 3 to 40 days ago (a shop that has been open a while).
    let seller_id: u64 = sqlx::query_scalar("SELECT id FROM sellers")
        .fetch_one(&db)
        .await
        .unwrap();
    for (days_ago, views, taps) in [(3, 4, 1), (12, 7, 2), (19, 3, 0), (33, 9, 4), (40, 2, 1)] {
        for (kind, n) in [("view", views), ("whatsapp_start", taps)] {
            for i in 0..n {
                let product = if i % 3 == 0 { mat } else { basket };
                sqlx::query(
                    "INSERT INTO events (kind, product_id, seller_id, visitor, device, created_at) \
                     VALUES (?, ?, ?, ?, 'mobile', UTC_TIMESTAMP(3) - INTERVAL ? DAY \
                     - INTERVAL ? MINUTE)",
                )
                .bind(kind)
                .bind(product)
                .bind(seller_id)
                .bind(format!("{i:032x}"))
                .bind(days_ago)
                .bind(i * 7)
                .execute(&db)
                .await
                .unwrap();
            }
        }
    }
    let http = Client::new();
    let before = insights(&app.url, &http, &token(&app.url, &http).await, &s).await;
    assert_eq!(before.0["views"], 27, "{}", before.0);
    assert_eq!(before.0["leads"], 10, "{}", before.0);
    let old = "SELECT COUNT(*) FROM events WHERE created_at < UTC_DATE() - INTERVAL 10 DAY";
    assert_eq!(count(&db, old).await, 28);
    // Days as the shop's zone counts them (Africa/Nairobi, the default: UTC+3, no DST).
    assert_eq!(db_cfg.timezone, "Africa/Nairobi");
    let old_days = count(
        &db,
        "SELECT COUNT(DISTINCT DATE(created_at + INTERVAL 3 HOUR)) FROM events \
         WHERE created_at < UTC_DATE() - INTERVAL 10 DAY",
    )
    .await;

    // The appliance on the same database, keeping 10 days of raw events.
    let sh = shared();
    let mut soko = Appliance::prepare("retention", |c| {
        c.database.mode = Mode::External;
        c.database.url = format!(
            "mysql://{}@127.0.0.1:{}/{}",
            db_cfg.database.user, db_cfg.database.embedded.port, db_cfg.database.name
        );
        c.vectors.mode = Mode::External;
        c.vectors.url = format!("http://127.0.0.1:{}", sh.cfg.vectors.embedded.port);
        c.vectors.collection = format!("r_{}", random_suffix());
        c.recommendations.trending_half_life_hours = NonZeroU32::new(24).unwrap();
        c.recommendations.interval_secs = NonZeroU64::new(1).unwrap();
        c.limits.raw_event_days = NonZeroU32::new(10).unwrap();
    });
    soko.start_on_shared_database();
    soko.wait_ready(&http, Duration::from_secs(120)).await;
    let start = Instant::now();
    while count(&db, old).await > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "old raw events were not rolled up:\n{}",
            soko.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every old day (12, 19, 33 and 40 days ago, some spread over two dates) is now counts.
    let days = count(&db, "SELECT COUNT(DISTINCT day) FROM event_days").await;
    assert_eq!(days, old_days);
    let rolled: i64 = sqlx::query_scalar("SELECT CAST(SUM(n) AS SIGNED) FROM event_days")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(rolled, 28, "every pruned event is counted once");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events").await,
        4 + 5,
        "today's and the 3-day-old events stay raw"
    );

    // The insights are unchanged: through the same code in-process, and through the appliance.
    let after = insights(&app.url, &http, &token(&app.url, &http).await, &s).await;
    assert_eq!(after, before);
    let page = browser();
    let token_field = csrf(&page, &soko.url("/login")).await;
    let r = page
        .post(soko.url("/login"))
        .form(&[
            ("login", "seller1@soko.test"),
            ("password", "correct horse"),
            ("csrf", token_field.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let base = format!("http://{}", soko.cfg.http.listen);
    let through_soko = insights(&base, &http, &token(&base, &http).await, &page).await;
    assert_eq!(through_soko, before);
}

/// A seller's days are the shop's days (`timezone`), not UTC's: a view at 23:30 and one at
/// midnight in Nairobi (20:30 and 21:00 UTC, one UTC date) fall on two days.
#[tokio::test]
async fn insights_count_days_in_the_shops_time_zone() {
    let (db, db_cfg) = test_db().await;
    assert_eq!(db_cfg.timezone, "Africa/Nairobi");
    let app: TestApp = spawn_on(db.clone(), db_cfg.clone(), false, |_| {}).await;
    let s = seller(&app, 1, "Nairobi").await;
    let basket = app.add_product(&s, "Sisal basket", "1,500").await;
    let seller_id: u64 = sqlx::query_scalar("SELECT id FROM sellers")
        .fetch_one(&db)
        .await
        .unwrap();
    let zone = soko::clock::Zone::named("Africa/Nairobi").unwrap();
    let http = Client::new();
    let token = token(&app.url, &http).await;
    loop {
        let today = zone.today();
        let midnight = zone.day_start_utc(today);
        sqlx::query("DELETE FROM events")
            .execute(&db)
            .await
            .unwrap();
        for minutes_before in [30, 0] {
            sqlx::query(
                "INSERT INTO events (kind, product_id, seller_id, visitor, device, created_at) \
                 VALUES ('view', ?, ?, ?, 'mobile', ? - INTERVAL ? MINUTE)",
            )
            .bind(basket)
            .bind(seller_id)
            .bind(format!("{minutes_before:032x}"))
            .bind(&midnight)
            .bind(minutes_before)
            .execute(&db)
            .await
            .unwrap();
        }
        let r = http
            .get(format!("{}/api/v1/seller/analytics?days=2", app.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let json: Value = r.json().await.unwrap();
        if zone.today() != today {
            continue; // Midnight passed while the test ran: the days moved; again.
        }
        let yesterday = today.yesterday().unwrap().to_string();
        assert_eq!(
            json["daily"],
            json!([
                { "day": yesterday, "views": 1, "leads": 0 },
                { "day": today.to_string(), "views": 1, "leads": 0 },
            ]),
            "{json}"
        );
        assert_eq!(json["views"], 2, "{json}");
        break;
    }
}
