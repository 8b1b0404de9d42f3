//! `pessimistic-lock`: `SELECT … FOR UPDATE` on the event's stock row, so every applicant
//! of one event queues on that row lock inside the database — correct across any number of
//! instances. On SQLite the section's `BEGIN IMMEDIATE` write lock plays the same role.

use async_trait::async_trait;
use sea_orm::DatabaseConnection;

use crate::{
    ApplyOutcome, ApplyRequest, ConcurrencyStrategy, StrategyError, StrategyName,
    section::{self, Gate},
};

/// Row lock on the stock row.
#[derive(Debug)]
pub(crate) struct Pessimistic {
    db: DatabaseConnection,
}

impl Pessimistic {
    pub(crate) fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[async_trait]
impl ConcurrencyStrategy for Pessimistic {
    fn name(&self) -> StrategyName {
        StrategyName::PessimisticLock
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        section::run_once(&self.db, request, Gate::ForUpdate).await
    }
}
