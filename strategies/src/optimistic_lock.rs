//! `optimistic-lock`: no lock is taken; the decrement is `UPDATE … WHERE version = ?` and a
//! transaction that finds the version moved rolls back and tries again after a jittered,
//! exponentially growing pause. The retry is bounded: giving up is
//! [`StrategyError::Contention`] (nothing written), never a silent loss.

use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::DatabaseConnection;

use crate::{
    ApplyOutcome, ApplyRequest, BuildError, ConcurrencyStrategy, OptimisticConfig, StrategyError,
    StrategyName,
    probes::{StrategyProbes, probes},
    registry::Parts,
    section::{self, Attempt, Gate},
    sold_out::SoldOutBook,
};

/// Version compare-and-set with bounded retry.
#[derive(Debug)]
pub(crate) struct Optimistic {
    db: DatabaseConnection,
    config: OptimisticConfig,
    /// The sold-out shortcut, asked again by every retry's section.
    sold_out: Option<Arc<SoldOutBook>>,
    probes: &'static StrategyProbes,
}

/// The registry's constructor.
pub(crate) async fn build(parts: &Parts<'_>) -> Result<Arc<dyn ConcurrencyStrategy>, BuildError> {
    Ok(Arc::new(Optimistic {
        db: parts.db.clone(),
        config: parts.config.optimistic.clone(),
        sold_out: parts.book.clone(),
        probes: probes(StrategyName::OptimisticLock),
    }))
}

#[async_trait]
impl ConcurrencyStrategy for Optimistic {
    fn name(&self) -> StrategyName {
        StrategyName::OptimisticLock
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        let attempts = self.config.max_attempts.max(1);
        for attempt in 0..attempts {
            let section = section::run_retrying(
                &self.db,
                self.sold_out.as_deref(),
                request,
                Gate::Versioned,
                self.probes,
            );
            match section.await? {
                Attempt::Done(outcome) => return Ok(outcome),
                Attempt::Conflict | Attempt::Fenced => {
                    self.probes.conflict_retries.increment(1);
                    tracing::trace!(attempt, event_id = request.event_id, "version moved; retrying");
                    self.config.backoff().sleep(attempt).await;
                }
            }
        }
        Err(StrategyError::Contention { attempts })
    }
}
