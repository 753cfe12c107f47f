//! Lockout as a weapon: failed logins from one address, or from many, must not keep the
//! account's owner out. Failures count per (account, address) with a growing wait; addresses
//! that never logged in to the account meet a looser ceiling together; the owner's own address
//! is not held up by either.

use std::time::Duration;

use reqwest::StatusCode;

use super::{PASSWORD, account, api_login, browser_at, form_login, spawn_with};

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
