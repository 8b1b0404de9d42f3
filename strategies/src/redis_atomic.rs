//! `redis-atomic`: what flash-sale systems do — Redis is the gate, the database stays the
//! source of truth.
//!
//! One Lua script checks "already applied", "sold out" and takes a copy atomically in
//! Redis (Redis runs a script alone, so no lock is needed); only the winners then write to
//! the database (the same conditional decrement as `db-atomic`, plus the application row).
//! Losers never touch the database. If the database write fails, the copy is given back in
//! Redis. Counters are built from the database when an event is created, at start-up, and
//! lazily whenever the script finds them missing (e.g. Redis restarted without its data);
//! building only ever happens when the keys are absent, so instances never overwrite a
//! live counter.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_redis::redis::Script;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::{
    ApplyOutcome, ApplyRequest, Backend, BuildError, ConcurrencyStrategy, StrategyError, StrategyName,
    probes::{StrategyProbes, probes},
    redis_pool::{Pool, unavailable},
    registry::Parts,
    schema,
    section::{self, Gate},
};

/// KEYS: stock, users. ARGV: user. Returns the copies left after taking one (≥ 0), or
/// -1 already applied, -2 sold out, -3 counters not loaded.
const RESERVE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -3 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return -1 end
local left = tonumber(redis.call('GET', KEYS[1]))
if left <= 0 then return -2 end
redis.call('SADD', KEYS[2], ARGV[1])
return redis.call('DECR', KEYS[1])";

/// KEYS: stock, users. ARGV: user. Gives a reserved copy back.
const GIVE_BACK: &str = r"
if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then redis.call('INCR', KEYS[1]) end
return 1";

/// KEYS: stock, users. ARGV: remaining, then the winners' user ids. Loads only if absent.
const LOAD: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
for i = 2, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
return 1";

/// The `redis-atomic` strategy.
#[derive(Debug)]
pub(crate) struct RedisAtomic {
    db: DatabaseConnection,
    redis: Pool,
    prefix: String,
    probes: &'static StrategyProbes,
}

/// The registry's constructor.
pub(crate) async fn build(parts: &Parts<'_>) -> Result<Arc<dyn ConcurrencyStrategy>, BuildError> {
    Ok(Arc::new(RedisAtomic {
        db: parts.db.clone(),
        redis: parts.redis()?,
        prefix: parts.redis_prefix.clone(),
        probes: probes(StrategyName::RedisAtomic),
    }))
}

impl RedisAtomic {
    fn keys(&self, event_id: i64) -> [String; 2] {
        [format!("{}:ra:{event_id}:stock", self.prefix), format!("{}:ra:{event_id}:users", self.prefix)]
    }

    async fn load(&self, event_id: i64) -> Result<(), StrategyError> {
        let Some(remaining) = schema::remaining(&self.db, event_id).await? else {
            return Err(StrategyError::UnknownEvent(event_id));
        };
        let winners = schema::winners(&self.db, event_id).await?;
        let [stock, users] = self.keys(event_id);
        let script = Script::new(LOAD);
        let mut invocation = script.prepare_invoke();
        invocation.key(&stock).key(&users).arg(remaining);
        for w in &winners {
            invocation.arg(w.user_id);
        }
        let mut conn = self.redis.get().await.map_err(unavailable)?;
        let _: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(())
    }

    async fn reserve(&self, request: &ApplyRequest) -> Result<i64, StrategyError> {
        let [stock, users] = self.keys(request.event_id);
        let mut conn = self.redis.get().await.map_err(unavailable)?;
        Ok(Script::new(RESERVE).key(&stock).key(&users).arg(request.user_id).invoke_async(&mut conn).await?)
    }

    async fn give_back(&self, request: &ApplyRequest) {
        let [stock, users] = self.keys(request.event_id);
        let result: Result<i64, StrategyError> = async {
            let mut conn = self.redis.get().await.map_err(unavailable)?;
            Ok(Script::new(GIVE_BACK)
                .key(&stock)
                .key(&users)
                .arg(request.user_id)
                .invoke_async(&mut conn)
                .await?)
        }
        .await;
        if let Err(e) = result {
            // The copy stays reserved in Redis but was never written: the database is still
            // right, and Redis under-sells by one until its counters are rebuilt.
            tracing::error!(error = %e, event_id = request.event_id, "could not give a copy back to Redis");
        }
    }
}

#[async_trait]
impl ConcurrencyStrategy for RedisAtomic {
    fn name(&self) -> StrategyName {
        StrategyName::RedisAtomic
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        let mut reserved = self.reserve(request).await?;
        if reserved == -3 {
            self.load(request.event_id).await?;
            reserved = self.reserve(request).await?;
        }
        match reserved {
            -1 => return Ok(ApplyOutcome::AlreadyApplied),
            -2 => return Ok(ApplyOutcome::SoldOut),
            n if n < 0 => {
                return Err(StrategyError::Unavailable(
                    Backend::Redis,
                    format!("redis counters missing ({n})"),
                ));
            }
            _ => {}
        }
        // A winner in Redis: record it. Anything but a win gives the copy back.
        let written = section::run_to_outcome(&self.db, None, request, Gate::Atomic, self.probes).await;
        if !matches!(written, Ok(ApplyOutcome::Won { .. })) {
            self.give_back(request).await;
        }
        written
    }

    async fn event_created(&self, event_id: i64) -> Result<(), StrategyError> {
        self.load(event_id).await
    }

    async fn prepare(&self) -> Result<(), StrategyError> {
        // Rebuild counters of events that still have copies (load is a no-op where Redis
        // already has them). Bounded: events with stock left are few at any time.
        let backend = self.db.get_database_backend();
        let sql = "SELECT event_id FROM event_stock WHERE remaining > 0 ORDER BY event_id DESC LIMIT 1000";
        let rows = self.db.query_all_raw(Statement::from_string(backend, sql)).await?;
        for row in rows {
            let event_id: i64 = row.try_get_by_index(0).map_err(StrategyError::from)?;
            self.load(event_id).await?;
        }
        Ok(())
    }
}
