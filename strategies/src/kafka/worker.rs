//! The consumer of one partition: allocate each record exactly once, in order.
//!
//! For each record, one database transaction holds the allocation (inside a savepoint, so a
//! losing attempt's partial writes roll back), the request's final answer, and the next
//! offset. A crash anywhere before the commit means the record is processed again on
//! restart; after it, never again. A record seen twice (producer retry, replayed key) finds
//! its answer already stored and only re-sends it. A failing record is retried — never
//! skipped — because skipping would lose an accepted application.

use std::{sync::Arc, time::Duration};

use rskafka::{
    client::partition::{Compression, PartitionClient},
    record::Record,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

use super::{
    client::within,
    store::{self, RequestResult},
    waiters::Waiters,
    wire::{ApplyMessage, ResultMessage},
};
use crate::{
    ApplyOutcome, ApplyRequest, StrategyError,
    redis_lock::RedisLock,
    section::{self, Attempt, Gate},
};

/// Everything one partition's consumer needs.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    pub(crate) db: DatabaseConnection,
    pub(crate) topic: String,
    pub(crate) partition: Arc<PartitionClient>,
    pub(crate) results: Arc<PartitionClient>,
    pub(crate) waiters: Arc<Waiters>,
    pub(crate) origin: String,
    /// `kafka-redis-lock` with the lock on: the fenced Redis lock around each section.
    pub(crate) lock: Option<Arc<RedisLock>>,
    pub(crate) deadline: Duration,
    pub(crate) max_wait_ms: i32,
}

impl Worker {
    fn partition_id(&self) -> i32 {
        self.partition.partition()
    }

    /// Consumes forever from the stored offset.
    pub(crate) async fn run(self) {
        let (topic, partition) = (self.topic.clone(), self.partition_id());
        let mut offset = loop {
            match store::next_offset(&self.db, &topic, partition).await {
                Ok(offset) => break offset,
                Err(e) => {
                    tracing::warn!(error = %e, partition, "consumer: cannot read the stored offset; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        tracing::info!(topic, partition, offset, "consumer started");
        let fetch_deadline =
            self.deadline + Duration::from_millis(u64::try_from(self.max_wait_ms).unwrap_or(0));
        loop {
            let fetched = within(
                fetch_deadline,
                "fetch",
                self.partition.fetch_records(offset, 1..4_000_000, self.max_wait_ms),
            )
            .await;
            let records = match fetched {
                Ok((records, _high_watermark)) => records,
                Err(e) => {
                    tracing::warn!(error = %e, partition, "consumer: fetch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            for record in records {
                let mut backoff = 10;
                while let Err(e) = self.handle(record.offset, record.record.value.as_deref()).await {
                    tracing::warn!(error = %e, partition, offset = record.offset, "consumer: record failed; retrying");
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                    backoff = (backoff * 2).min(1_000);
                }
                offset = record.offset + 1;
            }
        }
    }

    async fn handle(&self, offset: i64, value: Option<&[u8]>) -> Result<(), StrategyError> {
        let Some(msg) = value.and_then(|v| serde_json::from_slice::<ApplyMessage>(v).ok()) else {
            tracing::error!(
                offset,
                partition = self.partition_id(),
                "unreadable application record; skipped"
            );
            let tx = self.db.begin().await?;
            store::store_offset(&tx, &self.topic, self.partition_id(), offset + 1).await?;
            tx.commit().await?;
            return Ok(());
        };
        let outcome = self.process(&msg, offset).await?;
        self.answer(&msg, outcome).await;
        Ok(())
    }

    /// Allocates under the lock when there is one; a fenced-out attempt (lease lost) wrote
    /// nothing and is simply run again with a new lease.
    async fn process(&self, msg: &ApplyMessage, offset: i64) -> Result<ApplyOutcome, StrategyError> {
        loop {
            let lease = match &self.lock {
                Some(lock) => Some(lock.acquire(msg.event_id).await?),
                None => None,
            };
            let result = self.transact(msg, offset, lease.as_ref().map(|l| l.token)).await;
            if let (Some(lock), Some(lease)) = (&self.lock, &lease)
                && let Err(e) = lock.release(lease).await
            {
                tracing::warn!(error = %e, "lock release failed; the lease will expire");
            }
            if let Some(outcome) = result? {
                return Ok(outcome);
            }
        }
    }

    async fn transact(
        &self,
        msg: &ApplyMessage,
        offset: i64,
        token: Option<i64>,
    ) -> Result<Option<ApplyOutcome>, DbErr> {
        let tx = section::begin(&self.db).await?;
        let outcome = match store::result_of(&tx, &msg.request_id).await? {
            Some(done) => done.outcome, // a duplicate record: answer again, allocate nothing
            None => {
                let request = ApplyRequest {
                    event_id: msg.event_id,
                    user_id: msg.user_id,
                    request_id: msg.request_id.clone(),
                };
                let gate = token.map_or(Gate::ReadModifyWrite, Gate::Fenced);
                let savepoint = tx.begin().await?;
                let outcome =
                    match section::steps(&savepoint, tx.get_database_backend(), &request, gate).await {
                        Ok(Attempt::Done(won @ ApplyOutcome::Won { .. })) => {
                            savepoint.commit().await?;
                            won
                        }
                        Ok(Attempt::Done(other)) => {
                            savepoint.rollback().await?;
                            other
                        }
                        Ok(Attempt::Fenced | Attempt::Conflict) => {
                            savepoint.rollback().await?;
                            tx.rollback().await?;
                            return Ok(None);
                        }
                        // The API checked the event before producing; a vanished stock row can
                        // only be answered "sold out".
                        Err(DbErr::RecordNotFound(_)) => {
                            savepoint.rollback().await?;
                            ApplyOutcome::SoldOut
                        }
                        Err(e) => return Err(e),
                    };
                let result = RequestResult { event_id: msg.event_id, user_id: msg.user_id, outcome };
                store::store_result(&tx, &msg.request_id, result).await?;
                outcome
            }
        };
        store::store_offset(&tx, &self.topic, self.partition_id(), offset + 1).await?;
        tx.commit().await?;
        Ok(Some(outcome))
    }

    /// In-process when the request came from this process, else over the results topic.
    /// A lost answer is not a lost allocation: the waiter answers 202 and the database
    /// settles it.
    async fn answer(&self, msg: &ApplyMessage, outcome: ApplyOutcome) {
        if msg.origin == self.origin {
            self.waiters.complete(&msg.request_id, outcome);
            return;
        }
        let Ok(value) = serde_json::to_vec(&ResultMessage::new(&msg.request_id, outcome)) else { return };
        let record = Record {
            key: Some(msg.request_id.clone().into_bytes()),
            value: Some(value),
            headers: Default::default(),
            timestamp: rskafka::chrono::Utc::now(),
        };
        let produce = self.results.produce(vec![record], Compression::NoCompression);
        if let Err(e) = within(self.deadline, "produce result", produce).await {
            tracing::warn!(error = %e, request_id = msg.request_id, "answer not sent; the request settles as pending");
        }
    }
}
