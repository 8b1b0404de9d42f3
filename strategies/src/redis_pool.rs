//! The Redis connection pool the Redis strategies share, with deadlines everywhere: a
//! Redis outage must turn into a quick 503, never a hung request.
//!
//! One pool type for both ways of finding Redis:
//!
//! - `redis://[user:password@]host:port[/db]`: one server.
//! - `redis-sentinel://[user:password@]host:port,host:port,…/master-name[/db]`: the current
//!   primary of `master-name`, asked of the sentinels (in the order given) whenever a
//!   connection is made. After a failover the connections to the dead primary fail (503),
//!   the pool drops them on their next use, and new ones go to whichever server the
//!   sentinels promoted — nanum follows without a restart. A server the sentinels name is
//!   used only once it answers `ROLE` as `master`, so a demoted primary that comes back is
//!   never written to.
//!
//! `deadpool-redis` has a sentinel pool too, but without connect or response deadlines,
//! and its pool is another type: every strategy would need two code paths.

use std::{
    fmt,
    ops::{Deref, DerefMut},
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use deadpool::managed::{self, Metrics, RecycleResult};
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, Value,
    aio::{ConnectionLike, MultiplexedConnection},
};

use crate::{Backend, StrategyError};

/// Connect, response and pool-wait deadline of every Redis call.
const DEADLINE: Duration = Duration::from_secs(2);

/// A sentinel that does not answer within this is skipped for the next one.
const SENTINEL_DEADLINE: Duration = Duration::from_millis(500);

/// Where the data lives: one server, or whatever server the sentinels call the primary.
enum Target {
    Direct(Client),
    Sentinel {
        sentinels: Vec<Client>,
        master: String,
        /// `redis://user:password@` — the data nodes' credentials, without host.
        auth: String,
        db: String,
    },
}

/// Makes and checks the pool's connections (`deadpool`'s manager).
pub struct Manager {
    target: Target,
    config: AsyncConnectionConfig,
    ping: AtomicUsize,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never the URL: it may carry a password
        let kind = match &self.target {
            Target::Direct(_) => "direct",
            Target::Sentinel { .. } => "sentinel",
        };
        f.debug_struct("Manager").field("target", &kind).finish_non_exhaustive()
    }
}

impl Manager {
    fn new(url: &str) -> Result<Self, String> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(DEADLINE))
            .set_response_timeout(Some(DEADLINE));
        let target = match url.strip_prefix("redis-sentinel://") {
            Some(rest) => sentinel_target(rest)?,
            None => Target::Direct(Client::open(url).map_err(|e| e.to_string())?),
        };
        Ok(Self { target, config, ping: AtomicUsize::new(0) })
    }

    /// The current primary, asked of each sentinel in turn.
    async fn primary(
        &self,
        sentinels: &[Client],
        master: &str,
        auth: &str,
        db: &str,
    ) -> Result<Client, RedisError> {
        let quick = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(SENTINEL_DEADLINE))
            .set_response_timeout(Some(SENTINEL_DEADLINE));
        let mut last = None;
        for sentinel in sentinels {
            let answer = async {
                let mut conn = sentinel.get_multiplexed_async_connection_with_config(&quick).await?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(master)
                    .query_async::<Option<(String, u16)>>(&mut conn)
                    .await
            };
            match answer.await {
                Ok(Some((host, port))) => return Client::open(format!("{auth}{host}:{port}{db}")),
                Ok(None) => last = Some(format!("the sentinel knows no master named {master:?}")),
                Err(e) => last = Some(e.to_string()),
            }
        }
        let why = last.unwrap_or_else(|| "no sentinel configured".into());
        Err(RedisError::from((redis::ErrorKind::Io, "no sentinel named a primary", why)))
    }
}

/// Parses `host:port,host:port/master[/db]` (after the scheme), with optional credentials.
fn sentinel_target(rest: &str) -> Result<Target, String> {
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((credentials, rest)) => (format!("redis://{credentials}@"), rest),
        None => ("redis://".to_owned(), rest),
    };
    let (hosts, path) = rest.split_once('/').ok_or("a sentinel URL names its master: …/master-name")?;
    let (master, db) = match path.split_once('/') {
        Some((master, db)) => (master, format!("/{db}")),
        None => (path, String::new()),
    };
    if master.is_empty() {
        return Err("a sentinel URL names its master: …/master-name".into());
    }
    let sentinels = hosts
        .split(',')
        .filter(|h| !h.trim().is_empty())
        .map(|h| Client::open(format!("redis://{}", h.trim())).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if sentinels.is_empty() {
        return Err("a sentinel URL lists at least one sentinel host:port".into());
    }
    Ok(Target::Sentinel { sentinels, master: master.to_owned(), auth, db })
}

impl managed::Manager for Manager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        match &self.target {
            Target::Direct(client) => client.get_multiplexed_async_connection_with_config(&self.config).await,
            Target::Sentinel { sentinels, master, auth, db } => {
                let client = self.primary(sentinels, master, auth, db).await?;
                let mut conn = client.get_multiplexed_async_connection_with_config(&self.config).await?;
                // A sentinel may still name a primary it has not yet seen demoted.
                let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
                match role.first() {
                    Some(Value::BulkString(r)) if r.as_slice() == b"master" => Ok(conn),
                    _ => {
                        Err(RedisError::from((redis::ErrorKind::Io, "the named primary is not a master yet")))
                    }
                }
            }
        }
    }

    async fn recycle(&self, conn: &mut MultiplexedConnection, _: &Metrics) -> RecycleResult<RedisError> {
        // As deadpool-redis does: UNWATCH and PING in one round trip.
        let ping = self.ping.fetch_add(1, Ordering::Relaxed).to_string();
        let (n,): (String,) = redis::Pipeline::with_capacity(2)
            .cmd("UNWATCH")
            .ignore()
            .cmd("PING")
            .arg(&ping)
            .query_async(conn)
            .await?;
        if n == ping { Ok(()) } else { Err(managed::RecycleError::message("invalid PING response")) }
    }
}

/// The pool (cheap to clone: a handle).
#[derive(Clone, Debug)]
pub struct Pool(managed::Pool<Manager>);

/// A pooled connection; back to the pool on drop.
pub struct Connection(managed::Object<Manager>);

impl Pool {
    /// A connection, within [`DEADLINE`].
    ///
    /// # Errors
    ///
    /// The pool timed out, or no connection could be made.
    pub async fn get(&self) -> Result<Connection, managed::PoolError<RedisError>> {
        self.0.get().await.map(Connection)
    }
}

impl Deref for Connection {
    type Target = MultiplexedConnection;
    fn deref(&self) -> &MultiplexedConnection {
        &self.0
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut MultiplexedConnection {
        &mut self.0
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(cmd, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

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

/// Builds a pool for `url` (`redis://…` or `redis-sentinel://…`, see the module docs)
/// without connecting (connections are made on first use).
///
/// # Errors
///
/// One line naming `redis.url` when the URL is malformed.
pub fn build(url: &str, max_size: usize) -> Result<Pool, String> {
    let manager =
        Manager::new(url).map_err(|e| format!("redis.url = \"{url}\" is invalid: {e} (APP__REDIS__URL)"))?;
    let pool = managed::Pool::builder(manager)
        .max_size(max_size.max(1))
        .wait_timeout(Some(DEADLINE))
        .create_timeout(Some(DEADLINE))
        .recycle_timeout(Some(DEADLINE))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| format!("redis pool: {e}"))?;
    Ok(Pool(pool))
}

/// `PING`, for readiness.
///
/// # Errors
///
/// [`StrategyError::Unavailable`] when Redis does not answer.
pub async fn ping(pool: &Pool) -> Result<(), StrategyError> {
    let mut conn = pool.get().await.map_err(unavailable)?;
    let _: String = redis::cmd("PING").query_async(&mut conn).await.map_err(unavailable)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_url_names_its_sentinels_master_and_credentials() {
        let Target::Sentinel { sentinels, master, auth, db } =
            sentinel_target(":secret@10.0.0.1:26379, 10.0.0.2:26380/mymaster/2").unwrap()
        else {
            panic!("not a sentinel target")
        };
        assert_eq!(sentinels.len(), 2);
        assert_eq!(master, "mymaster");
        assert_eq!(auth, "redis://:secret@");
        assert_eq!(db, "/2");
    }

    #[test]
    fn a_sentinel_url_without_a_master_or_hosts_is_refused() {
        assert!(sentinel_target("127.0.0.1:26379").is_err());
        assert!(sentinel_target("127.0.0.1:26379/").is_err());
        assert!(sentinel_target("/mymaster").is_err());
    }

    #[test]
    fn the_manager_never_shows_its_url() {
        let manager = Manager::new("redis-sentinel://:hunter2@127.0.0.1:26379/m").unwrap();
        assert!(!format!("{manager:?}").contains("hunter2"));
    }
}
