//! `db-atomic`: what flash-sale systems do instead of locking — one conditional
//! `UPDATE … SET remaining = remaining - 1 WHERE remaining > 0`. The database re-checks the
//! condition under its own row lock, so no separate lock or retry is needed.

use sea_orm::DatabaseConnection;

use crate::{
    StrategyName,
    section::{Gate, Gated},
};

/// Conditional decrement.
pub(crate) fn db_atomic(
    db: DatabaseConnection,
    book: Option<std::sync::Arc<crate::sold_out::SoldOutBook>>,
) -> Gated {
    Gated::new(StrategyName::DbAtomic, Gate::Atomic, db, book)
}
