//! The one critical section every database strategy runs, and the ways its stock step can
//! be guarded (`Gate`). A strategy decides the gate and what surrounds the section (a mutex,
//! a retry loop); the steps themselves never differ, so the strategies are comparable.

use chrono::Utc;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, IsolationLevel,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use std::sync::Arc;

use crate::{
    ApplyOutcome, ApplyRequest, BuildError, ConcurrencyStrategy, StrategyError,
    backoff::Backoff,
    dberr::{is_lock_wait_timeout, is_transient, is_unique_violation},
    outcomes::placeholders,
    probes::StrategyProbes,
    registry::Parts,
    schema::stmt,
    sold_out::SoldOutBook,
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

/// Runs the section once inside its own transaction.
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
        let backend = tx.get_database_backend();
        let attempt = steps(&tx, backend, req, gate, Some(probes)).await?;
        match attempt {
            Attempt::Done(ApplyOutcome::Won { .. }) => tx.commit().await?,
            Attempt::Done(ApplyOutcome::SoldOut) => {
                if let Some(book) = book {
                    book.learn_with(&tx, req.event_id, Some(req.user_id)).await;
                }
                tx.rollback().await?;
            }
            _ => tx.rollback().await?,
        }
        Ok(attempt)
    }
    .await;
    probes.section.record(began.elapsed().as_secs_f64());
    attempt
}

/// The fencing check of the Redis lock's holder of `token`: `false` when a newer holder
/// already wrote (then this one writes nothing). It also takes the stock row's lock.
async fn fence(tx: &DatabaseTransaction, backend: DbBackend, event: i64, token: i64) -> Result<bool, DbErr> {
    let sql = "UPDATE event_stock SET fence_token = ? WHERE event_id = ? AND fence_token < ?";
    let res = tx.execute_raw(stmt(backend, sql, vec![token.into(), event.into(), token.into()])).await?;
    Ok(res.rows_affected() > 0)
}

/// Steps 1 and 2 of [`steps`]: the fencing check (Redis lock only), then the stock read
/// (locking the row for the pessimistic gate).
/// `Ok(None)`: fenced out — a newer lock holder already wrote, and this one writes nothing.
async fn fence_and_read(
    tx: &DatabaseTransaction,
    backend: DbBackend,
    event: i64,
    gate: Gate,
) -> Result<Option<(i32, i64)>, DbErr> {
    let fenced_out = match gate {
        Gate::Fenced(token) => !fence(tx, backend, event, token).await?,
        _ => false,
    };
    let lock = if gate == Gate::ForUpdate && backend == DbBackend::MySql { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT remaining, version FROM event_stock WHERE event_id = ?{lock}");
    let Some(row) = tx.query_one_raw(stmt(backend, &sql, vec![event.into()])).await? else {
        return Err(DbErr::RecordNotFound(format!("event_stock {event}")));
    };
    if fenced_out {
        return Ok(None);
    }
    Ok(Some((row.try_get_by_index::<i32>(0)?, row.try_get_by_index::<i64>(1)?)))
}

/// The section's steps, with as few statements as the gate allows while the stock row is
/// held. The application is recorded *first*, before the row is touched: the unique index
/// on `(event_id, user_id)` is the duplicate check (a reader who already holds a copy, or a
/// concurrent twin, fails the insert and never queues for the row), and the row is then
/// held only for the stock read (none for the atomic gate), the decrement and the commit —
/// one round trip fewer under the lock than inserting last. A request that finds no copy
/// left, or loses the version race, gets its insert undone by the caller's rollback (so
/// its transaction sees its own uncommitted row: see `SoldOutBook::learn_with`).
///
/// With `probes`, the statement that waits for the stock row's lock is timed as lock wait:
/// the `SELECT … FOR UPDATE` of the pessimistic gate, the conditional `UPDATE` of the
/// atomic one.
pub(crate) async fn steps(
    tx: &DatabaseTransaction,
    backend: DbBackend,
    req: &ApplyRequest,
    gate: Gate,
    probes: Option<&StrategyProbes>,
) -> Result<Attempt, DbErr> {
    let event = req.event_id;
    // 0. record the application (undone by the rollback unless a copy is taken below)
    let sql = "INSERT INTO applications (event_id, user_id, request_id, status, created_at) \
               VALUES (?, ?, ?, 'won', ?)";
    let values = vec![event.into(), req.user_id.into(), req.request_id.clone().into(), Utc::now().into()];
    let application_id = match tx.execute_raw(stmt(backend, sql, values)).await {
        Ok(res) => i64::try_from(res.last_insert_id()).unwrap_or(i64::MAX),
        Err(e) if is_unique_violation(&e) => return Ok(Attempt::Done(ApplyOutcome::AlreadyApplied)),
        Err(e) => return Err(e),
    };

    // 1–2. fence (Redis lock only) and read the stock; the atomic gate needs neither
    let (remaining, version) = if gate == Gate::Atomic {
        (1, 0)
    } else {
        let reading = std::time::Instant::now();
        let stock = fence_and_read(tx, backend, event, gate).await?;
        if let (Gate::ForUpdate, Some(probes)) = (gate, probes) {
            probes.waited(reading.elapsed());
        }
        match stock {
            Some(stock) => stock,
            None => return Ok(Attempt::Fenced),
        }
    };
    // the insert succeeded, so this reader holds no copy: losing here is `sold_out`
    if remaining <= 0 {
        return Ok(Attempt::Done(ApplyOutcome::SoldOut));
    }

    // 3. take a copy, as the gate says
    let (sql, values) = match gate {
        Gate::ReadModifyWrite | Gate::ForUpdate | Gate::Fenced(_) => (
            "UPDATE event_stock SET remaining = ?, version = version + 1 WHERE event_id = ?",
            vec![(remaining - 1).into(), event.into()],
        ),
        // MariaDB: never wait for the row. A row locked by another writer is a version that
        // is about to move, so it is a conflict like any other (`SET STATEMENT … FOR` scopes
        // the zero wait to this one statement). Waiting instead queues every loser of a
        // round behind the winner and then behind each other, one lock hand-over each.
        Gate::Versioned if backend == DbBackend::MySql => (
            "SET STATEMENT innodb_lock_wait_timeout = 0 FOR \
             UPDATE event_stock SET remaining = remaining - 1, version = version + 1 \
             WHERE event_id = ? AND version = ?",
            vec![event.into(), version.into()],
        ),
        Gate::Versioned => (
            "UPDATE event_stock SET remaining = remaining - 1, version = version + 1 \
             WHERE event_id = ? AND version = ?",
            vec![event.into(), version.into()],
        ),
        Gate::Atomic => (
            "UPDATE event_stock SET remaining = remaining - 1, version = version + 1 \
             WHERE event_id = ? AND remaining > 0",
            vec![event.into()],
        ),
    };
    let updating = std::time::Instant::now();
    let updated = match tx.execute_raw(stmt(backend, sql, values)).await {
        Ok(res) => res.rows_affected(),
        Err(e) if gate == Gate::Versioned && is_lock_wait_timeout(&e) => return Ok(Attempt::Conflict),
        Err(e) => return Err(e),
    };
    if let (Gate::Atomic, Some(probes)) = (gate, probes) {
        probes.waited(updating.elapsed());
    }
    if updated == 0 {
        return Ok(match gate {
            Gate::Versioned => Attempt::Conflict,
            Gate::Atomic => {
                // sold out, or no such event: tell them apart only now, off the hot path
                let sql = "SELECT 1 FROM event_stock WHERE event_id = ?";
                if tx.query_one_raw(stmt(backend, sql, vec![event.into()])).await?.is_none() {
                    return Err(DbErr::RecordNotFound(format!("event_stock {event}")));
                }
                Attempt::Done(ApplyOutcome::SoldOut)
            }
            _ => Attempt::Done(ApplyOutcome::SoldOut),
        });
    }
    Ok(Attempt::Done(ApplyOutcome::Won { application_id }))
}

/// What one batch of the section produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BatchAttempt {
    /// One outcome per applicant, in their order.
    Done(Vec<ApplyOutcome>),
    /// Fenced gate only: a newer lock holder already wrote; nothing was written.
    Fenced,
}

/// One application of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applicant<'a> {
    pub(crate) event: i64,
    pub(crate) user: i64,
    pub(crate) request_id: &'a str,
}

/// The section for many applications (to any number of events) in one pass, decided in
/// the order given: the same steps as [`steps`] — fence, read the stock, reject readers
/// who already hold a copy, decrement, record the winners — but one statement per step for
/// the whole batch (one decrement per event) instead of a transaction per application.
/// An event without a stock row answers `sold_out` (the API checked it before producing).
///
/// For a consumer that owns its partition (its log order *is* the serialisation): the
/// stock is read and written back, so only [`Gate::ReadModifyWrite`] under partition
/// ownership or [`Gate::Fenced`] under the lock (`tokens`: event → fencing token) are
/// correct here.
pub(crate) async fn steps_batch(
    tx: &DatabaseTransaction,
    backend: DbBackend,
    applicants: &[Applicant<'_>],
    tokens: &std::collections::BTreeMap<i64, i64>,
) -> Result<BatchAttempt, DbErr> {
    use std::collections::{BTreeSet, HashMap, HashSet};

    let events: BTreeSet<i64> = applicants.iter().map(|a| a.event).collect();
    if events.is_empty() {
        return Ok(BatchAttempt::Done(Vec::new()));
    }
    let event_list = placeholders(events.len());
    let event_values = || events.iter().map(|e| (*e).into());

    // 0. the fencing check, per event (Redis lock only)
    let mut fenced_out = BTreeSet::new();
    for (&event, &token) in tokens.iter().filter(|(e, _)| events.contains(e)) {
        if !fence(tx, backend, event, token).await? {
            fenced_out.insert(event);
        }
    }
    // 1. the stock of every event
    let sql = format!("SELECT event_id, remaining FROM event_stock WHERE event_id IN ({event_list})");
    let mut left: HashMap<i64, i32> = HashMap::new();
    for row in tx.query_all_raw(stmt(backend, &sql, event_values().collect())).await? {
        left.insert(row.try_get_by_index(0)?, row.try_get_by_index(1)?);
    }
    if fenced_out.iter().any(|e| left.contains_key(e)) {
        return Ok(BatchAttempt::Fenced);
    }

    // 2. readers of this batch who already hold a copy (the IN lists over-select; the
    //    pairs are checked below)
    let users: BTreeSet<i64> = applicants.iter().map(|a| a.user).collect();
    let sql = format!(
        "SELECT event_id, user_id FROM applications WHERE event_id IN ({event_list}) AND user_id IN ({})",
        placeholders(users.len())
    );
    let values = event_values().chain(users.iter().map(|u| (*u).into())).collect();
    let mut holders: HashSet<(i64, i64)> = HashSet::new();
    for row in tx.query_all_raw(stmt(backend, &sql, values)).await? {
        holders.insert((row.try_get_by_index(0)?, row.try_get_by_index(1)?));
    }

    // 3. decide in order
    let mut winners = Vec::new();
    let mut taken: HashMap<i64, i64> = HashMap::new();
    let mut outcomes: Vec<ApplyOutcome> = applicants
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if holders.contains(&(a.event, a.user)) {
                return ApplyOutcome::AlreadyApplied;
            }
            match left.get_mut(&a.event) {
                Some(stock) if *stock > 0 => {
                    *stock -= 1;
                    *taken.entry(a.event).or_default() += 1;
                    holders.insert((a.event, a.user));
                    winners.push(i);
                    ApplyOutcome::Won { application_id: 0 } // the id is filled in below
                }
                _ => ApplyOutcome::SoldOut,
            }
        })
        .collect();
    if winners.is_empty() {
        return Ok(BatchAttempt::Done(outcomes));
    }

    // 4. take the copies (one write per event) and record the winners in one insert; a
    //    concurrent twin of a reader fails it on the unique index and the caller runs the
    //    batch again (then the twin is seen in step 2)
    for (event, count) in &taken {
        let remaining = left.get(event).copied().unwrap_or(0);
        let sql = "UPDATE event_stock SET remaining = ?, version = version + ? WHERE event_id = ?";
        tx.execute_raw(stmt(backend, sql, vec![remaining.into(), (*count).into(), (*event).into()])).await?;
    }
    let rows = vec!["(?, ?, ?, 'won', ?)"; winners.len()].join(", ");
    let sql =
        format!("INSERT INTO applications (event_id, user_id, request_id, status, created_at) VALUES {rows}");
    let now = Utc::now();
    let mut values = Vec::with_capacity(winners.len() * 4);
    for &i in &winners {
        let a = applicants[i];
        values.extend([a.event.into(), a.user.into(), a.request_id.into(), now.into()]);
    }
    tx.execute_raw(stmt(backend, &sql, values)).await?;

    // 5. the ids, which order the winners (a multi-row insert's ids cannot be read back
    //    portably)
    let sql = format!(
        "SELECT event_id, user_id, id FROM applications WHERE event_id IN ({event_list}) AND user_id IN ({})",
        placeholders(winners.len())
    );
    let values = event_values().chain(winners.iter().map(|&i| applicants[i].user.into())).collect();
    let mut ids: HashMap<(i64, i64), i64> = HashMap::new();
    for row in tx.query_all_raw(stmt(backend, &sql, values)).await? {
        ids.insert((row.try_get_by_index(0)?, row.try_get_by_index(1)?), row.try_get_by_index(2)?);
    }
    for &i in &winners {
        let a = applicants[i];
        let id = ids.get(&(a.event, a.user)).copied().ok_or_else(|| {
            DbErr::Custom(format!("the application just stored for user {} is missing", a.user))
        })?;
        outcomes[i] = ApplyOutcome::Won { application_id: id };
    }
    Ok(BatchAttempt::Done(outcomes))
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
    let mut tries = 0;
    loop {
        match run(db, book, req, gate, probes).await {
            Ok(attempt) => return Ok(attempt),
            Err(DbErr::RecordNotFound(_)) => return Err(StrategyError::UnknownEvent(req.event_id)),
            Err(e) if is_transient(&e) && tries < TRANSIENT_RETRIES => {
                tries += 1;
                probes.transient_retries.increment(1);
                tracing::debug!(error = %e, tries, "transient database error; retrying the section");
                TRANSIENT_BACKOFF.sleep(tries).await;
            }
            Err(e) => return Err(e.into()),
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
mod tests;
