//! `db-atomic`: what flash-sale systems do instead of locking — one conditional
//! `UPDATE … SET remaining = remaining - 1 WHERE remaining > 0`. The database re-checks the
//! condition under its own row lock, so no separate lock or retry is needed.

use async_trait::async_trait;
use sea_orm::DatabaseConnection;

use crate::{
    ApplyOutcome, ApplyRequest, ConcurrencyStrategy, StrategyError, StrategyName,
    section::{self, Gate},
};

/// Conditional decrement.
#[derive(Debug)]
pub(crate) struct DbAtomic {
    db: DatabaseConnection,
}

impl DbAtomic {
    pub(crate) fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[async_trait]
impl ConcurrencyStrategy for DbAtomic {
    fn name(&self) -> StrategyName {
        StrategyName::DbAtomic
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        section::run_once(&self.db, request, Gate::Atomic).await
    }
}
