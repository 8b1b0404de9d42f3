//! Abuse limits, all bounded in memory: request rates per client IP (`crate::client_ip`) and per user on login,
//! register and apply (governor's keyed GCRA limiters), and the gate that bounds how many argon2 hashes run at once.
//!
//! # Layout
//!
//! - [`KeyedLimit`]: one governor keyed limiter with a cap on its keys.
//! - [`RateLimits`]: the configured limiters (`[rate_limit]`), `None` where switched off.
//! - [`HashGate`]: a semaphore sized to the cores in front of every argon2 run.

use std::{
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    state::keyed::DefaultKeyedStateStore,
};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::{configuration::RateLimitSettings, error::ApiError};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// A keyed rate limit whose state never holds more than `max_keys` keys.
#[derive(Debug)]
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    quota: Quota,
    max_keys: usize,
    clock: DefaultClock,
    // Replaced wholesale when even `retain_recent` cannot bring it under the cap (a flood of
    // distinct keys); governor's store has no `clear`.
    limiter: Mutex<Arc<Keyed<K>>>,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `per_minute` requests per key per minute, as a burst of that size refilled evenly.
    pub fn per_minute(per_minute: NonZeroU32, max_keys: usize) -> Self {
        let quota = Quota::per_minute(per_minute);
        Self {
            quota,
            max_keys,
            clock: DefaultClock::default(),
            limiter: Mutex::new(Arc::new(Keyed::keyed(quota))),
        }
    }

    fn current(&self) -> Arc<Keyed<K>> {
        let mut slot = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        if slot.len() >= self.max_keys {
            // Keys whose state is back to fresh carry no information: drop them first.
            slot.retain_recent();
            slot.shrink_to_fit();
            if slot.len() >= self.max_keys {
                tracing::warn!(keys = slot.len(), "rate-limit state full of recent keys; starting afresh");
                *slot = Arc::new(Keyed::keyed(self.quota));
            }
        }
        Arc::clone(&slot)
    }

    /// # Errors
    ///
    /// 429 `rate_limited` with the seconds until the next request would pass.
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        self.current().check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        })
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.limiter.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The client key of a peer address: IPv4 as is, IPv6 by its /64 (one host holds a whole
/// /64, so per-address keys would let it mint millions).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
        v4 => v4,
    }
}

/// Counts a request of this client against `limit`: the TCP peer, or what a trusted proxy
/// forwards for it ([`crate::client_ip::client_addr`]); a forged header from anyone else
/// changes nothing.
pub(crate) fn per_ip(
    req: &actix_web::HttpRequest,
    trusted: &crate::client_ip::TrustedProxies,
    limit: Option<&KeyedLimit<IpAddr>>,
) -> Result<(), ApiError> {
    match crate::client_ip::client_addr(req, trusted) {
        Some(client) => RateLimits::check(limit, &client_key(client)),
        None => Ok(()),
    }
}

/// The `[rate_limit]` limiters; each is `None` when switched off (0, or `enabled = false`).
#[derive(Debug)]
pub struct RateLimits {
    /// `POST /auth/login` per client IP.
    pub login_per_ip: Option<KeyedLimit<IpAddr>>,
    /// `POST /users` per client IP.
    pub register_per_ip: Option<KeyedLimit<IpAddr>>,
    /// `POST /events/{id}/applications` per client IP.
    pub apply_per_ip: Option<KeyedLimit<IpAddr>>,
    /// `POST /events/{id}/applications` per user.
    pub apply_per_user: Option<KeyedLimit<i64>>,
}

impl RateLimits {
    /// From `[rate_limit]`.
    pub fn new(cfg: &RateLimitSettings) -> Self {
        fn limit<K: Hash + Eq + Clone>(
            enabled: bool,
            per_minute: u32,
            max_keys: usize,
        ) -> Option<KeyedLimit<K>> {
            let per_minute = NonZeroU32::new(per_minute).filter(|_| enabled)?;
            Some(KeyedLimit::per_minute(per_minute, max_keys.max(1)))
        }
        Self {
            login_per_ip: limit(cfg.enabled, cfg.login_per_ip_per_minute, cfg.max_keys),
            register_per_ip: limit(cfg.enabled, cfg.register_per_ip_per_minute, cfg.max_keys),
            apply_per_ip: limit(cfg.enabled, cfg.apply_per_ip_per_minute, cfg.max_keys),
            apply_per_user: limit(cfg.enabled, cfg.apply_per_user_per_minute, cfg.max_keys),
        }
    }

    /// Checks `limit` (when on) for `key`.
    ///
    /// # Errors
    ///
    /// 429 `rate_limited`.
    pub fn check<K: Hash + Eq + Clone>(limit: Option<&KeyedLimit<K>>, key: &K) -> Result<(), ApiError> {
        limit.map_or(Ok(()), |l| l.check(key))
    }
}

/// Runs argon2 on a few threads of its own, `slots` of them (one per core by default), never
/// more at once: each run holds `auth.argon2.memory_kib`. Not the shared blocking pool: its
/// hundreds of threads each keep a malloc arena, and each arena keeps the last 19 MiB it
/// freed — 200 failed logins grew the process past 800 MB that way. Callers wait up to
/// `max_wait` for a slot, then get 503 `overloaded`.
#[derive(Debug)]
pub struct HashGate {
    slots: Semaphore,
    max_wait: Duration,
    // Dropping the gate drops the sender, which ends its threads.
    jobs: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

impl HashGate {
    /// `slots` hashing threads (0 = one per core).
    pub fn new(slots: usize, max_wait: Duration) -> Self {
        let slots =
            if slots == 0 { std::thread::available_parallelism().map_or(1, usize::from) } else { slots };
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..slots {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                loop {
                    let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(job) = job else { return };
                    job();
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a hashing thread");
            }
        }
        Self { slots: Semaphore::new(slots), max_wait, jobs }
    }

    /// Runs `work` on a hashing thread once a slot is free.
    ///
    /// # Errors
    ///
    /// 503 `overloaded` when no slot freed within the wait; 500 if the work panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _slot: SemaphorePermit<'_> = match tokio::time::timeout(self.max_wait, self.slots.acquire()).await
        {
            Ok(Ok(permit)) => permit,
            _ => return Err(ApiError::Overloaded),
        };
        let (done, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
        });
        self.jobs
            .send(job)
            .map_err(|_| ApiError::internal(anyhow::anyhow!("the hashing threads stopped")))?;
        match answer.await {
            Ok(Ok(value)) => Ok(value),
            _ => Err(ApiError::internal(anyhow::anyhow!("a password hash panicked"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyed_limit_never_holds_more_than_its_cap() {
        let limit = KeyedLimit::per_minute(NonZeroU32::MIN, 100);
        for key in 0..10_000_u32 {
            assert!(limit.check(&key).is_ok());
            assert!(limit.len() <= 100);
            if key % 100 == 50 {
                assert!(limit.check(&key).is_err(), "a recent key is still limited");
            }
        }
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        assert_eq!(client_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
