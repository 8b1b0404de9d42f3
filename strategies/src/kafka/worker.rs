//! The consumer of one partition: allocate each record exactly once, in log order, a
//! fetched batch at a time.
//!
//! One database transaction holds a whole batch: the allocations (one pass of the section
//! for the whole batch, [`section::steps`]), every request's final answer, and the
//! next offset.
//! A crash anywhere before the commit means the batch is processed again on restart; after
//! it, never again. A record seen twice (producer retry, replayed key) finds its answer
//! already stored and only re-sends it. A failing batch is retried — never skipped —
//! because skipping would lose an accepted application. Answers go out after the commit, so
//! nobody is told "won" for an allocation that could still roll back.
//!
//! Why batches: the consumer owns its partition, so the log order already serialises the
//! records; one transaction per record would pay a commit (and, with the lock, a Redis
//! round trip) per reader for nothing. A batch is whatever the fetch returned, capped at
//! [`MAX_BATCH`], so under light load it is one record and nobody waits for a batch to fill.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use rskafka::{
    client::partition::{Compression, PartitionClient},
    record::Record,
};
use sea_orm::{DatabaseConnection, DbErr};

use super::{
    client::within,
    reader::PartitionReader,
    waiters::Waiters,
    wire::{ApplyMessage, ResultMessage},
};
use crate::{
    ApplyOutcome, ApplyRequest, Backend, StrategyError,
    backoff::Backoff,
    outcomes::{self, RequestResult},
    probes::{StrategyProbes, lag_gauge},
    redis_lock::RedisLock,
    section::{self, Applicant, Batch, Ending, Gates},
    sold_out::SoldOutBook,
};

/// Most records in one transaction (bounds statement sizes and lock hold time).
const MAX_BATCH: usize = 500;

/// Between retries of a failing batch.
const RETRY: Backoff = Backoff::from_millis(10, 1_000);

/// The events of `messages` whose answer is not known from memory.
fn open_events(messages: &[&ApplyMessage], remembered: &[Option<ApplyOutcome>]) -> BTreeSet<i64> {
    messages.iter().zip(remembered).filter(|(_, r)| r.is_none()).map(|(m, _)| m.event_id).collect()
}

/// Everything one partition's consumer needs.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    pub(crate) db: DatabaseConnection,
    pub(crate) topic: String,
    /// A client of its own: a broker answers one request per connection at a time, so a
    /// long-poll fetch on a shared connection would hold back every produce behind it.
    pub(crate) partition: Arc<PartitionClient>,
    /// Where answers for other processes go.
    pub(crate) results: Arc<PartitionClient>,
    pub(crate) waiters: Arc<Waiters>,
    pub(crate) origin: String,
    /// `kafka-redis-lock` with the lock on: the fenced Redis lock around each batch.
    pub(crate) lock: Option<Arc<RedisLock>>,
    /// The sold-out shortcut: records of an event it knows sold out are answered from
    /// memory, without the lock or the stock row.
    pub(crate) book: Option<Arc<SoldOutBook>>,
    pub(crate) deadline: Duration,
    pub(crate) max_wait_ms: i32,
    /// Its strategy's decision counters.
    pub(crate) probes: &'static StrategyProbes,
}

/// One fetched record: its offset and, when readable, the application in it.
type Entry = (i64, Option<ApplyMessage>);

impl Worker {
    fn partition_id(&self) -> i32 {
        self.partition.partition()
    }

    /// Consumes forever from the stored offset.
    pub(crate) async fn run(self) {
        let (topic, partition) = (self.topic.clone(), self.partition_id());
        let mut attempt = 0;
        let offset = loop {
            match outcomes::next_offset(&self.db, &topic, partition).await {
                Ok(offset) => break offset,
                Err(e) => {
                    tracing::warn!(error = %e, partition, "consumer: cannot read the stored offset; retrying");
                    RETRY.sleep(attempt).await;
                    attempt += 1;
                }
            }
        };
        tracing::info!(topic, partition, offset, "consumer started");
        let mut reader =
            PartitionReader::new(Arc::clone(&self.partition), offset, self.deadline, self.max_wait_ms)
                .with_lag(lag_gauge(&topic, partition));
        loop {
            let entries: Vec<Entry> = reader
                .next_batch()
                .await
                .into_iter()
                .map(|r| {
                    let msg = r.record.value.as_deref().and_then(|v| serde_json::from_slice(v).ok());
                    if msg.is_none() {
                        tracing::error!(
                            offset = r.offset,
                            partition,
                            "unreadable application record; skipped"
                        );
                    }
                    (r.offset, msg)
                })
                .collect();
            for batch in entries.chunks(MAX_BATCH) {
                let mut attempt = 0;
                while let Err(e) = self.handle(batch).await {
                    tracing::warn!(error = %e, partition, offset = reader.offset(), "consumer: batch failed; retrying");
                    RETRY.sleep(attempt).await;
                    attempt += 1;
                }
                reader.advance_to(batch.last().map_or(0, |(o, _)| o + 1));
            }
        }
    }

    /// Allocates one batch (under the lock when there is one) and sends its answers.
    ///
    /// Records of an event the sold-out book already knows are decided from memory: stock
    /// only goes down, so once a committed `remaining = 0` was read the answer is fixed
    /// (`already_applied` for a holder, `sold_out` for anyone else), the same one the
    /// section would give. Only the events still open take the lock — none at all when every
    /// record's event is settled — and the answers are still stored with the offset in one
    /// transaction, so a replay gets the same answer.
    async fn handle(&self, batch: &[Entry]) -> Result<(), StrategyError> {
        let Some(next_offset) = batch.last().map(|(o, _)| o + 1) else { return Ok(()) };
        let messages: Vec<&ApplyMessage> = batch.iter().filter_map(|(_, m)| m.as_ref()).collect();
        let started = std::time::Instant::now();
        let mut remembered = self.remember(&messages);
        let open = open_events(&messages, &remembered);
        let answers = match &self.lock {
            Some(lock) if !open.is_empty() => {
                // the consumers of this process queue for an event here, not on Redis
                let turns = lock.local_turns(&open).await;
                // the consumer ahead in the queue may have sold the event out meanwhile
                remembered = self.remember(&messages);
                let open = open_events(&messages, &remembered);
                if open.is_empty() {
                    drop(turns);
                    self.transact(&messages, &remembered, next_offset, &BTreeMap::new()).await?
                } else {
                    let transact = |tokens: BTreeMap<i64, i64>| {
                        let (messages, remembered) = (&messages, &remembered);
                        async move { Ok(self.transact(messages, remembered, next_offset, &tokens).await?) }
                    };
                    Some(lock.under_leases(&open, started, transact).await?)
                }
            }
            // Without a lock (or with nothing left to lock) nothing is fenced, so one round
            // always answers.
            _ => self.transact(&messages, &remembered, next_offset, &BTreeMap::new()).await?,
        }
        .ok_or_else(|| {
            StrategyError::Unavailable(Backend::Kafka, "a batch without a lock reported a fence".into())
        })?;
        let decided = started.elapsed();
        self.answer(answers).await;
        tracing::debug!(records = batch.len(), ?decided, answered = ?started.elapsed(), partition = self.partition_id(), "consumed a batch");
        Ok(())
    }

    /// The book's answers for `messages` (`None`: not known sold out, or no book).
    fn remember(&self, messages: &[&ApplyMessage]) -> Vec<Option<ApplyOutcome>> {
        messages.iter().map(|m| self.remembered(m)).collect()
    }

    /// The book's answer for `message`, when its event is known sold out.
    fn remembered(&self, message: &ApplyMessage) -> Option<ApplyOutcome> {
        let request =
            ApplyRequest { event_id: message.event_id, user_id: message.user_id, request_id: String::new() };
        self.book.as_ref()?.answer_from_memory(&request)
    }

    /// The batch's transaction: `remembered[i]` is the answer already known for
    /// `messages[i]`; the others go through the section. `Ok(None)`: fenced out, nothing
    /// written.
    // Long on purpose: the batch's one transaction, from remembered answers to commit and teaching
    // the book: splitting it would pass the open transaction and half-made answers between
    // functions.
    async fn transact<'m>(
        &self,
        messages: &[&'m ApplyMessage],
        remembered: &[Option<ApplyOutcome>],
        next_offset: i64,
        tokens: &BTreeMap<i64, i64>,
    ) -> Result<Option<Vec<(&'m ApplyMessage, ApplyOutcome)>>, DbErr> {
        let tx = section::begin(&self.db).await?;
        let ids: Vec<&str> = messages.iter().map(|m| m.request_id.as_str()).collect();
        // Answers stored by an earlier run (duplicate records); new ones join them below.
        let mut decided = outcomes::results_of(&tx, &ids).await?;
        let mut fresh: Vec<&ApplyMessage> = Vec::new();
        let mut known: Vec<(&ApplyMessage, ApplyOutcome)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (m, memory) in messages.iter().zip(remembered) {
            if !decided.contains_key(&m.request_id) && seen.insert(m.request_id.as_str()) {
                match memory {
                    Some(outcome) => known.push((m, *outcome)),
                    None => fresh.push(m),
                }
            }
        }
        let applicants: Vec<Applicant<'_>> = fresh
            .iter()
            .map(|m| Applicant { event: m.event_id, user: m.user_id, request_id: m.request_id.as_str() })
            .collect();
        // an event without a stock row answers `sold_out` (the API checked it before
        // producing), and the transaction is kept for the answers and the offset
        let decisions =
            match section::steps(&tx, &applicants, Gates::Tokens(tokens), Ending::Commit, None).await? {
                Batch::Done { outcomes, .. } => outcomes,
                Batch::Fenced => {
                    tx.rollback().await?;
                    return Ok(None);
                }
                // neither read-modify-write nor the fenced gate compares versions
                Batch::Conflict => {
                    return Err(DbErr::Custom("a version conflict under partition ownership".into()));
                }
            };
        let mut stored = Vec::with_capacity(fresh.len() + known.len());
        for (m, outcome) in fresh.iter().copied().zip(decisions).chain(known) {
            decided.insert(m.request_id.clone(), outcome);
            stored.push((
                m.request_id.as_str(),
                RequestResult { event_id: m.event_id, user_id: m.user_id, outcome },
            ));
        }
        outcomes::store_results(&tx, &stored).await?;
        outcomes::store_offset(&tx, &self.topic, self.partition_id(), next_offset).await?;
        tx.commit().await?;
        for (_, result) in &stored {
            self.probes.decided(result.outcome);
        }
        // Teach the book now, after the commit (an uncommitted zero is not a fact yet) and
        // before the lock and the local turn are released, so the batches queued behind
        // this one are answered from memory.
        if let Some(book) = &self.book {
            let sold_out: BTreeSet<i64> = stored
                .iter()
                .filter(|(_, r)| r.outcome == ApplyOutcome::SoldOut)
                .map(|(_, r)| r.event_id)
                .collect();
            for event in sold_out {
                book.learn(event).await;
            }
        }
        let answers = messages
            .iter()
            .filter_map(|m| decided.get(&m.request_id).map(|outcome| (*m, *outcome)))
            .collect();
        Ok(Some(answers))
    }

    /// In-process when the request came from this process, else over the results topic (one
    /// produce for the batch). A lost answer is not a lost allocation: the waiter answers
    /// 202 and the database settles it.
    async fn answer(&self, answers: Vec<(&ApplyMessage, ApplyOutcome)>) {
        let mut remote = Vec::new();
        for (msg, outcome) in answers {
            if msg.origin == self.origin {
                self.waiters.complete(&msg.request_id, outcome);
                continue;
            }
            let Ok(value) = serde_json::to_vec(&ResultMessage::new(&msg.request_id, outcome)) else {
                continue;
            };
            remote.push(Record {
                key: Some(msg.request_id.clone().into_bytes()),
                value: Some(value),
                headers: Default::default(),
                timestamp: rskafka::chrono::Utc::now(),
            });
        }
        if remote.is_empty() {
            return;
        }
        let count = remote.len();
        let produce = self.results.produce(remote, Compression::NoCompression);
        if let Err(e) = within(self.deadline, "produce results", produce).await {
            tracing::warn!(error = %e, count, "answers not sent; those requests settle as pending");
        }
    }
}
