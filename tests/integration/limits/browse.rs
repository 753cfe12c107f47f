//! One client over its page budget gets 429 with Retry-After and a friendly page, on every
//! metered page, while another address (127.0.0.2) is still served, and so are the pages that
//! cost nothing.

use std::time::Instant;

use reqwest::StatusCode;

use super::{client_from, spawn_with};

#[tokio::test]
async fn a_client_over_its_page_budget_gets_429_while_another_address_is_served() {
    let app = spawn_with(false, |c| {
        c.limits.browse_requests = 5;
        c.limits.browse_window_secs = std::num::NonZeroU64::new(600).unwrap();
    })
    .await;
    let greedy = client_from([127, 0, 0, 1], true);
    for i in 0..5 {
        let r = greedy
            .get(format!("{}/search?q=basket{i}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "request {i} is within the budget"
        );
    }
    let started = Instant::now();
    let r = greedy
        .get(format!("{}/search?q=basket", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // 5 per 600 s: one more every 120 s.
    assert!((1..=120).contains(&wait), "Retry-After {wait}");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Slow down") && page.contains("try again"),
        "{page}"
    );
    // The budget is shared by every metered page: product pages, the WhatsApp funnel and
    // search by photo are refused too, before any work (a product that does not exist would
    // otherwise be a 404).
    for path in ["/p/999999", "/p/999999/whatsapp", "/search/photo"] {
        let r = greedy
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    assert!(
        started.elapsed().as_secs() < 60,
        "the refusals are immediate"
    );
    // Pages that cost nothing stay open to the same client.
    let r = greedy
        .get(format!("{}/login", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Another client address has a budget of its own.
    let other = client_from([127, 0, 0, 2], true);
    for i in 0..5 {
        let r = other
            .get(format!("{}/search?q=mat{i}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "127.0.0.2, request {i}");
    }
    let r = other
        .get(format!("{}/p/999999", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "its own 6th");
}
