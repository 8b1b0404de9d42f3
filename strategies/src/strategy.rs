//! The strategy trait and the values that cross it.

use async_trait::async_trait;

use crate::config::StrategyName;

/// One reader's attempt to get a copy in one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyRequest {
    /// The sharing event applied for.
    pub event_id: i64,
    /// The reader applying (from the bearer token, never from the body).
    pub user_id: i64,
    /// Unique per logical request: the client's `Idempotency-Key` scoped to the user, or a
    /// fresh UUID. Stored with the application so a replay can be recognised.
    pub request_id: String,
}

/// How an application ended. Losing is not an error: it is the common case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApplyOutcome {
    /// The reader got a copy; `application_id` orders the winners by allocation.
    Won {
        /// Primary key of the stored application row.
        application_id: i64,
    },
    /// No copies were left.
    SoldOut,
    /// This reader already holds a copy of this event.
    AlreadyApplied,
    /// Asynchronous strategies only: the request is queued but was not decided within the
    /// wait bound; `GET /applications/{request id}` settles it later.
    Pending,
}

impl ApplyOutcome {
    /// The stored and API name: `won`, `sold_out`, `already_applied`, `pending`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Won { .. } => "won",
            ApplyOutcome::SoldOut => "sold_out",
            ApplyOutcome::AlreadyApplied => "already_applied",
            ApplyOutcome::Pending => "pending",
        }
    }

    /// The application id of a win.
    pub fn application_id(self) -> Option<i64> {
        match self {
            ApplyOutcome::Won { application_id } => Some(application_id),
            _ => None,
        }
    }

    /// Back from [`ApplyOutcome::as_str`] (and the id of a win); `None` for `pending` or
    /// anything unknown, which are never stored as final answers.
    pub fn from_stored(name: &str, application_id: Option<i64>) -> Option<Self> {
        match (name, application_id) {
            ("won", Some(application_id)) => Some(ApplyOutcome::Won { application_id }),
            ("sold_out", _) => Some(ApplyOutcome::SoldOut),
            ("already_applied", _) => Some(ApplyOutcome::AlreadyApplied),
            _ => None,
        }
    }
}

/// Why a strategy could not give an answer. Every variant means *nothing was written*.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// The event has no stock row (it does not exist).
    #[error("event {0} has no stock row")]
    UnknownEvent(i64),
    /// The optimistic strategy lost the version race too many times in a row and gave up.
    /// The request had no effect; the client may retry.
    #[error("gave up after {attempts} optimistic attempts under contention")]
    Contention {
        /// How many transactions were tried.
        attempts: u32,
    },
    /// The distributed lock could not be taken within its bounded wait; nothing was written.
    #[error("waited {waited_ms} ms for the event's lock; nothing was recorded")]
    LockTimeout {
        /// The configured bound.
        waited_ms: u64,
    },
    /// A backend (database, Redis, broker) could not be reached or dropped the connection.
    #[error("backend unavailable: {1}")]
    Unavailable(Backend, String),
    /// Any other database error: a bug or a broken schema, logged and answered opaquely.
    #[error("database error: {0}")]
    Database(#[source] sea_orm::DbErr),
}

impl From<sea_orm::DbErr> for StrategyError {
    fn from(err: sea_orm::DbErr) -> Self {
        if crate::dberr::is_unavailable(&err) {
            StrategyError::Unavailable(Backend::Database, err.to_string())
        } else {
            StrategyError::Database(err)
        }
    }
}

/// A service a request may find down; it names the 503 and the circuit breaker that
/// answers for it while it stays down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// MariaDB (or SQLite).
    Database,
    /// Redis.
    Redis,
    /// The Kafka brokers.
    Kafka,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 3] = [Backend::Database, Backend::Redis, Backend::Kafka];

    /// The name used in `/health/ready` and in logs: `database`, `redis`, `kafka`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Database => "database",
            Backend::Redis => "redis",
            Backend::Kafka => "kafka",
        }
    }
}

/// A way of serialising the apply critical section.
///
/// Implementations are shared by all request handlers (`Send + Sync`, behind an `Arc`), and
/// the trait is object-safe so the app holds a `dyn ConcurrencyStrategy` picked at start-up.
///
/// # Contract
///
/// For one event with K copies and any set of concurrent calls from N distinct readers,
/// a correct strategy returns exactly `min(N, K)` [`ApplyOutcome::Won`] in total, never two for
/// the same reader, and leaves the stock row at `K - winners` (never below zero). The `none`
/// strategy deliberately breaks this to show the race.
///
/// # Errors
///
/// Returns a [`StrategyError`] only when it could not decide; in that case no application
/// was stored and no stock was taken.
#[async_trait]
pub trait ConcurrencyStrategy: Send + Sync + std::fmt::Debug {
    /// Which strategy this is (for `/api/v1/strategy` and the `strategy` field of a win).
    fn name(&self) -> StrategyName;

    /// Runs one application through the critical section.
    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError>;

    /// What this strategy wraps, for a wrapper that adds behaviour around another (the
    /// sold-out shortcut, the metrics): the lifecycle calls below then go to it, so a
    /// wrapper only writes `apply`. Default: nothing (a strategy of its own).
    fn wrapped(&self) -> Option<&dyn ConcurrencyStrategy> {
        None
    }

    /// Called after a new event and its stock row are committed, so a strategy that keeps
    /// its own copy of the stock (`redis-atomic`) can load it. Default: nothing, or the
    /// wrapped strategy's.
    ///
    /// # Errors
    ///
    /// A backend failure; the event exists regardless and is loaded lazily later.
    async fn event_created(&self, event_id: i64) -> Result<(), StrategyError> {
        match self.wrapped() {
            Some(inner) => inner.event_created(event_id).await,
            None => Ok(()),
        }
    }

    /// Called once at start-up (e.g. to rebuild counters from the database). Default:
    /// nothing, or the wrapped strategy's.
    ///
    /// # Errors
    ///
    /// A backend failure, which stops the start.
    async fn prepare(&self) -> Result<(), StrategyError> {
        match self.wrapped() {
            Some(inner) => inner.prepare().await,
            None => Ok(()),
        }
    }

    /// The strategy's own backends and whether each answers, for `/health/ready`.
    /// Default: none beyond what the app checks itself, or the wrapped strategy's.
    async fn health(&self) -> Vec<(&'static str, Result<(), String>)> {
        match self.wrapped() {
            Some(inner) => inner.health().await,
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_final_outcome_round_trips_through_its_stored_name() {
        for outcome in
            [ApplyOutcome::Won { application_id: 7 }, ApplyOutcome::SoldOut, ApplyOutcome::AlreadyApplied]
        {
            assert_eq!(ApplyOutcome::from_stored(outcome.as_str(), outcome.application_id()), Some(outcome));
        }
        // pending is never a final answer, and a win needs its id
        assert_eq!(ApplyOutcome::from_stored("pending", None), None);
        assert_eq!(ApplyOutcome::from_stored("won", None), None);
    }
}
