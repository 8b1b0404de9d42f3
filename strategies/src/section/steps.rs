//! The section's steps, for one application or a batch of them — the same statements in
//! the same order either way:
//!
//! 0. **record** every application first, before any stock row is touched: one
//!    (multi-row) `INSERT IGNORE … RETURNING`. The unique index on `(event_id, user_id)` is
//!    the duplicate check — a row it ignores is a reader who already holds a copy, or a twin
//!    earlier in the same batch — so a duplicate never queues for the row, and the ids come
//!    back in arrival order;
//! 1. per event, in event order, the **fencing check** (Redis lock only) and the **stock
//!    read** (locking the row for the pessimistic gate; the atomic gate needs neither);
//! 2. **decide**: an event's first `remaining` recorded applications win, in their order;
//! 3. **take** the copies: one decrement per event, as the gate says;
//! 4. **undo the losers' rows**: the caller's rollback does it when nothing was won and the
//!    transaction is not kept ([`Ending::RollbackUnlessWon`]); otherwise one `DELETE`.
//!
//! So the stock row is held only from step 1 to the commit: for one application that is
//! the stock read, the decrement and the commit, one round trip fewer under the lock than
//! inserting last. The per-request strategies run one application per transaction; the
//! Kafka consumers run a fetched batch (any number of events), in log order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr};

use super::Gate;
use crate::{
    ApplyOutcome, dberr::is_lock_wait_timeout, outcomes::placeholders, probes::StrategyProbes, schema::stmt,
};

/// One application in the section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applicant<'a> {
    pub(crate) event: i64,
    pub(crate) user: i64,
    pub(crate) request_id: &'a str,
}

/// How each event's stock row is guarded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Gates<'a> {
    /// Every event behind one gate.
    All(Gate),
    /// A partition's consumer: [`Gate::Fenced`] with the Redis lock's token for an event
    /// that has one, read-modify-write for the others (owning the partition serialises
    /// them: its log order *is* the order of the section).
    Tokens(&'a BTreeMap<i64, i64>),
}

impl Gates<'_> {
    fn of(self, event: i64) -> Gate {
        match self {
            Gates::All(gate) => gate,
            Gates::Tokens(tokens) => tokens.get(&event).map_or(Gate::ReadModifyWrite, |t| Gate::Fenced(*t)),
        }
    }
}

/// What the caller does with the transaction after the section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Commits only when an application won, else rolls back (the per-request path): a
    /// batch without a winner needs no `DELETE` of its losers' rows.
    RollbackUnlessWon,
    /// Commits whatever happened (the consumer stores answers and its offset with it).
    Commit,
}

/// What the section decided for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Batch {
    /// One outcome per applicant, in their order. An event without a stock row answers
    /// `sold_out` and is listed in `unknown` (the per-request path makes it an error).
    Done { outcomes: Vec<ApplyOutcome>, unknown: BTreeSet<i64> },
    /// Versioned gate only: the version moved; nothing was written.
    Conflict,
    /// Fenced gate only: a newer lock holder already wrote; nothing was written.
    Fenced,
}

/// Runs the section's steps for `applicants` inside `tx`.
///
/// With `probes`, the statement that waits for the stock row's lock is timed as lock
/// wait: the `SELECT … FOR UPDATE` of the pessimistic gate, the conditional `UPDATE` of
/// the atomic one.
// Long on purpose: the one critical section's five steps in order; the numbered comments are its
// outline.
pub(crate) async fn steps(
    tx: &DatabaseTransaction,
    applicants: &[Applicant<'_>],
    gates: Gates<'_>,
    ending: Ending,
    probes: Option<&StrategyProbes>,
) -> Result<Batch, DbErr> {
    let backend = tx.get_database_backend();
    // 0. record; the first applicant of each (event, user) whose row came back holds it
    let ids = record(tx, backend, applicants).await?;
    let mut outcomes = vec![ApplyOutcome::AlreadyApplied; applicants.len()];
    let mut candidates: BTreeMap<i64, Vec<(usize, i64)>> =
        applicants.iter().map(|a| (a.event, Vec::new())).collect();
    let mut claimed = HashSet::new();
    for (i, a) in applicants.iter().enumerate() {
        if let Some(&id) = ids.get(&(a.event, a.user))
            && claimed.insert((a.event, a.user))
        {
            candidates.entry(a.event).or_default().push((i, id));
        }
    }

    // 1–3. per event, in a fixed order (two batches never wait for each other's rows in a
    //      cycle): fence, read, decide, take
    let mut unknown = BTreeSet::new();
    let mut losers = Vec::new();
    let mut won = false;
    for (&event, recorded) in &candidates {
        let gate = gates.of(event);
        // an event whose applicants all hold a copy already writes nothing (a fenced one
        // is still checked: a stale lock holder must not store even those answers)
        if recorded.is_empty() && !matches!(gate, Gate::Fenced(_)) {
            continue;
        }
        let taken = match take(tx, backend, event, gate, recorded.len(), probes).await? {
            Take::Took(n) => n,
            Take::Unknown => {
                unknown.insert(event);
                0
            }
            Take::Conflict => return Ok(Batch::Conflict),
            Take::Fenced => return Ok(Batch::Fenced),
        };
        for (rank, &(i, id)) in recorded.iter().enumerate() {
            if rank < taken {
                outcomes[i] = ApplyOutcome::Won { application_id: id };
                won = true;
            } else {
                outcomes[i] = ApplyOutcome::SoldOut;
                losers.push(id);
            }
        }
    }

    // 4. undo the losers' rows, unless the caller's rollback does
    if !losers.is_empty() && (won || ending == Ending::Commit) {
        let sql = format!("DELETE FROM applications WHERE id IN ({})", placeholders(losers.len()));
        tx.execute_raw(stmt(backend, &sql, losers.into_iter().map(Into::into).collect())).await?;
    }
    Ok(Batch::Done { outcomes, unknown })
}

/// Step 0: inserts every applicant's row in one statement and returns the ids of the rows
/// stored, by `(event, user)`. Rows the unique indexes reject are skipped, not errors.
async fn record(
    tx: &DatabaseTransaction,
    backend: DbBackend,
    applicants: &[Applicant<'_>],
) -> Result<HashMap<(i64, i64), i64>, DbErr> {
    if applicants.is_empty() {
        return Ok(HashMap::new());
    }
    let ignore = if backend == DbBackend::Sqlite { "OR IGNORE" } else { "IGNORE" };
    let rows = vec!["(?, ?, ?, 'won', ?)"; applicants.len()].join(", ");
    let sql = format!(
        "INSERT {ignore} INTO applications (event_id, user_id, request_id, status, created_at) \
         VALUES {rows} RETURNING id, event_id, user_id"
    );
    let now = Utc::now();
    let mut values = Vec::with_capacity(applicants.len() * 4);
    for a in applicants {
        values.extend([a.event.into(), a.user.into(), a.request_id.into(), now.into()]);
    }
    let mut ids = HashMap::with_capacity(applicants.len());
    for row in tx.query_all_raw(stmt(backend, &sql, values)).await? {
        let id: i64 = row.try_get_by_index(0)?;
        ids.insert((row.try_get_by_index(1)?, row.try_get_by_index(2)?), id);
    }
    Ok(ids)
}

/// What steps 1–3 did to one event's stock.
enum Take {
    /// This many copies were taken (fewer than asked: sold out).
    Took(usize),
    /// The event has no stock row; nothing was written.
    Unknown,
    /// Versioned gate only: the version moved.
    Conflict,
    /// Fenced gate only: a newer lock holder already wrote.
    Fenced,
}

/// Steps 1–3 for one event: up to `wanted` copies, as `gate` says.
// Long on purpose: fence, read, decide and take for one event are one sequence under one row lock;
// the gate's differences are kept side by side so they can be compared.
async fn take(
    tx: &DatabaseTransaction,
    backend: DbBackend,
    event: i64,
    gate: Gate,
    wanted: usize,
    probes: Option<&StrategyProbes>,
) -> Result<Take, DbErr> {
    // The atomic gate decides one application per statement; a batch of several for one
    // event reads the row under its lock instead (the per-request path sends one).
    if gate == Gate::Atomic && wanted == 1 {
        return take_one_atomically(tx, backend, event, probes).await;
    }
    let gate = if gate == Gate::Atomic { Gate::ForUpdate } else { gate };

    // 1. fence (Redis lock only) and read the stock
    let reading = std::time::Instant::now();
    let fenced_out = match gate {
        Gate::Fenced(token) => !fence(tx, backend, event, token).await?,
        _ => false,
    };
    let lock = if gate == Gate::ForUpdate && backend == DbBackend::MySql { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT remaining, version FROM event_stock WHERE event_id = ?{lock}");
    let Some(row) = tx.query_one_raw(stmt(backend, &sql, vec![event.into()])).await? else {
        return Ok(Take::Unknown);
    };
    if let (Gate::ForUpdate, Some(probes)) = (gate, probes) {
        probes.waited(reading.elapsed());
    }
    if fenced_out {
        return Ok(Take::Fenced);
    }
    let remaining: i32 = row.try_get_by_index(0)?;
    let version: i64 = row.try_get_by_index(1)?;

    // 2. decide how many win
    let taken = wanted.min(usize::try_from(remaining).unwrap_or(0));
    if taken == 0 {
        return Ok(Take::Took(0));
    }
    let count = i64::try_from(taken).unwrap_or(i64::MAX);

    // 3. take them, as the gate says
    let (sql, values) = match gate {
        Gate::Versioned => (
            // MariaDB: never wait for the row. A row locked by another writer is a version
            // that is about to move, so it is a conflict like any other (`SET STATEMENT …
            // FOR` scopes the zero wait to this one statement). Waiting instead queues every
            // loser of a round behind the winner and then behind each other.
            if backend == DbBackend::MySql {
                "SET STATEMENT innodb_lock_wait_timeout = 0 FOR \
                 UPDATE event_stock SET remaining = remaining - ?, version = version + ? \
                 WHERE event_id = ? AND version = ?"
            } else {
                "UPDATE event_stock SET remaining = remaining - ?, version = version + ? \
                 WHERE event_id = ? AND version = ?"
            },
            vec![count.into(), count.into(), event.into(), version.into()],
        ),
        _ => (
            "UPDATE event_stock SET remaining = ?, version = version + ? WHERE event_id = ?",
            vec![(i64::from(remaining) - count).into(), count.into(), event.into()],
        ),
    };
    match tx.execute_raw(stmt(backend, sql, values)).await {
        Ok(res) if gate == Gate::Versioned && res.rows_affected() == 0 => Ok(Take::Conflict),
        Ok(_) => Ok(Take::Took(taken)),
        Err(e) if gate == Gate::Versioned && is_lock_wait_timeout(&e) => Ok(Take::Conflict),
        Err(e) => Err(e),
    }
}

/// The atomic gate for one application: `UPDATE … WHERE remaining > 0`, the database's
/// own row lock and re-check; no read first.
async fn take_one_atomically(
    tx: &DatabaseTransaction,
    backend: DbBackend,
    event: i64,
    probes: Option<&StrategyProbes>,
) -> Result<Take, DbErr> {
    let sql = "UPDATE event_stock SET remaining = remaining - 1, version = version + 1 \
               WHERE event_id = ? AND remaining > 0";
    let updating = std::time::Instant::now();
    let updated = tx.execute_raw(stmt(backend, sql, vec![event.into()])).await?.rows_affected();
    if let Some(probes) = probes {
        probes.waited(updating.elapsed());
    }
    if updated > 0 {
        return Ok(Take::Took(1));
    }
    // sold out, or no such event: tell them apart only now, off the hot path
    let sql = "SELECT 1 FROM event_stock WHERE event_id = ?";
    Ok(match tx.query_one_raw(stmt(backend, sql, vec![event.into()])).await? {
        Some(_) => Take::Took(0),
        None => Take::Unknown,
    })
}

/// The fencing check of the Redis lock's holder of `token`: `false` when a newer holder
/// already wrote (then this one writes nothing). It also takes the stock row's lock.
async fn fence(tx: &DatabaseTransaction, backend: DbBackend, event: i64, token: i64) -> Result<bool, DbErr> {
    let sql = "UPDATE event_stock SET fence_token = ? WHERE event_id = ? AND fence_token < ?";
    let res = tx.execute_raw(stmt(backend, sql, vec![token.into(), event.into(), token.into()])).await?;
    Ok(res.rows_affected() > 0)
}
