//! `app-mutex`: one in-process mutex per event around the read-modify-write section.
//! Correct inside one process; a second instance has its own mutexes, so two servers race
//! exactly like `none` — the lesson the multi-instance harness demonstrates.

use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::DatabaseConnection;

use crate::{
    ApplyOutcome, ApplyRequest, BuildError, ConcurrencyStrategy, StrategyError, StrategyName,
    event_locks::EventLocks,
    probes::{StrategyProbes, probes},
    registry::Parts,
    section::{self, Gate},
    sold_out::SoldOutBook,
};

/// Per-event in-process lock.
#[derive(Debug)]
pub(crate) struct AppMutex {
    db: DatabaseConnection,
    locks: EventLocks,
    /// The sold-out shortcut, asked again by the section after the queue (the event may
    /// have sold out while this request waited).
    sold_out: Option<Arc<SoldOutBook>>,
    probes: &'static StrategyProbes,
}

/// The registry's constructor.
pub(crate) async fn build(parts: &Parts<'_>) -> Result<Arc<dyn ConcurrencyStrategy>, BuildError> {
    Ok(Arc::new(AppMutex {
        db: parts.db.clone(),
        locks: EventLocks::default(),
        sold_out: parts.book.clone(),
        probes: probes(StrategyName::AppMutex),
    }))
}

#[async_trait]
impl ConcurrencyStrategy for AppMutex {
    fn name(&self) -> StrategyName {
        StrategyName::AppMutex
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        let queued = std::time::Instant::now();
        let _turn = self.locks.lock(request.event_id).await;
        self.probes.waited(queued.elapsed());
        section::run_to_outcome(
            &self.db,
            self.sold_out.as_deref(),
            request,
            Gate::ReadModifyWrite,
            self.probes,
        )
        .await
    }
}
