//! Failed logins, counted so that they cannot be turned into a lockout of the account's owner.
//!
//! Failures are counted per (account, client address): after `login_failures` of them, that
//! address waits before each further try on that account, a minute, then doubling, up to
//! `login_backoff_max_secs`; a right password clears its count. Another address, the owner's,
//! is not held up by it. An attacker who rotates addresses meets a looser ceiling per account,
//! `login_account_failures` attempts per window from all the addresses that have never logged
//! in to the account, together; the addresses the account logged in from (in this process,
//! for [`KNOWN_FOR`]) are not counted against it and never refused by it.
//!
//! The state is in memory by default (`limits.login_state: memory`), like the other rate
//! limits: counting durably would cost a database write per guess (itself a way to load the
//! box), and a restart forgets only counts, which helps the owner as much as an attacker. Both
//! maps are bounded ([`MAX_KEYS`]) and swept.
//!
//! Several nodes behind a load balancer (`limits.login_state: database`) would each count on
//! their own, and an attacker rotating nodes would get each node's budget: there the counts
//! live in MariaDB (`store::login_budgets`), with the same rules and the database's clock. The
//! write per guess is accepted there because it is bounded: only login attempts write (every
//! attempt is counted as a failure before the password is checked, as here, and a right
//! password writes once more to clear it), they are already metered per address
//! (`api.rate_limit.login_requests`) and cost an argon2 hash each, far more than the write;
//! each is one `INSERT … ON DUPLICATE KEY UPDATE` of at most two rows, one per (account,
//! address) and one per account, never a growing log; and expired rows are pruned. The
//! per-account ceiling there is the same GCRA as [`Limiter`]'s, its arrival time in the
//! account's row. A database that does not answer refuses the login (an error page), never
//! admits it unmetered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::MySqlPool;

use super::api::limit::Limiter;
use crate::config::limits::LoginState;
use crate::store::login_budgets::{self, Budget};

/// The first wait after the free failures; each further failure doubles it.
pub const FIRST_WAIT: Duration = Duration::from_secs(60);
/// How long an address that logged in to an account stays its owner's.
pub const KNOWN_FOR: Duration = Duration::from_secs(30 * 86_400);
/// Entries kept at most per map; beyond, the oldest half is dropped (and it is logged).
const MAX_KEYS: usize = 200_000;

pub struct Lockout {
    /// Free failures per (account, address); 0: no limit.
    free: u32,
    max_wait: Duration,
    /// A pair's count is forgotten this long after its last failure.
    window: Duration,
    /// Attempts per account from addresses it never logged in from.
    strangers: Limiter,
    /// `database`: the counts are in `login_budgets`, not in `state`.
    shared: bool,
    /// Strangers' attempts per account and window (for the shared GCRA).
    per_account: u32,
    /// Shared writes since the last prune of expired rows.
    writes: std::sync::atomic::AtomicU32,
    state: Mutex<State>,
}

/// Shared writes between two prunes of expired `login_budgets` rows.
const PRUNE_EVERY: u32 = 256;

#[derive(Default)]
struct State {
    pairs: HashMap<(String, String), Pair>,
    /// (account, address) → when it last logged in.
    known: HashMap<(String, String), Instant>,
    since_sweep: u32,
}

#[derive(Clone, Copy)]
struct Pair {
    failures: u32,
    last: Instant,
    /// No try before this instant.
    until: Instant,
}

/// An attempt admitted (and counted as a failure until [`Lockout::succeeded`] says otherwise).
pub struct Admitted;

impl Lockout {
    pub fn new(free: u32, per_account: u32, window: Duration, max_wait: Duration) -> Self {
        Lockout {
            free,
            max_wait,
            window,
            strangers: Limiter::new(per_account, window),
            shared: false,
            per_account,
            writes: std::sync::atomic::AtomicU32::new(0),
            state: Mutex::new(State::default()),
        }
    }

    /// Where the counts live (`limits.login_state`).
    pub fn with_state(mut self, state: LoginState) -> Self {
        self.shared = state == LoginState::Database;
        self
    }

    /// May `client` try a password of `account` now? Counts nothing. `Ok(Err(wait))` if not;
    /// `Err` when the shared state cannot be read.
    pub async fn check(
        &self,
        db: &MySqlPool,
        account: &str,
        client: &str,
    ) -> Result<Result<(), Duration>, crate::store::Error> {
        if !self.shared {
            return Ok(self.peek(account, client));
        }
        let (now, pair, acct) = login_budgets::read(db, account, client).await?;
        Ok(self.decide(now, pair, acct, false).0)
    }

    /// Count one attempt (see [`Lockout::admit`]), in the shared state when it is shared.
    pub async fn count(
        &self,
        db: &MySqlPool,
        account: &str,
        client: &str,
    ) -> Result<Result<Admitted, Duration>, crate::store::Error> {
        if !self.shared {
            return Ok(self.admit(account, client));
        }
        let verdict = login_budgets::update(db, account, client, |now, pair, acct| {
            self.decide(now, pair, acct, true)
        })
        .await?;
        self.maybe_prune(db).await;
        Ok(verdict.map(|()| Admitted))
    }

    /// The attempt was the right password (see [`Lockout::succeeded`]).
    pub async fn record_success(
        &self,
        db: &MySqlPool,
        attempt: Admitted,
        account: &str,
        client: &str,
    ) -> Result<(), crate::store::Error> {
        if !self.shared {
            self.succeeded(attempt, account, client);
            return Ok(());
        }
        let known_for = KNOWN_FOR.as_millis() as i64;
        login_budgets::update(db, account, client, |now, _, _| {
            let pair = Budget {
                known_ms: now,
                expires_ms: now + known_for,
                ..Budget::default()
            };
            ((), Some(pair), None)
        })
        .await
    }

    async fn maybe_prune(&self, db: &MySqlPool) {
        use std::sync::atomic::Ordering;
        if self.writes.fetch_add(1, Ordering::Relaxed) + 1 < PRUNE_EVERY {
            return;
        }
        self.writes.store(0, Ordering::Relaxed);
        match login_budgets::prune(db, 1000).await {
            Ok(n) if n > 0 => tracing::debug!(rows = n, "expired login budgets pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot prune expired login budgets: {e}"),
        }
    }

    /// The shared state's rules, the same as [`Lockout::meter`]'s, on rows read at `now`
    /// (unix ms of the database's clock): the answer and the rows to write (`None`: as they are).
    pub(crate) fn decide(
        &self,
        now: i64,
        pair: Budget,
        acct: Budget,
        count: bool,
    ) -> (Result<(), Duration>, Option<Budget>, Option<Budget>) {
        let ms = |d: Duration| d.as_millis().min(i64::MAX as u128) as i64;
        let wait = |until: i64| Duration::from_millis((until - now).max(0) as u64);
        let window = ms(self.window);
        let live =
            pair.failures > 0 && now - pair.last_ms < window.max(pair.until_ms - pair.last_ms);
        if live && pair.until_ms > now {
            return (Err(wait(pair.until_ms)), None, None);
        }
        let known = pair.known_ms > 0 && now - pair.known_ms < ms(KNOWN_FOR);
        let mut new_acct = None;
        if !known && self.per_account > 0 {
            let interval = window / i64::from(self.per_account);
            let tat = acct.tat_ms.max(now);
            let after = tat + interval;
            if after - now > window {
                return (Err(wait(after - window)), None, None);
            }
            if count {
                new_acct = Some(Budget {
                    tat_ms: after,
                    expires_ms: after,
                    ..acct
                });
            }
        }
        let mut new_pair = None;
        if count && self.free > 0 {
            let failures = if live { pair.failures } else { 0 } + 1;
            let until = now + ms(self.wait_after(failures));
            new_pair = Some(Budget {
                failures,
                last_ms: now,
                until_ms: until,
                expires_ms: (now + window).max(until).max(pair.known_ms + ms(KNOWN_FOR)),
                ..pair
            });
        }
        (Ok(()), new_pair, new_acct)
    }

    fn key(account: &str, client: &str) -> (String, String) {
        (account.to_owned(), client.to_owned())
    }

    /// The wait after `failures` failures of one pair.
    pub fn wait_after(&self, failures: u32) -> Duration {
        if self.free == 0 || failures < self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free).min(20);
        (FIRST_WAIT * 2u32.pow(doublings)).min(self.max_wait)
    }

    fn is_known(state: &State, key: &(String, String), now: Instant) -> bool {
        state
            .known
            .get(key)
            .is_some_and(|t| now.duration_since(*t) < KNOWN_FOR)
    }

    /// May `client` try a password of `account` now? Counts nothing. `Err(wait)` if not.
    pub fn peek(&self, account: &str, client: &str) -> Result<(), Duration> {
        self.meter(account, client, false).map(|_| ())
    }

    /// Count one attempt of `client` on `account` (as a failure, before it is checked, so that
    /// parallel guesses cannot overrun the allowance); `Err(wait)` if it may not try now.
    pub fn admit(&self, account: &str, client: &str) -> Result<Admitted, Duration> {
        self.meter(account, client, true)
    }

    fn meter(&self, account: &str, client: &str, count: bool) -> Result<Admitted, Duration> {
        let now = Instant::now();
        let key = Self::key(account, client);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let pair = state
            .pairs
            .get(&key)
            .copied()
            .filter(|p| now.duration_since(p.last) < self.window.max(p.until - p.last));
        if let Some(p) = pair
            && p.until > now
        {
            return Err(p.until - now);
        }
        if !Self::is_known(&state, &key, now) {
            let strangers = if count {
                self.strangers.check(account)
            } else {
                self.strangers.peek(account)
            };
            strangers?;
        }
        if count && self.free > 0 {
            let failures = pair.map_or(0, |p| p.failures) + 1;
            let until = now + self.wait_after(failures);
            state.pairs.insert(
                key,
                Pair {
                    failures,
                    last: now,
                    until,
                },
            );
            self.sweep(&mut state, now);
        }
        Ok(Admitted)
    }

    /// The attempt was the right password: its pair's count is cleared and the address is
    /// the owner's from now on.
    pub fn succeeded(&self, _attempt: Admitted, account: &str, client: &str) {
        let now = Instant::now();
        let key = Self::key(account, client);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.pairs.remove(&key);
        state.known.insert(key, now);
        self.sweep(&mut state, now);
    }

    fn sweep(&self, state: &mut State, now: Instant) {
        state.since_sweep += 1;
        let full = state.pairs.len() >= MAX_KEYS || state.known.len() >= MAX_KEYS;
        if state.since_sweep < 1024 && !full {
            return;
        }
        state.since_sweep = 0;
        let window = self.window;
        state
            .pairs
            .retain(|_, p| p.until > now || now.duration_since(p.last) < window);
        state
            .known
            .retain(|_, t| now.duration_since(*t) < KNOWN_FOR);
        for map_len in [state.pairs.len(), state.known.len()] {
            if map_len >= MAX_KEYS {
                tracing::warn!(
                    "login lockout table full ({MAX_KEYS} entries): dropping the oldest half"
                );
            }
        }
        if state.pairs.len() >= MAX_KEYS {
            let mut lasts: Vec<Instant> = state.pairs.values().map(|p| p.last).collect();
            lasts.sort_unstable();
            let cut = lasts[lasts.len() / 2];
            state.pairs.retain(|_, p| p.last > cut);
        }
        if state.known.len() >= MAX_KEYS {
            let mut times: Vec<Instant> = state.known.values().copied().collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            state.known.retain(|_, t| *t > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lockout() -> Lockout {
        Lockout::new(3, 5, Duration::from_secs(900), Duration::from_secs(900))
    }

    #[test]
    fn waits_double_from_a_minute_up_to_the_cap() {
        let l = lockout();
        assert_eq!(l.wait_after(2), Duration::ZERO);
        assert_eq!(l.wait_after(3), Duration::from_secs(60));
        assert_eq!(l.wait_after(4), Duration::from_secs(120));
        assert_eq!(l.wait_after(7), Duration::from_secs(900));
        assert_eq!(l.wait_after(u32::MAX), Duration::from_secs(900));
    }

    #[test]
    fn one_address_failing_does_not_hold_up_another() {
        let l = lockout();
        for _ in 0..3 {
            assert!(l.admit("victim", "attacker").is_ok());
        }
        let wait = l.admit("victim", "attacker").err().unwrap();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        let ok = l.admit("victim", "owner").unwrap();
        l.succeeded(ok, "victim", "owner");
        assert!(l.peek("victim", "attacker").is_err());
    }

    #[test]
    fn rotating_addresses_meet_the_account_ceiling_but_not_the_owner() {
        let l = lockout();
        let ok = l.admit("victim", "owner").unwrap();
        l.succeeded(ok, "victim", "owner");
        // The owner's first login came from a stranger's address: one of the five.
        for i in 0..4 {
            assert!(l.admit("victim", &format!("bot{i}")).is_ok());
        }
        assert!(l.admit("victim", "bot9").is_err());
        assert!(l.admit("victim", "owner").is_ok());
        assert!(l.admit("other", "bot9").is_ok(), "accounts are independent");
    }

    #[test]
    fn a_right_password_clears_the_count() {
        let l = lockout();
        for _ in 0..2 {
            assert!(l.admit("a", "c").is_ok());
        }
        let ok = l.admit("a", "c").unwrap();
        l.succeeded(ok, "a", "c");
        for _ in 0..3 {
            assert!(l.admit("a", "c").is_ok());
        }
        assert!(l.admit("a", "c").is_err());
    }

    /// The shared rules on rows, with the database's clock stepping as the test says: the same
    /// answers as the in-memory tests above.
    struct Rows {
        l: Lockout,
        now: i64,
        rows: HashMap<String, Budget>,
    }

    impl Rows {
        fn new() -> Rows {
            Rows {
                l: lockout().with_state(LoginState::Database),
                now: 1_700_000_000_000,
                rows: HashMap::new(),
            }
        }

        fn run(&mut self, account: &str, client: &str, count: bool) -> Result<(), Duration> {
            let key = |a: &str| format!("{account}/{a}");
            let pair = self.rows.get(&key(client)).copied().unwrap_or_default();
            let acct = self.rows.get(&key("")).copied().unwrap_or_default();
            let (verdict, p, a) = self.l.decide(self.now, pair, acct, count);
            if let Some(p) = p {
                self.rows.insert(key(client), p);
            }
            if let Some(a) = a {
                self.rows.insert(key(""), a);
            }
            verdict
        }

        fn admit(&mut self, account: &str, client: &str) -> Result<(), Duration> {
            self.run(account, client, true)
        }

        fn succeed(&mut self, account: &str, client: &str) {
            let known = KNOWN_FOR.as_millis() as i64;
            self.rows.insert(
                format!("{account}/{client}"),
                Budget {
                    known_ms: self.now,
                    expires_ms: self.now + known,
                    ..Budget::default()
                },
            );
        }
    }

    #[test]
    fn shared_rows_wait_per_pair_and_spare_another_address() {
        let mut r = Rows::new();
        for _ in 0..3 {
            assert!(r.admit("victim", "attacker").is_ok());
        }
        let wait = r.admit("victim", "attacker").unwrap_err();
        assert_eq!(wait, Duration::from_secs(60));
        assert!(r.run("victim", "attacker", false).is_err(), "peek sees it");
        r.admit("victim", "owner").unwrap();
        r.succeed("victim", "owner");
        r.now += 30_000;
        assert_eq!(
            r.admit("victim", "attacker").unwrap_err(),
            Duration::from_secs(30)
        );
        // After the wait, one more failure doubles it.
        r.now += 30_000;
        assert!(r.admit("victim", "attacker").is_ok());
        assert_eq!(
            r.admit("victim", "attacker").unwrap_err(),
            Duration::from_secs(120)
        );
        let row = r.rows["victim/attacker"];
        assert_eq!(row.failures, 4);
        assert!(row.expires_ms >= row.until_ms && row.expires_ms >= row.last_ms + 900_000);
    }

    #[test]
    fn shared_rows_meet_the_account_ceiling_but_not_the_owner() {
        let mut r = Rows::new();
        r.admit("victim", "owner").unwrap();
        r.succeed("victim", "owner");
        for i in 0..4 {
            assert!(r.admit("victim", &format!("bot{i}")).is_ok(), "{i}");
        }
        assert!(r.admit("victim", "bot9").is_err());
        assert!(r.admit("victim", "owner").is_ok());
        assert!(r.admit("other", "bot9").is_ok(), "accounts are independent");
        // The ceiling refills at five per window: one more after a fifth of it.
        r.now += 180_000;
        assert!(r.admit("victim", "bot9").is_ok());
        assert!(r.admit("victim", "bot10").is_err());
    }

    #[test]
    fn a_shared_count_is_forgotten_after_the_window() {
        let mut r = Rows::new();
        for _ in 0..2 {
            assert!(r.admit("a", "c").is_ok());
        }
        r.now += 900_001;
        for _ in 0..3 {
            assert!(r.admit("a", "c").is_ok());
        }
        assert!(r.admit("a", "c").is_err());
    }
}
