//! The Redis connection pool the Redis strategies share, with deadlines everywhere: a
//! Redis outage must turn into a quick 503, never a hung request.

use std::time::Duration;

use deadpool_redis::{
    Manager, Pool, Runtime,
    redis::{AsyncConnectionConfig, RedisError},
};

use crate::{Backend, StrategyError};

/// Connect, response and pool-wait deadline of every Redis call.
const DEADLINE: Duration = Duration::from_secs(2);

/// Builds a pool for `url` and checks that Redis answers `PING`.
///
/// # Errors
///
/// One line naming `redis.url` when the URL is malformed or Redis does not answer.
pub async fn connect(url: &str, max_size: usize) -> Result<Pool, String> {
    let pool = build(url, max_size)?;
    ping(&pool).await.map_err(|e| format!("redis.url = \"{url}\" is unreachable: {e} (APP__REDIS__URL)"))?;
    Ok(pool)
}

/// Builds a pool for `url` without connecting (connections are made on first use).
///
/// # Errors
///
/// One line naming `redis.url` when the URL is malformed.
pub fn build(url: &str, max_size: usize) -> Result<Pool, String> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(DEADLINE))
        .set_response_timeout(Some(DEADLINE));
    let manager = Manager::new_with_config(url, config)
        .map_err(|e| format!("redis.url = \"{url}\" is invalid: {e} (APP__REDIS__URL)"))?;
    let pool = Pool::builder(manager)
        .max_size(max_size.max(1))
        .wait_timeout(Some(DEADLINE))
        .create_timeout(Some(DEADLINE))
        .recycle_timeout(Some(DEADLINE))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| format!("redis pool: {e}"))?;
    Ok(pool)
}

/// `PING`, for readiness.
///
/// # Errors
///
/// [`StrategyError::Unavailable`] when Redis does not answer.
pub async fn ping(pool: &Pool) -> Result<(), StrategyError> {
    let mut conn = pool.get().await.map_err(unavailable)?;
    let _: String = deadpool_redis::redis::cmd("PING").query_async(&mut conn).await.map_err(unavailable)?;
    Ok(())
}

/// Any Redis failure (pool timeout, refused, reset, response timeout) means the request
/// could not be decided: nothing was written, answer 503.
pub(crate) fn unavailable(err: impl std::fmt::Display) -> StrategyError {
    StrategyError::Unavailable(Backend::Redis, format!("redis: {err}"))
}

/// `RedisError` → [`StrategyError`].
impl From<RedisError> for StrategyError {
    fn from(err: RedisError) -> Self {
        unavailable(err)
    }
}
