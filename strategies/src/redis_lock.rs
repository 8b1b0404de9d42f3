//! `redis-lock`: the team's distributed lock, done carefully.
//!
//! - Acquire: one Lua script does `SET lock <holder> NX PX ttl` and, only when that
//!   succeeds, `INCR fence` — so fencing tokens increase in acquisition order.
//! - Queue: requests of one process for one event queue in-process first (FIFO), so only
//!   the head polls Redis and the next starts as soon as the head is done; the head asks the
//!   sold-out shortcut before it takes the lock, so losers never queue on Redis at all.
//! - Wait: a failed acquire sleeps with full-jitter exponential backoff (no hammering) and
//!   gives up after `max_wait_ms` with [`StrategyError::LockTimeout`] (HTTP 503).
//! - Fencing: the critical section's first statement writes the token into the stock row
//!   only if it is newer than the one stored there; a holder whose lease expired during a
//!   pause finds a newer token and writes nothing.
//! - Release: after the transaction commits, a Lua compare-and-delete frees the lock only
//!   if it still holds this holder's value, so a late holder never frees someone else's.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use deadpool_redis::redis::Script;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use crate::{
    ApplyOutcome, ApplyRequest, BuildError, ConcurrencyStrategy, StrategyError, StrategyName,
    backoff::Backoff,
    event_locks::EventLocks,
    probes::{StrategyProbes, probes},
    redis_pool::{Pool, unavailable},
    registry::Parts,
    section::{self, Attempt, Gate},
    sold_out::SoldOutBook,
};

const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Raises the fence counter to at least ARGV[1] (after Redis lost its data, say).
const RAISE_FENCE: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1";

/// `[concurrency.redis_lock]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisLockConfig {
    /// Lease length; a holder paused longer than this loses the lock (and is fenced).
    pub ttl_ms: u64,
    /// Longest a request waits for the lock before answering 503.
    pub max_wait_ms: u64,
    /// First backoff between acquire attempts; doubles (full jitter) up to the cap.
    pub base_backoff_ms: u64,
    /// Backoff cap.
    pub max_backoff_ms: u64,
}

impl Default for RedisLockConfig {
    fn default() -> Self {
        Self { ttl_ms: 3_000, max_wait_ms: 10_000, base_backoff_ms: 1, max_backoff_ms: 32 }
    }
}

/// A held lock: who holds it and the fencing token it was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The event locked.
    pub event_id: i64,
    /// Unique holder value stored in the lock key.
    pub holder: String,
    /// Fencing token, increasing in acquisition order.
    pub token: i64,
}

/// The `redis-lock` strategy; public so tests can hold a lease across a simulated pause.
#[derive(Debug)]
pub struct RedisLock {
    db: DatabaseConnection,
    redis: Pool,
    prefix: String,
    config: RedisLockConfig,
    /// Requests of this process queue here first: only the head of each event's queue
    /// polls Redis, and the next one starts the moment the head is done.
    local: EventLocks,
    /// The sold-out shortcut, asked again at the head of the queue.
    sold_out: Option<Arc<SoldOutBook>>,
    /// `redis-lock`'s, or `kafka-redis-lock`'s when its consumers hold the lock.
    probes: &'static StrategyProbes,
}

/// The registry's constructor (the lock asks the sold-out book at the head of its queue).
pub(crate) async fn build(parts: &Parts<'_>) -> Result<Arc<dyn ConcurrencyStrategy>, BuildError> {
    let lock = RedisLock::new(
        parts.db.clone(),
        parts.redis()?,
        parts.redis_prefix.clone(),
        parts.config.redis_lock.clone(),
    );
    Ok(Arc::new(lock.with_sold_out(parts.book.clone())))
}

impl RedisLock {
    /// A strategy using keys under `prefix` (one prefix per database).
    pub fn new(db: DatabaseConnection, redis: Pool, prefix: String, config: RedisLockConfig) -> Self {
        Self {
            db,
            redis,
            prefix,
            config,
            local: EventLocks::default(),
            sold_out: None,
            probes: probes(StrategyName::RedisLock),
        }
    }

    /// Counts its waits, timeouts and sections under `name` (the Kafka strategy using it).
    pub(crate) fn measured_as(mut self, name: StrategyName) -> Self {
        self.probes = probes(name);
        self
    }

    /// Asks `book` at the head of the local queue, before taking the lock.
    pub(crate) fn with_sold_out(mut self, book: Option<Arc<SoldOutBook>>) -> Self {
        self.sold_out = book;
        self
    }

    fn keys(&self, event_id: i64) -> (String, String) {
        (format!("{}:lock:{event_id}", self.prefix), format!("{}:fence:{event_id}", self.prefix))
    }

    /// Tries once to take the lock.
    ///
    /// # Errors
    ///
    /// [`StrategyError::Unavailable`] when Redis fails.
    pub async fn try_acquire(&self, event_id: i64) -> Result<Option<Lease>, StrategyError> {
        let (lock, fence) = self.keys(event_id);
        let holder = uuid::Uuid::new_v4().to_string();
        let mut conn = self.redis.get().await.map_err(unavailable)?;
        let token: i64 = Script::new(ACQUIRE)
            .key(&lock)
            .key(&fence)
            .arg(&holder)
            .arg(self.config.ttl_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok((token > 0).then_some(Lease { event_id, holder, token }))
    }

    /// Takes the lock, waiting with jittered exponential backoff up to `max_wait_ms`.
    ///
    /// # Errors
    ///
    /// [`StrategyError::LockTimeout`] after the bounded wait; `Unavailable` on Redis failure.
    pub async fn acquire(&self, event_id: i64) -> Result<Lease, StrategyError> {
        let started = Instant::now();
        let max_wait = Duration::from_millis(self.config.max_wait_ms);
        let backoff = Backoff::from_millis(self.config.base_backoff_ms, self.config.max_backoff_ms);
        let mut attempt: u32 = 0;
        loop {
            if let Some(lease) = self.try_acquire(event_id).await? {
                return Ok(lease);
            }
            if started.elapsed() >= max_wait {
                self.probes.lock_timeouts.increment(1);
                return Err(StrategyError::LockTimeout { waited_ms: self.config.max_wait_ms });
            }
            backoff.sleep(attempt).await;
            attempt += 1;
        }
    }

    /// Frees the lock if `lease` still holds it; returns whether it did.
    ///
    /// # Errors
    ///
    /// `Unavailable` on Redis failure (the lease then simply expires).
    pub async fn release(&self, lease: &Lease) -> Result<bool, StrategyError> {
        let (lock, _) = self.keys(lease.event_id);
        let mut conn = self.redis.get().await.map_err(unavailable)?;
        let freed: i64 = Script::new(RELEASE).key(&lock).arg(&lease.holder).invoke_async(&mut conn).await?;
        Ok(freed == 1)
    }

    /// Runs the fenced critical section under `lease`. `Ok(None)` means the lease was
    /// fenced out (a newer holder wrote first) and nothing was written.
    ///
    /// # Errors
    ///
    /// Database failures.
    pub async fn critical_section(
        &self,
        lease: &Lease,
        request: &ApplyRequest,
    ) -> Result<Option<ApplyOutcome>, StrategyError> {
        let gate = Gate::Fenced(lease.token);
        match section::run_retrying(&self.db, self.sold_out.as_deref(), request, gate, self.probes).await? {
            Attempt::Done(outcome) => Ok(Some(outcome)),
            Attempt::Fenced | Attempt::Conflict => Ok(None),
        }
    }

    /// After a fenced-out section while still holding the lock, the fence counter must be
    /// behind the database (Redis restarted without its data): raise it past the stored
    /// token so the next acquisition can write.
    pub(crate) async fn repair_fence(&self, lease: &Lease) -> Result<(), StrategyError> {
        let (lock, fence) = self.keys(lease.event_id);
        let mut conn = self.redis.get().await.map_err(unavailable)?;
        let still_ours: Option<String> =
            deadpool_redis::redis::cmd("GET").arg(&lock).query_async(&mut conn).await?;
        if still_ours.as_deref() == Some(lease.holder.as_str()) {
            let stored = crate::schema::fence_token(&self.db, lease.event_id).await?.unwrap_or(0);
            let _: i64 = Script::new(RAISE_FENCE).key(&fence).arg(stored).invoke_async(&mut conn).await?;
            tracing::warn!(
                event_id = lease.event_id,
                stored,
                "fence counter was behind the database; raised"
            );
        }
        Ok(())
    }
}

impl RedisLock {
    /// The one lease loop (the `redis-lock` strategy and the `kafka-redis-lock` consumers
    /// share it): take a lease on every event (in event order, so two holders of
    /// overlapping sets never wait on each other in a cycle), run `work` with their fencing
    /// tokens, release, and run again when `work` reports it was fenced out (`Ok(None)`:
    /// a newer holder already wrote, so nothing was written). A fenced-out round first
    /// raises the fence counter past the database's (Redis came back empty), so the next
    /// round's tokens are newer. Leases are released after `work` ended, whatever happened
    /// (a failed release only means the lease expires after `ttl_ms`). Bounded: after
    /// [`LEASE_ROUNDS`] fenced-out rounds the answer is [`StrategyError::Contention`].
    ///
    /// # Errors
    ///
    /// A lock that could not be taken in time, Redis or database failures, or `work`'s own.
    ///
    /// The time from `queued` (when the caller started waiting, local queue included) to
    /// holding every lease is recorded as lock wait, once per round.
    pub(crate) async fn under_leases<T, Fut>(
        &self,
        events: &BTreeSet<i64>,
        queued: Instant,
        mut work: impl FnMut(BTreeMap<i64, i64>) -> Fut,
    ) -> Result<T, StrategyError>
    where
        Fut: std::future::Future<Output = Result<Option<T>, StrategyError>>,
    {
        let mut waiting_since = queued;
        for round in 0..LEASE_ROUNDS {
            if round > 0 {
                self.probes.fenced_retries.increment(1);
                waiting_since = Instant::now();
            }
            let mut leases = Vec::with_capacity(events.len());
            for &event in events {
                match self.acquire(event).await {
                    Ok(lease) => leases.push(lease),
                    Err(e) => {
                        self.release_all(&leases).await;
                        return Err(e);
                    }
                }
            }
            self.probes.waited(waiting_since.elapsed());
            let tokens = leases.iter().map(|l| (l.event_id, l.token)).collect();
            let result = work(tokens).await;
            let mut repaired = Ok(());
            if let Ok(None) = result {
                for lease in &leases {
                    repaired = repaired.and(self.repair_fence(lease).await);
                }
            }
            self.release_all(&leases).await;
            repaired?;
            if let Some(value) = result? {
                return Ok(value);
            }
        }
        Err(StrategyError::Contention { attempts: LEASE_ROUNDS })
    }

    /// This process's turns for `events` (in event order), so that local contenders for one
    /// event queue in-process and are woken on release, instead of polling Redis against
    /// each other; only cross-process contention is left to the lock's backoff.
    pub(crate) async fn local_turns(&self, events: &BTreeSet<i64>) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let mut turns = Vec::with_capacity(events.len());
        for &event in events {
            turns.push(self.local.lock(event).await);
        }
        turns
    }

    async fn release_all(&self, leases: &[Lease]) {
        for lease in leases {
            if let Err(e) = self.release(lease).await {
                tracing::warn!(error = %e, event_id = lease.event_id, "lock release failed; the lease will expire");
            }
        }
    }
}

/// Fenced-out rounds before [`RedisLock::under_leases`] gives up; each round takes newer
/// tokens, so more than one or two means something keeps resetting Redis.
const LEASE_ROUNDS: u32 = 8;

#[async_trait]
impl ConcurrencyStrategy for RedisLock {
    fn name(&self) -> StrategyName {
        StrategyName::RedisLock
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        let queued = Instant::now();
        let _turn = self.local.lock(request.event_id).await;
        if let Some(outcome) = self.sold_out.as_deref().and_then(|b| b.answer_from_memory(request)) {
            return Ok(outcome);
        }
        let event = request.event_id;
        self.under_leases(&BTreeSet::from([event]), queued, |tokens| async move {
            let gate = Gate::Fenced(tokens.get(&event).copied().unwrap_or(0));
            match section::run_retrying(&self.db, self.sold_out.as_deref(), request, gate, self.probes)
                .await?
            {
                Attempt::Done(outcome) => Ok(Some(outcome)),
                Attempt::Fenced | Attempt::Conflict => Ok(None),
            }
        })
        .await
    }
}
