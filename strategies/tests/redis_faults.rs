//! Fault behaviour of the Redis strategies against the real MariaDB and Redis: a holder
//! paused past its lease is fenced out, the lock wait is bounded, and `redis-atomic` gives a
//! copy back when the database write fails and rebuilds lost counters from the database.
//! No test sleeps for a fixed time to make something happen: each waits on a condition,
//! with a bound.

use std::time::{Duration, Instant};

use deadpool_redis::redis::AsyncCommands;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use strategies::redis_pool::Pool;
use strategies::{
    ApplyOutcome, ApplyRequest, Backends, ConcurrencyConfig, StrategyError, StrategyName, build_strategy,
    contract::{fresh_event, fresh_mariadb, test_redis, unique_prefix},
    redis_lock::{RedisLock, RedisLockConfig},
    schema,
};

fn request(event_id: i64, user_id: i64) -> ApplyRequest {
    ApplyRequest { event_id, user_id, request_id: uuid::Uuid::new_v4().to_string() }
}

async fn backends(what: &str) -> Option<(DatabaseConnection, Pool)> {
    let db = fresh_mariadb(what, 8).await?;
    let redis = test_redis().await?;
    Some((db, redis))
}

fn short_lease_lock(db: &DatabaseConnection, redis: &Pool, max_wait_ms: u64) -> RedisLock {
    let config = RedisLockConfig { ttl_ms: 150, max_wait_ms, ..RedisLockConfig::default() };
    RedisLock::new(db.clone(), redis.clone(), unique_prefix("fencing"), config)
}

/// Polls until the (expired) lease of another holder lets us in; bounded.
async fn acquire_after_expiry(lock: &RedisLock, event: i64) -> strategies::redis_lock::Lease {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(lease) = lock.try_acquire(event).await.expect("redis") {
            return lease;
        }
        assert!(Instant::now() < deadline, "the first lease never expired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_holder_paused_past_its_lease_is_fenced_out_and_writes_nothing() {
    let Some((db, redis)) = backends("fencing").await else { return };
    let lock = short_lease_lock(&db, &redis, 5_000);
    let event = fresh_event(&db, 1).await.unwrap();

    let paused = lock.acquire(event).await.unwrap();
    // …the holder "pauses" (GC, slow query) while its lease runs out and another takes over
    let current = acquire_after_expiry(&lock, event).await;
    assert!(current.token > paused.token, "tokens increase in acquisition order");
    let won = lock.critical_section(&current, &request(event, 2)).await.unwrap();
    assert!(matches!(won, Some(ApplyOutcome::Won { .. })));
    assert!(lock.release(&current).await.unwrap());

    // …then wakes up and tries to write with its stale token
    let stale = lock.critical_section(&paused, &request(event, 1)).await.unwrap();
    assert_eq!(stale, None, "the fencing check must reject the stale holder");
    assert!(!lock.release(&paused).await.unwrap(), "a stale holder must not free anyone's lock");

    let winners = schema::winners(&db, event).await.unwrap();
    assert_eq!(winners.iter().map(|w| w.user_id).collect::<Vec<_>>(), vec![2]);
    assert_eq!(schema::remaining(&db, event).await.unwrap(), Some(0));
}

#[tokio::test]
async fn a_stale_holder_that_writes_first_is_serialised_and_cannot_over_allocate() {
    let Some((db, redis)) = backends("fencing").await else { return };
    let lock = short_lease_lock(&db, &redis, 5_000);
    let event = fresh_event(&db, 1).await.unwrap();
    let paused = lock.acquire(event).await.unwrap();
    let current = acquire_after_expiry(&lock, event).await;
    // The stale holder reaches the database before the current one: its token is still the
    // newest written, so it may write — and the current holder then sees the stock it left.
    let first = lock.critical_section(&paused, &request(event, 1)).await.unwrap();
    let second = lock.critical_section(&current, &request(event, 2)).await.unwrap();
    assert!(matches!(first, Some(ApplyOutcome::Won { .. })));
    assert_eq!(second, Some(ApplyOutcome::SoldOut));
    // and once the newer token has written, the older one is locked out for good
    assert_eq!(lock.critical_section(&paused, &request(event, 3)).await.unwrap(), None);
    assert_eq!(schema::winners(&db, event).await.unwrap().len(), 1);
}

#[tokio::test]
async fn waiting_for_a_held_lock_is_bounded_and_ends_in_lock_timeout() {
    let Some((db, redis)) = backends("lockwait").await else { return };
    let holder = RedisLock::new(
        db.clone(),
        redis.clone(),
        unique_prefix("lockwait"),
        RedisLockConfig { ttl_ms: 60_000, max_wait_ms: 300, ..RedisLockConfig::default() },
    );
    let event = fresh_event(&db, 1).await.unwrap();
    let _held = holder.acquire(event).await.unwrap();
    let started = Instant::now();
    let waited = holder.acquire(event).await;
    assert!(matches!(waited, Err(StrategyError::LockTimeout { waited_ms: 300 })), "{waited:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "the wait must be bounded");
}

async fn redis_atomic(
    db: &DatabaseConnection,
    redis: &Pool,
    prefix: &str,
) -> std::sync::Arc<dyn strategies::ConcurrencyStrategy> {
    let config = ConcurrencyConfig { strategy: StrategyName::RedisAtomic, ..ConcurrencyConfig::default() };
    let backends = Backends {
        db: db.clone(),
        redis: Some(redis.clone()),
        redis_prefix: prefix.to_owned(),
        ..Backends::from(db.clone())
    };
    build_strategy(&config, backends).await.unwrap()
}

async fn redis_stock(redis: &Pool, prefix: &str, event: i64) -> Option<i64> {
    let mut conn = redis.get().await.unwrap();
    conn.get(format!("{prefix}:ra:{event}:stock")).await.unwrap()
}

#[tokio::test]
async fn redis_atomic_gives_the_copy_back_when_the_database_write_fails() {
    let Some((db, redis)) = backends("giveback").await else { return };
    let prefix = unique_prefix("giveback");
    let strategy = redis_atomic(&db, &redis, &prefix).await;
    let event = fresh_event(&db, 3).await.unwrap();
    strategy.event_created(event).await.unwrap();
    assert_eq!(redis_stock(&redis, &prefix, event).await, Some(3));

    // Break the database write (the table is briefly gone), apply, then restore it.
    db.execute_unprepared("RENAME TABLE applications TO applications_away").await.unwrap();
    let failed = strategy.apply(&request(event, 1)).await;
    db.execute_unprepared("RENAME TABLE applications_away TO applications").await.unwrap();
    assert!(failed.is_err(), "the write cannot succeed without its table: {failed:?}");
    assert_eq!(redis_stock(&redis, &prefix, event).await, Some(3), "the reserved copy must come back");

    // The same reader can still win, and the counters agree with the database.
    assert!(matches!(strategy.apply(&request(event, 1)).await, Ok(ApplyOutcome::Won { .. })));
    assert_eq!(redis_stock(&redis, &prefix, event).await, Some(2));
    assert_eq!(schema::remaining(&db, event).await.unwrap(), Some(2));
}

#[tokio::test]
async fn redis_atomic_rebuilds_lost_counters_from_the_database() {
    let Some((db, redis)) = backends("rebuild").await else { return };
    let prefix = unique_prefix("rebuild");
    let strategy = redis_atomic(&db, &redis, &prefix).await;
    let event = fresh_event(&db, 2).await.unwrap();
    assert!(matches!(strategy.apply(&request(event, 1)).await, Ok(ApplyOutcome::Won { .. })));

    // Redis loses everything (restart without persistence)…
    let mut conn = redis.get().await.unwrap();
    let _: i64 = conn
        .del(&[format!("{prefix}:ra:{event}:stock"), format!("{prefix}:ra:{event}:users")])
        .await
        .unwrap();
    // …a restarted process rebuilds at start-up, and the gate still knows who won.
    strategies::ConcurrencyStrategy::prepare(strategy.as_ref()).await.unwrap();
    assert_eq!(redis_stock(&redis, &prefix, event).await, Some(1));
    assert_eq!(strategy.apply(&request(event, 1)).await.unwrap(), ApplyOutcome::AlreadyApplied);
    assert!(matches!(strategy.apply(&request(event, 2)).await, Ok(ApplyOutcome::Won { .. })));
    assert_eq!(strategy.apply(&request(event, 3)).await.unwrap(), ApplyOutcome::SoldOut);
    assert_eq!(schema::winners(&db, event).await.unwrap().len(), 2);
}
