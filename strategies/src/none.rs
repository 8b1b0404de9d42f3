//! `none`: the critical section with nothing around it. Two transactions read the same
//! `remaining`, both write back `remaining - 1`, and one decrement is lost while both
//! applications are kept — the over-allocation the other strategies exist to prevent.

use async_trait::async_trait;
use sea_orm::DatabaseConnection;

use crate::{
    ApplyOutcome, ApplyRequest, ConcurrencyStrategy, StrategyError, StrategyName,
    section::{self, Gate},
};

/// No concurrency control at all (a demonstration, never a choice).
#[derive(Debug)]
pub(crate) struct NoControl {
    db: DatabaseConnection,
}

impl NoControl {
    pub(crate) fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[async_trait]
impl ConcurrencyStrategy for NoControl {
    fn name(&self) -> StrategyName {
        StrategyName::None
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        section::run_once(&self.db, request, Gate::ReadModifyWrite).await
    }
}
