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
//! The state is in memory, like the other rate limits: counting durably would cost a database
//! write per guess (itself a way to load the box), and a restart forgets only counts, which
//! helps the owner as much as an attacker. Both maps are bounded ([`MAX_KEYS`]) and swept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::api::limit::Limiter;

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
    state: Mutex<State>,
}

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
            state: Mutex::new(State::default()),
        }
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
}
