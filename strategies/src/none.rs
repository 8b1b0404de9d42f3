//! `none`: the critical section with nothing around it. Two transactions read the same
//! `remaining`, both write back `remaining - 1`, and one decrement is lost while both
//! applications are kept — the over-allocation the other strategies exist to prevent.

use sea_orm::DatabaseConnection;

use crate::{
    StrategyName,
    section::{Gate, Gated},
};

/// No concurrency control at all (a demonstration, never a choice).
pub(crate) fn no_control(
    db: DatabaseConnection,
    book: Option<std::sync::Arc<crate::sold_out::SoldOutBook>>,
) -> Gated {
    Gated::new(StrategyName::NoControl, Gate::ReadModifyWrite, db, book)
}
