//! Lockout as a weapon: failed logins from one address, or from many, must not keep the
//! account's owner out. Failures count per (account, address) with a growing wait; addresses
//! that never logged in to the account meet a looser ceiling together; the owner's own address
//! is not held up by either.

use std::time::Duration;

use reqwest::StatusCode;

use soko::config::limits::LoginState;
use soko::store;

use super::{PASSWORD, account, api_login, browser_at, form_login, node_on, spawn_with};
use crate::common::test_db;

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn failures_from_one_address_slow_it_and_not_the_owner() {
    // The defaults: five free failures per (account, address), then a minute's wait, doubling.
    let app = spawn_with(|_| {}).await;
    account(&app, "owner@soko.test").await;
    let attacker = browser_at(2);
    for _ in 0..5 {
        let r = form_login(&app, &attacker, "owner@soko.test", "guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // The attacker's address now waits, even with the right password, in the form and the API.
    let r = form_login(&app, &attacker, "owner@soko.test", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&r);
    assert!((50..=60).contains(&wait), "{wait}");
    assert_eq!(
        api_login(&app, &attacker, "owner@soko.test", PASSWORD).await,
        429
    );

    // The owner, from another address, gets in at once: the form, then the API from a third.
    let started = std::time::Instant::now();
    let owner = browser_at(3);
    let r = form_login(&app, &owner, "owner@soko.test", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/sell");
    assert_eq!(
        api_login(&app, &browser_at(4), "owner@soko.test", PASSWORD).await,
        200
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // And the attacker's address still waits.
    assert_eq!(
        form_login(&app, &attacker, "owner@soko.test", "guess")
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn rotating_addresses_meet_a_ceiling_that_spares_the_owners_address() {
    let app = spawn_with(|c| {
        c.api.rate_limit.login_failures = 2;
        // The owner's first login (from an address new to the account) and six guesses.
        c.api.rate_limit.login_account_failures = 7;
    })
    .await;
    account(&app, "owner@soko.test").await;
    // The owner's browser logged in from 127.0.0.3 before the attack.
    let owner = browser_at(3);
    assert_eq!(
        form_login(&app, &owner, "owner@soko.test", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    // Three addresses, two guesses each: the ceiling of attempts from strangers is reached.
    for n in 10..13 {
        let bot = browser_at(n);
        for _ in 0..2 {
            assert_eq!(api_login(&app, &bot, "owner@soko.test", "guess").await, 401);
        }
    }
    // A fresh address is refused now, even with the right password (form and API)...
    let r = form_login(&app, &browser_at(20), "owner@soko.test", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&r) >= 1);
    assert_eq!(
        api_login(&app, &browser_at(21), "owner@soko.test", PASSWORD).await,
        429
    );
    // ...but the owner's own address gets in at once, in the form and the API.
    let again = browser_at(3);
    let r = form_login(&app, &again, "owner@soko.test", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        api_login(&app, &again, "owner@soko.test", PASSWORD).await,
        200
    );
    // Other accounts are not touched by this one's ceiling.
    account(&app, "other@soko.test").await;
    assert_eq!(
        api_login(&app, &browser_at(22), "other@soko.test", PASSWORD).await,
        200
    );
}

/// Two nodes of one shop on one database: failures an address spends on node A count on
/// node B with `limits.login_state: database`, and not with `memory` (each node its own
/// budget: what an attacker rotating nodes behind a load balancer would get).
#[tokio::test]
async fn failures_through_one_node_count_on_another_with_database_login_state() {
    for state in [LoginState::Database, LoginState::Memory] {
        let (db, mut cfg) = test_db().await;
        cfg.limits.login_state = state;
        store::migrate::run(&db).await.unwrap();
        let (a, b) = (node_on(&db, &cfg).await, node_on(&db, &cfg).await);
        account(&a, "owner@soko.test").await;
        let attacker = browser_at(2);
        // The default five free failures, split over the two nodes.
        for (node, n) in [(&a, 3), (&b, 2)] {
            for _ in 0..n {
                let r = form_login(node, &attacker, "owner@soko.test", "guess").await;
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{state:?}");
            }
        }
        let r = form_login(&a, &attacker, "owner@soko.test", PASSWORD).await;
        if state == LoginState::Memory {
            // Node A saw three failures only: the right password gets in there.
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{state:?}");
            continue;
        }
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait = retry_after(&r);
        assert!((50..=60).contains(&wait), "{wait}");
        // The same wait on node B, in the form and the API.
        let r = form_login(&b, &attacker, "owner@soko.test", PASSWORD).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            api_login(&b, &attacker, "owner@soko.test", PASSWORD).await,
            429
        );
        // The owner, from another address, gets in on either node; that address is then the
        // owner's on both (never counted against the account's ceiling).
        let owner = browser_at(3);
        let r = form_login(&b, &owner, "owner@soko.test", PASSWORD).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            api_login(&a, &owner, "owner@soko.test", PASSWORD).await,
            200
        );
        // The counts are rows in the database: one per (account, address), one per account.
        let rows: Vec<(String, u32, i64)> = sqlx::query_as(
            "SELECT address, failures, known_ms FROM login_budgets \
             WHERE account = 'owner@soko.test' ORDER BY address",
        )
        .fetch_all(&db)
        .await
        .unwrap();
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!((rows[0].0.as_str(), rows[0].1), ("", 0), "{rows:?}");
        assert_eq!(
            (rows[1].0.as_str(), rows[1].1),
            ("127.0.0.2", 5),
            "{rows:?}"
        );
        assert_eq!(rows[2].0, "127.0.0.3");
        assert!(
            rows[2].2 > 0 && rows[2].1 == 0,
            "the owner's address: {rows:?}"
        );
    }
}
