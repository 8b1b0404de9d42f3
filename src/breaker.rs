//! Fail fast while a backend is down: one circuit breaker per backend.
//!
//! A request that meets an outage (a 503 naming the backend, see
//! [`ApiError::BackendUnavailable`]) opens that backend's breaker. While it is open, requests
//! that need the backend are answered 503 `backend_unavailable` with `Retry-After` at once,
//! instead of each waiting out a connect timeout (5 s for the database pool,
//! `kafka.deadline_ms` for the broker) — at a few thousand requests a second, that wait
//! parks thousands of requests in the server. One background task probes the backend (the
//! same check as `/health/ready`) every [`PROBE_EVERY`] and closes the breaker when it
//! answers, so recovery needs no restart and no user request pays for the probing.
//!
//! Nothing is lost by refusing early: a request refused here had no effect, exactly like the
//! 503 it would have got after its timeout.
//!
//! Which backends a request needs is declared where its route is: every `/api/v1` route but
//! `/api/v1/strategy` needs the database ([`fail_fast`]), and the apply routes — the API's
//! and the web form's — also the strategy's own backends, through [`Breakers::refuse_apply`]
//! at the top of their handlers. The breakers own what they probe (the pools and the
//! strategy), so this module needs no application state.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix_web::{
    Error, ResponseError,
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use strategies::{Backend, ConcurrencyStrategy};

use crate::error::{ApiError, Outage};

/// How often an open breaker's probe runs.
pub const PROBE_EVERY: Duration = Duration::from_millis(200);

/// How long one probe (and one `/health/ready` check) may take before it counts as down:
/// readiness answers within a second whatever is down.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// One breaker per backend, and what their probes ask.
#[derive(Debug)]
pub struct Breakers {
    open: [AtomicBool; 3],
    probing: [AtomicBool; 3],
    db: DatabaseConnection,
    redis: Option<strategies::redis_pool::Pool>,
    /// Asked for the Kafka check (its `health`), and for the backends an apply needs.
    strategy: Arc<dyn ConcurrencyStrategy>,
}

fn slot(backend: Backend) -> usize {
    Backend::ALL.iter().position(|b| *b == backend).unwrap_or(0)
}

impl Breakers {
    /// Closed breakers over these backends.
    pub fn new(
        db: DatabaseConnection,
        redis: Option<strategies::redis_pool::Pool>,
        strategy: Arc<dyn ConcurrencyStrategy>,
    ) -> Arc<Self> {
        Arc::new(Self { open: Default::default(), probing: Default::default(), db, redis, strategy })
    }

    /// Whether requests needing `backend` are refused at once.
    pub fn is_open(&self, backend: Backend) -> bool {
        self.open[slot(backend)].load(Ordering::Acquire)
    }

    /// Opens the breaker; true if it was closed (the caller starts the probe).
    fn trip(&self, backend: Backend) -> bool {
        let was_open = self.open[slot(backend)].swap(true, Ordering::AcqRel);
        if !was_open {
            tracing::warn!(
                backend = backend.as_str(),
                "backend down: answering 503 at once until it answers again"
            );
        }
        !was_open
    }

    fn close(&self, backend: Backend) {
        if self.open[slot(backend)].swap(false, Ordering::AcqRel) {
            tracing::info!(backend = backend.as_str(), "backend answers again: breaker closed");
        }
    }
}

/// Opens `backend`'s breaker and makes sure one probe task runs until it answers.
pub fn trip(breakers: &Arc<Breakers>, backend: Backend) {
    breakers.trip(backend);
    if breakers.probing[slot(backend)].swap(true, Ordering::AcqRel) {
        return; // a probe is already running
    }
    let breakers = Arc::clone(breakers);
    actix_web::rt::spawn(async move {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            if breakers.probe(backend).await.is_ok() {
                breakers.close(backend);
                break;
            }
        }
        breakers.probing[slot(backend)].store(false, Ordering::Release);
    });
}

impl Breakers {
    /// The readiness check of one backend, bounded by [`PROBE_TIMEOUT`]. A backend that is
    /// not configured answers `Ok`.
    pub async fn probe(&self, backend: Backend) -> Result<(), String> {
        let check = async {
            match backend {
                Backend::Database => {
                    self.db.execute_unprepared("SELECT 1").await.map(drop).map_err(|e| e.to_string())
                }
                Backend::Redis => match &self.redis {
                    Some(redis) => strategies::redis_pool::ping(redis).await.map_err(|e| e.to_string()),
                    None => Ok(()),
                },
                _ => {
                    let checks = self.strategy.health().await;
                    checks.into_iter().filter(|(name, _)| *name == backend.as_str()).try_for_each(|(_, r)| r)
                }
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT, check)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {PROBE_TIMEOUT:?}")))
    }

    /// 503 at once when one of `needs` is down.
    ///
    /// # Errors
    ///
    /// [`ApiError::BackendUnavailable`] naming the first open breaker.
    pub fn refuse(&self, needs: impl IntoIterator<Item = Backend>) -> Result<(), ApiError> {
        match needs.into_iter().find(|b| self.is_open(*b)) {
            Some(down) => Err(ApiError::BackendUnavailable(
                Some(down),
                format!("{} is down (circuit open)", down.as_str()),
            )),
            None => Ok(()),
        }
    }

    /// Refuses an apply while the database or one of the strategy's own backends is down
    /// (the API's and the web form's apply handlers call it first).
    ///
    /// # Errors
    ///
    /// [`ApiError::BackendUnavailable`] while one of them is down.
    pub fn refuse_apply(&self) -> Result<(), ApiError> {
        let needs = self.strategy.name().needs();
        let own = [(needs.redis, Backend::Redis), (needs.kafka, Backend::Kafka)];
        self.refuse(
            std::iter::once(Backend::Database).chain(own.into_iter().filter_map(|(n, b)| n.then_some(b))),
        )
    }
}

/// The middleware around the whole app: trips the breaker of a backend a response found
/// down, and refuses at once what needs the database while its breaker is open — every
/// `/api/v1` route but `/api/v1/strategy` (which answers from memory).
pub async fn fail_fast(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(breakers) = req.app_data::<web::Data<Breakers>>().map(|b| b.clone().into_inner()) else {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    let path = req.path();
    let needs_database = path.starts_with("/api/v1/") && path != "/api/v1/strategy";
    if needs_database && let Err(refused) = breakers.refuse([Backend::Database]) {
        return Ok(req.into_response(refused.error_response()).map_into_right_body());
    }
    let response = next.call(req).await?;
    let outage = response.response().extensions().get::<Outage>().copied();
    if let Some(Outage(backend)) = outage {
        trip(&breakers, backend);
    }
    Ok(response.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use strategies::{ConcurrencyConfig, StrategyName};

    use super::*;

    #[tokio::test]
    async fn an_apply_is_refused_only_while_a_backend_its_strategy_needs_is_down() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.expect("in-memory SQLite");
        let config = ConcurrencyConfig { strategy: StrategyName::NoControl, ..ConcurrencyConfig::default() };
        let strategy =
            strategies::build_strategy(&config, db.clone()).await.expect("`none` needs only the database");
        let breakers = Breakers::new(db, None, strategy);
        assert!(breakers.refuse_apply().is_ok());
        breakers.trip(Backend::Redis);
        assert!(breakers.refuse_apply().is_ok(), "`none` does not need Redis");
        breakers.trip(Backend::Database);
        let refused = breakers.refuse_apply();
        assert!(
            matches!(refused, Err(ApiError::BackendUnavailable(Some(Backend::Database), _))),
            "{refused:?}"
        );
    }
}
