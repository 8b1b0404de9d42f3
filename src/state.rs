//! What every request shares: [`AppState`]. Its own module so that the routes and the
//! auth extractor depend on it, not on `startup` (which depends on them).

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use strategies::ConcurrencyStrategy;

use crate::{
    auth::{PasswordService, TokenService},
    breaker::Breakers,
    configuration::Settings,
    event_cache::EventCache,
    limits::RateLimits,
    search::SearchIndex,
    throttle::LoginThrottle,
};

/// Shared by every request.
#[derive(Debug)]
pub struct AppState {
    /// Database pool.
    pub db: DatabaseConnection,
    /// The configured concurrency strategy.
    pub strategy: Arc<dyn ConcurrencyStrategy>,
    /// Redis, when `redis.url` is set (for readiness; the strategy holds its own handle).
    pub redis: Option<strategies::redis_pool::Pool>,
    /// Settings as loaded.
    pub settings: Settings,
    /// argon2id.
    pub passwords: PasswordService,
    /// JWT (also app data of its own, for the `AuthUser` extractor).
    pub tokens: Arc<TokenService>,
    /// Login attempts per account and address, and per account.
    pub logins: LoginThrottle,
    /// Request rates per client IP and per user.
    pub limits: RateLimits,
    /// The catalogue's search index (its sync task runs beside the server).
    pub search: Arc<SearchIndex>,
    /// Events by id (immutable once created).
    pub events: EventCache,
    /// One circuit breaker per backend: fail fast while it is down.
    pub breakers: Arc<Breakers>,
    /// Account ids confirmed to exist (what an apply's token names).
    pub accounts: crate::accounts::KnownAccounts,
    /// The process's Prometheus recorder, rendered by `GET /metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}
