//! `group-commit`: per event and per process, the applications that arrive while one batch
//! is committing are decided together in the next transaction.
//!
//! Every other database strategy passes the event's stock row one transaction per
//! application, so its winners are bounded by 1 / (time the row is held). Here a request
//! joins its event's queue; whoever finds no batch in flight starts the event's *leader*,
//! a task of its own (so a request that goes away never stops it). The leader takes up to
//! `max_batch` queued applications in arrival order and runs the one section for all of them
//! ([`section::steps`], the same steps the Kafka consumers run for a fetched batch): one
//! multi-row insert (the unique index rejects duplicates), the stock row locked once
//! (`SELECT … FOR UPDATE`), at most `remaining` winners in arrival order, one decrement, one
//! commit — then it answers every request of the batch. While it commits, the next batch
//! forms. Across processes the row lock still serialises batches, so the guarantee reaches
//! any number of instances, as `pessimistic-lock`'s does.
//!
//! Bounded: a request that is still queued after `queue_timeout_ms` leaves the queue and
//! answers 503 with nothing written (one already in a batch waits for that batch's commit,
//! which is bounded by the database's own timeouts); a database error answers the whole
//! batch with it, nothing written; a leader that panics drops its waiters' answer channels,
//! so they answer 503 instead of waiting forever, and the next request starts a new leader.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::{
    ApplyOutcome, ApplyRequest, Backend, BuildError, ConcurrencyStrategy, StrategyError, StrategyName,
    probes::{StrategyProbes, probes},
    registry::Parts,
    section::{self, Applicant, Batch, Ending, Gate, Gates},
    sold_out::SoldOutBook,
};

/// Settings of `group-commit`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct GroupCommitConfig {
    /// The most applications one transaction decides (at least 1). Larger batches hold the
    /// row longer but pass it fewer times.
    pub max_batch: usize,
    /// How long a request may wait in its event's queue before it answers 503 (nothing
    /// written).
    pub queue_timeout_ms: u64,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        Self { max_batch: 500, queue_timeout_ms: 10_000 }
    }
}

/// The registry's constructor.
pub(crate) async fn build(parts: &Parts<'_>) -> Result<Arc<dyn ConcurrencyStrategy>, BuildError> {
    Ok(Arc::new(GroupCommit {
        shared: Arc::new(Shared {
            db: parts.db.clone(),
            book: parts.book.clone(),
            probes: probes(StrategyName::GroupCommit),
            config: parts.config.group_commit.clone(),
            queues: Mutex::default(),
            tickets: AtomicU64::new(0),
        }),
    }))
}

/// Per-event queues, each drained by one leader task at a time.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    db: DatabaseConnection,
    /// The sold-out shortcut, asked again when a batch is taken (the event may have sold
    /// out while it queued) and taught after a batch that saw the stock run out.
    book: Option<Arc<SoldOutBook>>,
    probes: &'static StrategyProbes,
    config: GroupCommitConfig,
    // A std mutex: held only to queue, take or withdraw, never across an `.await`.
    queues: Mutex<HashMap<i64, Queue>>,
    tickets: AtomicU64,
}

/// One event's waiting applications, and whether a leader is draining them.
#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<Waiter>,
    leading: bool,
}

/// A queued application and where its answer goes.
#[derive(Debug)]
struct Waiter {
    ticket: u64,
    user: i64,
    request_id: String,
    answer: oneshot::Sender<Result<ApplyOutcome, StrategyError>>,
}

#[async_trait]
impl ConcurrencyStrategy for GroupCommit {
    fn name(&self) -> StrategyName {
        StrategyName::GroupCommit
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        let (ticket, mut answer) = self.shared.join(request);
        let bound = Duration::from_millis(self.shared.config.queue_timeout_ms);
        let answered = match tokio::time::timeout(bound, &mut answer).await {
            Ok(answered) => answered,
            Err(_) if self.shared.withdraw(request.event_id, ticket) => {
                return Err(StrategyError::LockTimeout { waited_ms: self.shared.config.queue_timeout_ms });
            }
            // already taken into a batch: its answer comes with that batch's commit
            Err(_) => answer.await,
        };
        answered.unwrap_or_else(|_| {
            Err(StrategyError::Unavailable(Backend::Database, "the batch's leader stopped".into()))
        })
    }
}

impl Shared {
    fn queues(&self) -> MutexGuard<'_, HashMap<i64, Queue>> {
        // A poisoned map only means a thread panicked while holding it; the queues
        // themselves are still consistent (every change is one push, drain or remove).
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `request`, starting the event's leader if none is running.
    fn join(
        self: &Arc<Self>,
        request: &ApplyRequest,
    ) -> (u64, oneshot::Receiver<Result<ApplyOutcome, StrategyError>>) {
        let (answer, receiver) = oneshot::channel();
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let waiter = Waiter { ticket, user: request.user_id, request_id: request.request_id.clone(), answer };
        let start_leader = {
            let mut queues = self.queues();
            let queue = queues.entry(request.event_id).or_default();
            queue.waiting.push_back(waiter);
            !std::mem::replace(&mut queue.leading, true)
        };
        if start_leader {
            tokio::spawn(lead(Arc::clone(self), request.event_id));
        }
        (ticket, receiver)
    }

    /// Takes `ticket` out of the event's queue; `false` when a leader already took it.
    fn withdraw(&self, event: i64, ticket: u64) -> bool {
        let mut queues = self.queues();
        let Some(queue) = queues.get_mut(&event) else { return false };
        let before = queue.waiting.len();
        queue.waiting.retain(|w| w.ticket != ticket);
        queue.waiting.len() < before
    }

    /// The next batch of the event, or `None` (and the queue gone) when nobody waits.
    fn next_batch(&self, event: i64) -> Option<Vec<Waiter>> {
        let mut queues = self.queues();
        let queue = queues.get_mut(&event)?;
        if queue.waiting.is_empty() {
            queues.remove(&event);
            return None;
        }
        let take = queue.waiting.len().min(self.config.max_batch.max(1));
        Some(queue.waiting.drain(..take).collect())
    }

    /// Decides one batch and answers each of its requests.
    async fn decide(&self, event: i64, batch: Vec<Waiter>) {
        let mut fresh = Vec::with_capacity(batch.len());
        for waiter in batch {
            let request = ApplyRequest { event_id: event, user_id: waiter.user, request_id: String::new() };
            match self.book.as_ref().and_then(|b| b.answer_from_memory(&request)) {
                Some(outcome) => drop(waiter.answer.send(Ok(outcome))),
                None => fresh.push(waiter),
            }
        }
        if fresh.is_empty() {
            return;
        }
        let applicants: Vec<Applicant<'_>> = fresh
            .iter()
            .map(|w| Applicant { event, user: w.user, request_id: w.request_id.as_str() })
            .collect();
        let decided = section::retry_transient(self.probes, || self.transact(event, &applicants)).await;
        match decided {
            Ok(outcomes) => {
                for (waiter, outcome) in fresh.into_iter().zip(outcomes) {
                    // a request that went away still has its allocation stored
                    drop(waiter.answer.send(Ok(outcome)));
                }
            }
            Err(DbErr::RecordNotFound(_)) => answer_all(fresh, &|| StrategyError::UnknownEvent(event)),
            Err(e) => {
                tracing::warn!(error = %e, event, count = fresh.len(), "group commit: batch failed, nothing written");
                let error = StrategyError::from(e);
                answer_all(fresh, &|| copy(&error));
            }
        }
    }

    /// One transaction for `applicants` (all of one event).
    async fn transact(&self, event: i64, applicants: &[Applicant<'_>]) -> Result<Vec<ApplyOutcome>, DbErr> {
        let began = Instant::now();
        let tx = section::begin_for(&self.db, Gate::ForUpdate).await?;
        let gates = Gates::All(Gate::ForUpdate);
        let outcomes =
            match section::steps(&tx, applicants, gates, Ending::RollbackUnlessWon, Some(self.probes)).await?
            {
                Batch::Done { unknown, .. } if !unknown.is_empty() => {
                    return Err(DbErr::RecordNotFound(format!("event_stock {event}")));
                }
                Batch::Done { outcomes, .. } => outcomes,
                Batch::Conflict | Batch::Fenced => {
                    return Err(DbErr::Custom("the locking gate reported a conflict".into()));
                }
            };
        if outcomes.iter().any(|o| matches!(o, ApplyOutcome::Won { .. })) {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        self.probes.section.record(began.elapsed().as_secs_f64());
        // Teach the book after the commit (an uncommitted zero is not a fact yet), so the
        // batches queued behind this one are answered from memory.
        if let Some(book) = &self.book
            && outcomes.contains(&ApplyOutcome::SoldOut)
        {
            book.learn(event).await;
        }
        Ok(outcomes)
    }
}

/// The event's leader: drains its queue a batch at a time until nobody waits.
async fn lead(shared: Arc<Shared>, event: i64) {
    let _leading = Leading { shared: Arc::clone(&shared), event };
    while let Some(batch) = shared.next_batch(event) {
        shared.decide(event, batch).await;
    }
}

/// Ends a leader's turn even when it panics: its queue goes (each waiter's answer channel
/// is dropped, so it answers 503 rather than waiting forever) and the next request starts
/// a new leader. After a normal end the queue is already gone.
struct Leading {
    shared: Arc<Shared>,
    event: i64,
}

impl Drop for Leading {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.queues().remove(&self.event);
        }
    }
}

fn answer_all(waiters: Vec<Waiter>, error: &dyn Fn() -> StrategyError) {
    for waiter in waiters {
        drop(waiter.answer.send(Err(error())));
    }
}

/// The same error for every request of a failed batch (a database error is not `Clone`).
fn copy(error: &StrategyError) -> StrategyError {
    match error {
        StrategyError::UnknownEvent(event) => StrategyError::UnknownEvent(*event),
        StrategyError::Contention { attempts } => StrategyError::Contention { attempts: *attempts },
        StrategyError::LockTimeout { waited_ms } => StrategyError::LockTimeout { waited_ms: *waited_ms },
        StrategyError::Unavailable(backend, why) => StrategyError::Unavailable(*backend, why.clone()),
        StrategyError::Database(e) => StrategyError::Database(DbErr::Custom(e.to_string())),
    }
}

/// Queue mechanics and a race on an in-memory SQLite database: no service needed.
#[cfg(test)]
mod tests;
