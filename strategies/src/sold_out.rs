//! The sold-out shortcut: once an event is seen sold out, answer without the lock.
//!
//! Stock only goes down (there is no cancellation), so a committed `remaining = 0` is final:
//! from then on every application to that event is either `already_applied` (its reader
//! holds one of the copies) or `sold_out`, whatever any instance does. And because every
//! strategy stores a winner in the same transaction as its decrement, the set of holders is
//! complete at that moment too. So an instance that has *read* `remaining = 0` from the
//! database can answer every later request from memory — a monotonic fact, correct across
//! instances without any coordination, that takes the losers (a hundred for every winner
//! in a flash sale) off the hot row, the lock and the broker.
//!
//! Learning happens after a strategy answered `sold_out`: one query confirms the committed
//! stock is zero (a Redis counter can say "sold out" while the last winners are still being
//! written) and one loads the holders. `concurrency.sold_out_shortcut = false` turns the
//! whole thing off so the lock comparison can be run without it.
//!
//! [`Shortcut`] wraps any strategy (a behaviour shared by wrapping, not by copying);
//! strategies that make requests queue (`app-mutex`, `redis-lock`) also ask the same
//! [`SoldOutBook`] after their queue, because the event may have sold out while they waited.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
};

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::{ApplyOutcome, ApplyRequest, ConcurrencyStrategy, StrategyError, StrategyName, schema::stmt};

/// Holders kept in memory per sold-out event; beyond this (a very large event) the
/// "does this reader hold a copy" question goes to the database's unique index instead.
const MAX_HOLDERS: usize = 100_000;

/// Sold-out events remembered; when full, the book starts over (it only costs a re-learn).
const MAX_EVENTS: usize = 1_024;

/// What is known about one sold-out event.
#[derive(Debug)]
struct Settled {
    /// The readers holding a copy; `None` when there were too many to keep.
    holders: Option<HashSet<i64>>,
}

/// The sold-out events this process has confirmed, and their holders.
#[derive(Debug)]
pub(crate) struct SoldOutBook {
    db: DatabaseConnection,
    // std locks: held only to read or insert an entry, never across an `.await`.
    events: RwLock<HashMap<i64, Arc<Settled>>>,
    /// Events being learned right now (one query per event, not one per loser).
    learning: Mutex<HashSet<i64>>,
}

impl SoldOutBook {
    pub(crate) fn new(db: DatabaseConnection) -> Self {
        Self { db, events: RwLock::default(), learning: Mutex::default() }
    }

    /// The final answer for `request` when its event is known sold out, else `None`.
    pub(crate) async fn answer(&self, request: &ApplyRequest) -> Result<Option<ApplyOutcome>, StrategyError> {
        let Some(settled) = self.settled(request.event_id) else { return Ok(None) };
        let holds = match &settled.holders {
            Some(holders) => holders.contains(&request.user_id),
            None => {
                let sql = "SELECT 1 FROM applications WHERE event_id = ? AND user_id = ?";
                let values = vec![request.event_id.into(), request.user_id.into()];
                self.db.query_one_raw(stmt(self.db.get_database_backend(), sql, values)).await?.is_some()
            }
        };
        Ok(Some(if holds { ApplyOutcome::AlreadyApplied } else { ApplyOutcome::SoldOut }))
    }

    /// As [`SoldOutBook::answer`] from memory alone (`None` also when the holders of a very
    /// large event are not kept): for callers that already hold a pooled connection and
    /// must not wait for a second one.
    pub(crate) fn answer_from_memory(&self, request: &ApplyRequest) -> Option<ApplyOutcome> {
        let holders =
            self.settled(request.event_id)?.holders.as_ref().map(|h| h.contains(&request.user_id))?;
        Some(if holders { ApplyOutcome::AlreadyApplied } else { ApplyOutcome::SoldOut })
    }

    fn settled(&self, event_id: i64) -> Option<Arc<Settled>> {
        self.events.read().unwrap_or_else(|p| p.into_inner()).get(&event_id).cloned()
    }

    /// After a strategy answered `sold_out` for `event_id`: confirm it in the database and,
    /// when the committed stock is zero, remember the event and its holders. Failures are
    /// only logged — the shortcut is an optimisation, the strategy already answered.
    pub(crate) async fn learn(&self, event_id: i64) {
        self.learn_with(&self.db, event_id, None).await;
    }

    /// As [`SoldOutBook::learn`], on a connection the caller holds — the losing section's
    /// own transaction, so the first loser teaches the book without queueing for another
    /// pooled connection behind everyone else. Within one transaction the stock and the
    /// holders are read from one snapshot, and any committed `remaining = 0` is final.
    /// `not_holding`: the reader whose own uncommitted application that transaction can see
    /// (the section records first and rolls back on `sold_out`), left out of the holders.
    pub(crate) async fn learn_with<C: ConnectionTrait>(
        &self,
        conn: &C,
        event_id: i64,
        not_holding: Option<i64>,
    ) {
        if self.settled(event_id).is_some() {
            return;
        }
        if !self.learning.lock().unwrap_or_else(|p| p.into_inner()).insert(event_id) {
            return; // another request is learning it
        }
        match load(conn, event_id, not_holding).await {
            Ok(Some(settled)) => {
                let mut events = self.events.write().unwrap_or_else(|p| p.into_inner());
                if events.len() >= MAX_EVENTS {
                    events.clear();
                }
                events.insert(event_id, Arc::new(settled));
            }
            Ok(None) => {} // not sold out in the database yet (a Redis counter ran ahead)
            Err(e) => tracing::warn!(error = %e, event_id, "sold-out shortcut: could not load the event"),
        }
        self.learning.lock().unwrap_or_else(|p| p.into_inner()).remove(&event_id);
    }
}

async fn load<C: ConnectionTrait>(
    conn: &C,
    event_id: i64,
    not_holding: Option<i64>,
) -> Result<Option<Settled>, sea_orm::DbErr> {
    let backend = conn.get_database_backend();
    // Read the stock first: once it is zero, every winner is committed (each in the
    // transaction of its decrement), so the holder list read next is complete.
    match crate::schema::remaining(conn, event_id).await? {
        Some(remaining) if remaining <= 0 => {}
        _ => return Ok(None),
    }
    let sql = format!(
        "SELECT user_id FROM applications WHERE event_id = ? AND user_id <> ? LIMIT {}",
        MAX_HOLDERS + 1
    );
    // user ids are positive, so -1 leaves nobody out
    let values = vec![event_id.into(), not_holding.unwrap_or(-1).into()];
    let rows = conn.query_all_raw(stmt(backend, &sql, values)).await?;
    if rows.len() > MAX_HOLDERS {
        return Ok(Some(Settled { holders: None }));
    }
    let holders = rows.iter().map(|r| r.try_get_by_index::<i64>(0)).collect::<Result<_, _>>()?;
    Ok(Some(Settled { holders: Some(holders) }))
}

/// Any strategy behind the sold-out shortcut.
#[derive(Debug)]
pub(crate) struct Shortcut {
    inner: Arc<dyn ConcurrencyStrategy>,
    book: Arc<SoldOutBook>,
    probes: &'static crate::probes::StrategyProbes,
}

impl Shortcut {
    pub(crate) fn new(inner: Arc<dyn ConcurrencyStrategy>, book: Arc<SoldOutBook>) -> Self {
        let probes = crate::probes::probes(inner.name());
        Self { inner, book, probes }
    }
}

#[async_trait]
impl ConcurrencyStrategy for Shortcut {
    fn name(&self) -> StrategyName {
        self.inner.name()
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        if let Some(outcome) = self.book.answer(request).await? {
            self.probes.shortcut.increment(1);
            return Ok(outcome);
        }
        let outcome = self.inner.apply(request).await?;
        if outcome == ApplyOutcome::SoldOut {
            self.book.learn(request.event_id).await;
        }
        Ok(outcome)
    }

    fn wrapped(&self) -> Option<&dyn ConcurrencyStrategy> {
        Some(self.inner.as_ref())
    }
}
