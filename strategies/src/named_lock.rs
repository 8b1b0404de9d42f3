//! `named-lock`: MariaDB's `GET_LOCK(name, timeout)` around the section, released with
//! `RELEASE_LOCK` after the section's transaction has ended — the "named lock" of the usual
//! Korean comparison (synchronized, pessimistic, optimistic, named lock).
//!
//! A named lock belongs to a *connection* (a session), not a transaction, and it must be
//! held until the section's commit is visible: released any earlier, the next holder's plain
//! read could still see the old `remaining`. So the lock is taken on a connection of its own
//! and the section runs on another, as the comparison teaches ("a separate data source").
//! The lock connections come from a pool of their own, as large as the main one: were they
//! taken from the main pool, a pool full of waiters would leave the holder no connection for
//! its section, and every request would wait out the lock's timeout.
//!
//! - Bounded wait: the pool's checkout and `GET_LOCK` share `max_wait_ms`; running out is
//!   [`StrategyError::LockTimeout`] (503), nothing written.
//! - Released on every path: after the section, whatever it answered. A lock connection that
//!   leaves without a successful `RELEASE_LOCK` (an error, a panic) is closed instead of going
//!   back to the pool, and the server frees a closed session's locks. The work runs in a task
//!   of its own, so a caller that goes away (a client that hung up) cannot stop it half-way.
//! - Across instances: the lock lives in the database, so it holds for any number of them.
//! - On SQLite there are no named locks; the section's `BEGIN IMMEDIATE` write lock already
//!   serialises every section there (see [`crate::section::begin`]), so the strategy runs the
//!   section alone.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use sea_orm::{
    DatabaseConnection, DbBackend, DbErr,
    sqlx::{self, MySql, MySqlPool, pool::PoolConnection},
};
use serde::{Deserialize, Serialize};

use crate::{
    ApplyOutcome, ApplyRequest, BuildError, ConcurrencyStrategy, StrategyError, StrategyName,
    probes::{StrategyProbes, probes},
    registry::Parts,
    section::{self, Gate},
    sold_out::SoldOutBook,
};

/// Settings of `named-lock`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct NamedLockConfig {
    /// How long a request may wait for its event's lock (a lock connection, then
    /// `GET_LOCK`) before it answers 503 with nothing written.
    pub max_wait_ms: u64,
}

impl Default for NamedLockConfig {
    fn default() -> Self {
        Self { max_wait_ms: 10_000 }
    }
}

/// The registry's constructor.
pub(crate) async fn build(parts: &Parts<'_>) -> Result<Arc<dyn ConcurrencyStrategy>, BuildError> {
    let max_wait = Duration::from_millis(parts.config.named_lock.max_wait_ms.max(1));
    let locks = match parts.db.get_database_backend() {
        DbBackend::MySql => {
            let main = parts.db.get_mysql_connection_pool();
            let pool = sqlx::pool::PoolOptions::<MySql>::new()
                .max_connections(main.options().get_max_connections())
                .min_connections(0)
                .acquire_timeout(max_wait)
                .connect_lazy_with((*main.connect_options()).clone());
            let database = sqlx::query_scalar::<_, Option<String>>("SELECT DATABASE()")
                .fetch_one(main)
                .await
                .map_err(|e| BuildError::Backend {
                    strategy: parts.name,
                    reason: format!("could not read the database's name for the lock names: {e}"),
                })?;
            Some((pool, database.unwrap_or_default()))
        }
        _ => None,
    };
    Ok(Arc::new(NamedLock {
        inner: Arc::new(Inner {
            db: parts.db.clone(),
            locks,
            book: parts.book.clone(),
            max_wait,
            probes: probes(StrategyName::NamedLock),
        }),
    }))
}

/// `GET_LOCK` per event around the section.
#[derive(Debug)]
pub(crate) struct NamedLock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: DatabaseConnection,
    /// The lock connections and the database's name (MariaDB only).
    locks: Option<(MySqlPool, String)>,
    book: Option<Arc<SoldOutBook>>,
    max_wait: Duration,
    probes: &'static StrategyProbes,
}

/// The lock's name, one per event: `<database>.event.<id>`. Named locks are server-wide, so
/// the database's name (its first 40 characters: a name has at most 64) keeps deployments
/// and tests that share a server apart.
fn lock_name(database: &str, event_id: i64) -> String {
    let database: String = database.chars().take(40).collect();
    format!("{database}.event.{event_id}")
}

/// A failure of a lock connection, classified like any database error (an outage is 503).
fn sqlx_error(e: sqlx::Error) -> StrategyError {
    DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())).into()
}

/// A lock connection holding its event's lock. Dropped without [`Held::release`] (an error
/// or a panic), it closes the connection, which frees the lock on the server.
struct Held {
    conn: Option<PoolConnection<MySql>>,
    name: String,
}

impl Held {
    /// `RELEASE_LOCK`; the connection goes back to the pool only if the server confirms.
    async fn release(mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        let freed = sqlx::query_scalar::<_, Option<i64>>("SELECT RELEASE_LOCK(?)")
            .bind(&self.name)
            .fetch_one(&mut *conn)
            .await;
        match freed {
            Ok(Some(1)) => {}
            other => {
                tracing::warn!(lock = %self.name, answer = ?other.map_err(|e| e.to_string()),
                    "RELEASE_LOCK did not confirm; closing the lock connection to free it");
                conn.close_on_drop();
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

impl Inner {
    /// Takes `event_id`'s lock within `max_wait`.
    async fn lock(&self, pool: &MySqlPool, database: &str, event_id: i64) -> Result<Held, StrategyError> {
        let began = Instant::now();
        let timed_out = || {
            self.probes.lock_timeouts.increment(1);
            StrategyError::LockTimeout {
                waited_ms: u64::try_from(self.max_wait.as_millis()).unwrap_or(u64::MAX),
            }
        };
        let mut conn = match pool.acquire().await {
            Ok(conn) => conn,
            Err(sqlx::Error::PoolTimedOut) => return Err(timed_out()),
            Err(e) => return Err(sqlx_error(e)),
        };
        let name = lock_name(database, event_id);
        let left = self.max_wait.saturating_sub(began.elapsed()).as_secs_f64();
        let got = sqlx::query_scalar::<_, Option<i64>>("SELECT GET_LOCK(?, ?)")
            .bind(&name)
            .bind(left)
            .fetch_one(&mut *conn)
            .await;
        // from here on the connection may hold the lock: `Held` frees it on every path
        let held = Held { conn: Some(conn), name };
        match got {
            Ok(Some(1)) => {
                self.probes.waited(began.elapsed());
                Ok(held)
            }
            Ok(_) => Err(timed_out()),
            Err(e) => Err(sqlx_error(e)),
        }
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        let held = match &self.locks {
            Some((pool, database)) => Some(self.lock(pool, database, request.event_id).await?),
            None => None,
        };
        // the lock (on SQLite the write lock) serialises the section, so a plain
        // read-modify-write is enough
        let outcome = section::run_to_outcome(
            &self.db,
            self.book.as_deref(),
            request,
            Gate::ReadModifyWrite,
            self.probes,
        )
        .await;
        if let Some(held) = held {
            held.release().await;
        }
        outcome
    }
}

#[async_trait]
impl ConcurrencyStrategy for NamedLock {
    fn name(&self) -> StrategyName {
        StrategyName::NamedLock
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        let inner = Arc::clone(&self.inner);
        let request = request.clone();
        match tokio::spawn(async move { inner.apply(&request).await }).await {
            Ok(answer) => answer,
            Err(e) => Err(StrategyError::Database(DbErr::Custom(format!("named-lock task failed: {e}")))),
        }
    }
}
