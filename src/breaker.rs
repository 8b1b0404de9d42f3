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

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use actix_web::{
    Error, ResponseError,
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::Method,
    middleware::Next,
    web,
};
use sea_orm::ConnectionTrait;
use strategies::Backend;

use crate::{error::ApiError, state::AppState};

/// How often an open breaker's probe runs.
pub const PROBE_EVERY: Duration = Duration::from_millis(200);

/// How long one probe (and one `/health/ready` check) may take before it counts as down:
/// readiness answers within a second whatever is down.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// Set on a 503 response by [`ApiError`] when a backend was found down.
#[derive(Debug, Clone, Copy)]
pub struct Outage(pub Backend);

/// One breaker per backend.
#[derive(Debug, Default)]
pub struct Breakers {
    open: [AtomicBool; 3],
    probing: [AtomicBool; 3],
}

fn slot(backend: Backend) -> usize {
    Backend::ALL.iter().position(|b| *b == backend).unwrap_or(0)
}

impl Breakers {
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
pub fn trip(state: &web::Data<AppState>, backend: Backend) {
    state.breakers.trip(backend);
    if state.breakers.probing[slot(backend)].swap(true, Ordering::AcqRel) {
        return; // a probe is already running
    }
    let state = state.clone();
    actix_web::rt::spawn(async move {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            if probe(&state, backend).await.is_ok() {
                state.breakers.close(backend);
                break;
            }
        }
        state.breakers.probing[slot(backend)].store(false, Ordering::Release);
    });
}

/// The readiness check of one backend, bounded by [`PROBE_TIMEOUT`]. A backend that is not
/// configured answers `Ok`.
pub async fn probe(state: &AppState, backend: Backend) -> Result<(), String> {
    let check = async {
        match backend {
            Backend::Database => {
                state.db.execute_unprepared("SELECT 1").await.map(drop).map_err(|e| e.to_string())
            }
            Backend::Redis => match &state.redis {
                Some(redis) => strategies::redis_pool::ping(redis).await.map_err(|e| e.to_string()),
                None => Ok(()),
            },
            _ => {
                let checks = state.strategy.health().await;
                checks.into_iter().filter(|(name, _)| *name == backend.as_str()).try_for_each(|(_, r)| r)
            }
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {PROBE_TIMEOUT:?}")))
}

/// The backends a request needs: the database for every API call, plus the strategy's own
/// backends for an application.
fn needs(req: &ServiceRequest, state: &AppState) -> Vec<Backend> {
    let path = req.path();
    if !path.starts_with("/api/v1/") || path == "/api/v1/strategy" {
        return Vec::new();
    }
    let mut needs = vec![Backend::Database];
    if req.method() == Method::POST && path.starts_with("/api/v1/events/") && path.ends_with("/applications")
    {
        let n = state.strategy.name().needs();
        if n.redis {
            needs.push(Backend::Redis);
        }
        if n.kafka {
            needs.push(Backend::Kafka);
        }
    }
    needs
}

/// The middleware: refuses at once what needs an open breaker's backend, and trips the
/// breaker of a backend a response found down.
pub async fn fail_fast(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    if let Some(down) = needs(&req, &state).into_iter().find(|b| state.breakers.is_open(*b)) {
        let refused =
            ApiError::BackendUnavailable(Some(down), format!("{} is down (circuit open)", down.as_str()));
        return Ok(req.into_response(refused.error_response()).map_into_right_body());
    }
    let response = next.call(req).await?;
    let outage = response.response().extensions().get::<Outage>().copied();
    if let Some(Outage(backend)) = outage {
        trip(&state, backend);
    }
    Ok(response.map_into_left_body())
}
