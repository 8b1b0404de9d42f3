//! The login throttle: slows a guesser without handing a stranger the power to keep a known
//! account out.
//!
//! Two budgets, both counted *before* the password is checked (concurrent guesses cannot all
//! slip under them), in fixed windows of `auth.login_window_secs`:
//!
//! - per (account, client address): `auth.login_max_failures` attempts, then 429 for that
//!   address only — one address guessing at one account;
//! - per account: [`ACCOUNT_FACTOR`] × that many attempts from addresses the account has
//!   never signed in from, then 429 for every such address — a guesser spread over many
//!   addresses.
//!
//! An address that signed in to an account with the right password within [`TRUST_FOR`] is
//! *trusted* for it: the per-account budget does not apply to it (only its own per-pair
//! budget does). So a stranger exhausting the account's budget stops every stranger — the
//! distributed guesser included, even with the right password — but not the owner at an
//! address they used before. The cost: an owner at a *new* address waits out the window
//! while the account is under attack (docs/security.md).
//!
//! Keys are keyed hashes (8 bytes whatever the email's length); each map holds at most
//! `rate_limit.max_keys` of them. The trust map, when full of live entries, takes no new
//! ones rather than dropping old ones: filling it must never evict the owner's trust.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use crate::error::ApiError;

/// The per-account budget is this many per-address budgets.
pub const ACCOUNT_FACTOR: u32 = 10;
/// How long a successful sign-in trusts its (account, address).
pub const TRUST_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// Attempts per key in a fixed window, at most `max_keys` keys.
#[derive(Debug)]
struct Counts {
    max_keys: usize,
    map: HashMap<u64, (u32, Instant)>,
}

impl Counts {
    /// Counts one attempt of `key`, or the seconds left in its window when `max` were counted.
    fn count(&mut self, key: u64, max: u32, window: Duration) -> Result<(), u64> {
        self.room_for(key, window);
        let entry = self.map.entry(key).or_insert((0, Instant::now()));
        let elapsed = entry.1.elapsed();
        if elapsed >= window {
            *entry = (0, Instant::now());
        } else if entry.0 >= max {
            return Err((window - elapsed).as_secs().max(1));
        }
        entry.0 += 1;
        Ok(())
    }

    /// The seconds left when `key` is at `max` now (counts nothing).
    fn exhausted(&self, key: u64, max: u32, window: Duration) -> Option<u64> {
        let (count, since) = self.map.get(&key)?;
        let elapsed = since.elapsed();
        (elapsed < window && *count >= max).then(|| (window - elapsed).as_secs().max(1))
    }

    fn room_for(&mut self, key: u64, window: Duration) {
        if self.map.len() >= self.max_keys && !self.map.contains_key(&key) {
            self.map.retain(|_, (_, since)| since.elapsed() < window);
            if self.map.len() >= self.max_keys {
                tracing::warn!(keys = self.map.len(), "login throttle full; starting afresh");
                self.map.clear();
            }
            self.map.shrink_to_fit();
        }
    }
}

#[derive(Debug)]
struct State {
    pairs: Counts,
    accounts: Counts,
    trusted: HashMap<u64, Instant>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct LoginThrottle {
    per_pair: u32,
    per_account: u32,
    window: Duration,
    max_keys: usize,
    hasher: RandomState,
    // std Mutex: held for map lookups only, never across an await.
    state: Mutex<State>,
}

impl LoginThrottle {
    /// `per_pair` attempts per (account, address) per `window`; `max_keys` per map.
    pub fn new(per_pair: u32, window: Duration, max_keys: usize) -> Self {
        let max_keys = max_keys.max(1);
        let counts = || Counts { max_keys, map: HashMap::new() };
        Self {
            per_pair,
            per_account: per_pair.saturating_mul(ACCOUNT_FACTOR),
            window,
            max_keys,
            hasher: RandomState::new(),
            state: Mutex::new(State { pairs: counts(), accounts: counts(), trusted: HashMap::new() }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn keys(&self, email: &str, client: IpAddr) -> (u64, u64) {
        (self.hasher.hash_one((email, client)), self.hasher.hash_one(email))
    }

    /// Counts an attempt for `email` from `client` (its `limits::client_key`).
    ///
    /// # Errors
    ///
    /// 429 with the seconds left in the window when this address used its budget for this
    /// account, or when the account's budget is used and this address is not trusted.
    pub fn attempt(&self, email: &str, client: IpAddr) -> Result<(), ApiError> {
        let (pair, account) = self.keys(email, client);
        let mut state = self.state();
        let trusted = state.trusted.get(&pair).is_some_and(|at| at.elapsed() < TRUST_FOR);
        if !trusted && let Some(wait) = state.accounts.exhausted(account, self.per_account, self.window) {
            return Err(ApiError::RateLimited(wait));
        }
        state.pairs.count(pair, self.per_pair, self.window).map_err(ApiError::RateLimited)?;
        if !trusted {
            // Cannot refuse: `exhausted` said there is room, under the same lock.
            let _ = state.accounts.count(account, self.per_account, self.window);
        }
        Ok(())
    }

    /// After the right password: this address's attempts are forgotten and it is trusted
    /// for the account. The account's budget is left as it is (a guesser elsewhere keeps
    /// the count it earned).
    pub fn succeeded(&self, email: &str, client: IpAddr) {
        let (pair, _) = self.keys(email, client);
        let mut state = self.state();
        state.pairs.map.remove(&pair);
        if state.trusted.len() >= self.max_keys && !state.trusted.contains_key(&pair) {
            state.trusted.retain(|_, at| at.elapsed() < TRUST_FOR);
            if state.trusted.len() >= self.max_keys {
                return;
            }
        }
        state.trusted.insert(pair, Instant::now());
    }

    /// Keys held now, over the three maps.
    pub fn len(&self) -> usize {
        let state = self.state();
        state.pairs.map.len() + state.accounts.map.len() + state.trusted.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn one_address_gets_its_budget_and_others_are_not_affected() {
        let t = LoginThrottle::new(3, MINUTE, 100);
        for _ in 0..3 {
            t.attempt("a@x.kr", ip(1)).expect("within budget");
        }
        assert!(t.attempt("a@x.kr", ip(1)).is_err());
        t.attempt("a@x.kr", ip(2)).expect("another address has its own budget");
        t.attempt("b@x.kr", ip(1)).expect("another account has its own budget");
    }

    #[test]
    fn strangers_exhaust_the_account_but_a_trusted_address_still_gets_through() {
        let t = LoginThrottle::new(2, MINUTE, 100);
        t.attempt("admin@x.kr", ip(200)).expect("the owner");
        t.succeeded("admin@x.kr", ip(200));
        let mut refused = 0;
        for last in 1..=40 {
            for _ in 0..2 {
                refused += usize::from(t.attempt("admin@x.kr", ip(last)).is_err());
            }
        }
        // The account's budget is 10 × 2; the owner's first sign-in (not yet trusted) used one.
        assert_eq!(refused, 80 - 19);
        assert!(t.attempt("admin@x.kr", ip(41)).is_err(), "a new stranger is refused");
        t.attempt("admin@x.kr", ip(200)).expect("the owner's address is trusted");
    }

    #[test]
    fn the_throttle_never_holds_more_than_its_cap_per_map() {
        let t = LoginThrottle::new(3, MINUTE, 50);
        for i in 0..5_000_u32 {
            let email = format!("{i}@example.com");
            t.attempt(&email, ip(1)).expect("first attempt");
            t.succeeded(&email, ip(1));
            assert!(t.len() <= 150);
        }
    }
}
