//! The one critical section every database strategy runs, and the ways its stock step can
//! be guarded (`Gate`). A strategy decides the gate and what surrounds the section (a mutex,
//! a retry loop, a batch); the steps themselves never differ, so the strategies are
//! comparable.
//!
//! # Layout
//!
//! - this file: [`Gate`], the transaction ([`begin_for`]), one request's run of the section
//!   ([`run`], with transient retries in [`run_retrying`]) and [`Gated`], the strategies
//!   that are nothing but a gate.
//! - `steps`: the steps themselves, for one application or a batch ([`steps`]); the
//!   per-request path and the Kafka consumers both run them.

mod steps;

pub(crate) use steps::{Applicant, Batch, Ending, Gates, steps};

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, IsolationLevel, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use std::sync::Arc;

use crate::{
    ApplyOutcome, ApplyRequest, BuildError, ConcurrencyStrategy, StrategyError, backoff::Backoff,
    dberr::is_transient, probes::StrategyProbes, registry::Parts, sold_out::SoldOutBook,
};

/// How the stock row is read and decremented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Read, then write back `read - 1`: correct only if something outside serialises it.
    ReadModifyWrite,
    /// `SELECT … FOR UPDATE`, then write back: the row lock serialises the section.
    ForUpdate,
    /// Read the version, then `UPDATE … WHERE version = ?`: zero rows means another
    /// transaction got there first, reported as [`Attempt::Conflict`].
    Versioned,
    /// `UPDATE … SET remaining = remaining - 1 WHERE remaining > 0`: the database's own
    /// row lock and re-check make the decrement atomic; zero rows means sold out.
    Atomic,
    /// The Redis lock's fencing check, then read-modify-write: the first statement is
    /// `UPDATE … SET fence_token = t WHERE fence_token < t`, which both rejects a holder
    /// whose lease expired (a newer token already wrote) and takes the row lock, so even a
    /// stale holder that slips in first is serialised with the current one by the database.
    Fenced(i64),
}

/// What one run of the section produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    Done(ApplyOutcome),
    /// Versioned gate only: the version moved; nothing was written.
    Conflict,
    /// Fenced gate only: a newer lock holder already wrote; nothing was written.
    Fenced,
}

/// Begins the section's transaction.
///
/// SQLite has a single writer, and a deferred transaction that reads and then writes fails
/// with `SQLITE_BUSY` (no waiting) if another writer committed in between. So on SQLite every
/// section takes the write lock up front (`BEGIN IMMEDIATE`), which is SQLite's equivalent of
/// a row lock — sea-orm would silently drop `FOR UPDATE` there. The consequence: on SQLite
/// every strategy, `none` included, is serialised; the race `none` shows needs MariaDB.
pub(crate) async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    begin_for(db, Gate::ForUpdate).await
}

/// [`begin`] for a section with `gate`.
///
/// The versioned gate runs at `READ COMMITTED` on MariaDB. At the default `REPEATABLE READ`
/// an `UPDATE … WHERE version = ?` that finds the version moved still keeps the row's lock
/// until its transaction ends, so every loser of a round holds the hot row for one more
/// round trip (its rollback), one after the other: with a hundred readers that queue,
/// not the winner, was most of an optimistic apply's time. At `READ COMMITTED` InnoDB's
/// semi-consistent read lets a non-matching `UPDATE` go without keeping the lock — which
/// is what an optimistic lock means. Setting the level costs one statement before the
/// transaction begins, outside any lock.
pub(crate) async fn begin_for(db: &DatabaseConnection, gate: Gate) -> Result<DatabaseTransaction, DbErr> {
    let options = match db.get_database_backend() {
        DbBackend::Sqlite => TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        },
        DbBackend::MySql if gate == Gate::Versioned => TransactionOptions {
            isolation_level: Some(IsolationLevel::ReadCommitted),
            ..TransactionOptions::default()
        },
        _ => return db.begin().await,
    };
    db.begin_with_options(options).await
}

/// Runs the section once, for one request, inside its own transaction.
///
/// With the sold-out shortcut (`book`), a request that waited for its pooled connection
/// first asks the book (the event may have sold out meanwhile), and a losing section that
/// read `remaining = 0` teaches the book inside its own transaction before it ends.
/// `probes` gets the transaction's duration (and, from [`steps`], the row-lock wait).
pub(crate) async fn run(
    db: &DatabaseConnection,
    book: Option<&SoldOutBook>,
    req: &ApplyRequest,
    gate: Gate,
    probes: &StrategyProbes,
) -> Result<Attempt, DbErr> {
    let began = std::time::Instant::now();
    let attempt = async {
        let tx = begin_for(db, gate).await?;
        if let Some(outcome) = book.and_then(|b| b.answer_from_memory(req)) {
            tx.rollback().await?;
            return Ok(Attempt::Done(outcome));
        }
        let applicant = [Applicant { event: req.event_id, user: req.user_id, request_id: &req.request_id }];
        let outcome =
            match steps(&tx, &applicant, Gates::All(gate), Ending::RollbackUnlessWon, Some(probes)).await? {
                Batch::Done { unknown, .. } if !unknown.is_empty() => {
                    return Err(DbErr::RecordNotFound(format!("event_stock {}", req.event_id)));
                }
                Batch::Done { outcomes, .. } => outcomes.first().copied().unwrap_or(ApplyOutcome::SoldOut),
                Batch::Conflict => {
                    tx.rollback().await?;
                    return Ok(Attempt::Conflict);
                }
                Batch::Fenced => {
                    tx.rollback().await?;
                    return Ok(Attempt::Fenced);
                }
            };
        match outcome {
            ApplyOutcome::Won { .. } => tx.commit().await?,
            ApplyOutcome::SoldOut => {
                if let Some(book) = book {
                    // the loser's own row is still in this transaction: the book must not
                    // count it as a holder (`SoldOutBook::learn_with`)
                    book.learn_with(&tx, req.event_id, Some(req.user_id)).await;
                }
                tx.rollback().await?;
            }
            _ => tx.rollback().await?,
        }
        Ok(Attempt::Done(outcome))
    }
    .await;
    probes.section.record(began.elapsed().as_secs_f64());
    attempt
}

/// Deadlock victims, lock-wait timeouts and SQLite busy errors roll the whole transaction
/// back, so the section is simply run again, a bounded number of times.
const TRANSIENT_RETRIES: u32 = 8;
const TRANSIENT_BACKOFF: Backoff = Backoff::from_millis(1, 64);

/// Runs the section, retrying transient failures, and maps errors to [`StrategyError`].
pub(crate) async fn run_retrying(
    db: &DatabaseConnection,
    book: Option<&SoldOutBook>,
    req: &ApplyRequest,
    gate: Gate,
    probes: &StrategyProbes,
) -> Result<Attempt, StrategyError> {
    match retry_transient(probes, || run(db, book, req, gate, probes)).await {
        Ok(attempt) => Ok(attempt),
        Err(DbErr::RecordNotFound(_)) => Err(StrategyError::UnknownEvent(req.event_id)),
        Err(e) => Err(e.into()),
    }
}

/// Runs `transaction` again after a transient failure (it rolled back whole), a bounded
/// number of times with a growing backoff: the one retry loop of every section's caller.
pub(crate) async fn retry_transient<T, F, Fut>(
    probes: &StrategyProbes,
    mut transaction: F,
) -> Result<T, DbErr>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbErr>>,
{
    let mut tries = 0;
    loop {
        match transaction().await {
            Err(e) if is_transient(&e) && tries < TRANSIENT_RETRIES => {
                tries += 1;
                probes.transient_retries.increment(1);
                tracing::debug!(error = %e, tries, "transient database error; retrying the section");
                TRANSIENT_BACKOFF.sleep(tries).await;
            }
            done => return done,
        }
    }
}

/// For gates whose [`Attempt`] is always `Done`.
pub(crate) async fn run_to_outcome(
    db: &DatabaseConnection,
    book: Option<&SoldOutBook>,
    req: &ApplyRequest,
    gate: Gate,
    probes: &StrategyProbes,
) -> Result<ApplyOutcome, StrategyError> {
    match run_retrying(db, book, req, gate, probes).await? {
        Attempt::Done(outcome) => Ok(outcome),
        // only the versioned and fenced gates report these; other gates never get here
        Attempt::Conflict | Attempt::Fenced => Err(StrategyError::Contention { attempts: 1 }),
    }
}

/// A strategy that is nothing but the section behind one gate: the gate is the whole
/// mechanism, so one type serves all three (the factory picks the gate).
///
/// - `none` ([`Gate::ReadModifyWrite`]): the section with nothing around it. Two
///   transactions read the same `remaining`, both write back `remaining - 1`, and one
///   decrement is lost while both applications are kept — the over-allocation the other
///   strategies exist to prevent.
/// - `pessimistic-lock` ([`Gate::ForUpdate`]): every applicant of one event queues on the
///   stock row's lock inside the database — correct across any number of instances. On
///   SQLite the section's `BEGIN IMMEDIATE` write lock plays the same role.
/// - `db-atomic` ([`Gate::Atomic`]): what flash-sale systems do instead of locking — one
///   conditional `UPDATE … WHERE remaining > 0`; the database re-checks the condition under
///   its own row lock, so no separate lock or retry is needed.
#[derive(Debug)]
pub(crate) struct Gated {
    name: crate::StrategyName,
    gate: Gate,
    db: DatabaseConnection,
    book: Option<std::sync::Arc<SoldOutBook>>,
    probes: &'static StrategyProbes,
}

impl Gated {
    pub(crate) fn new(
        name: crate::StrategyName,
        gate: Gate,
        db: DatabaseConnection,
        book: Option<std::sync::Arc<SoldOutBook>>,
    ) -> Self {
        Self { name, gate, db, book, probes: crate::probes::probes(name) }
    }
}

/// The registry's constructor for `none` (no shortcut inside: it shows the race).
pub(crate) async fn build_no_control(parts: &Parts<'_>) -> Result<Arc<dyn ConcurrencyStrategy>, BuildError> {
    Ok(Arc::new(Gated::new(parts.name, Gate::ReadModifyWrite, parts.db.clone(), None)))
}

/// The registry's constructor for `pessimistic-lock`.
pub(crate) async fn build_pessimistic(parts: &Parts<'_>) -> Result<Arc<dyn ConcurrencyStrategy>, BuildError> {
    Ok(Arc::new(Gated::new(parts.name, Gate::ForUpdate, parts.db.clone(), parts.book.clone())))
}

/// The registry's constructor for `db-atomic`.
pub(crate) async fn build_db_atomic(parts: &Parts<'_>) -> Result<Arc<dyn ConcurrencyStrategy>, BuildError> {
    Ok(Arc::new(Gated::new(parts.name, Gate::Atomic, parts.db.clone(), parts.book.clone())))
}

#[async_trait::async_trait]
impl crate::ConcurrencyStrategy for Gated {
    fn name(&self) -> crate::StrategyName {
        self.name
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        run_to_outcome(&self.db, self.book.as_deref(), request, self.gate, self.probes).await
    }
}

/// The section's steps on an in-memory SQLite database: no service needed.
#[cfg(test)]
pub(crate) mod tests;
