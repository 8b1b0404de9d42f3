//! `pessimistic-lock`: `SELECT … FOR UPDATE` on the event's stock row, so every applicant
//! of one event queues on that row lock inside the database — correct across any number of
//! instances. On SQLite the section's `BEGIN IMMEDIATE` write lock plays the same role.

use sea_orm::DatabaseConnection;

use crate::{
    StrategyName,
    section::{Gate, Gated},
};

/// Row lock on the stock row.
pub(crate) fn pessimistic(
    db: DatabaseConnection,
    book: Option<std::sync::Arc<crate::sold_out::SoldOutBook>>,
) -> Gated {
    Gated::new(StrategyName::PessimisticLock, Gate::ForUpdate, db, book)
}
