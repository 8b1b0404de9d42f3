//! A producer for one partition that batches whatever queued up while the previous
//! produce was in flight — Kafka's own "linger 0" behaviour.
//!
//! A broker answers the requests of one connection strictly one at a time, so a hundred
//! readers producing one record each on a shared partition client queue behind each other
//! for a hundred round trips. Here the first record goes out alone; the records that arrive
//! meanwhile leave together in the next request. Nobody waits for a timer, and a burst
//! costs a few round trips instead of one per reader.

use std::{sync::Arc, time::Duration};

use rskafka::{
    client::partition::{Compression, PartitionClient},
    record::Record,
};
use tokio::sync::{mpsc, oneshot};

use super::client::within;
use crate::{Backend, StrategyError};

/// Most records in one produce request (bounds the request size and the blast radius of
/// one failed request).
const MAX_BATCH: usize = 500;

/// Records waiting for a produce slot; beyond this, producers wait (backpressure).
const QUEUE: usize = 20_000;

type Job = (Record, oneshot::Sender<Result<(), String>>);

/// Handle to one partition's batching task (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct BatchProducer {
    jobs: mpsc::Sender<Job>,
}

impl BatchProducer {
    /// Starts the task producing to `partition`, each request bounded by `deadline`.
    pub(crate) fn spawn(partition: Arc<PartitionClient>, deadline: Duration) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(partition, queue, deadline));
        Self { jobs }
    }

    /// Produces one record; returns once the broker stored it.
    ///
    /// # Errors
    ///
    /// [`StrategyError::Unavailable`] when the produce failed or missed its deadline.
    pub(crate) async fn produce(&self, record: Record) -> Result<(), StrategyError> {
        let (done, answer) = oneshot::channel();
        self.jobs.send((record, done)).await.map_err(|_| {
            StrategyError::Unavailable(Backend::Kafka, "kafka produce: the producer task stopped".into())
        })?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StrategyError::Unavailable(Backend::Kafka, e)),
            Err(_) => Err(StrategyError::Unavailable(
                Backend::Kafka,
                "kafka produce: no answer from the producer task".into(),
            )),
        }
    }
}

async fn run(partition: Arc<PartitionClient>, mut queue: mpsc::Receiver<Job>, deadline: Duration) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    // `recv_many` waits for the first job, then takes whatever else is already queued.
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (records, waiters): (Vec<_>, Vec<_>) = jobs.drain(..).unzip();
        let started = std::time::Instant::now();
        let result = within(deadline, "produce", partition.produce(records, Compression::NoCompression))
            .await
            .map(|_offsets| ())
            .map_err(|e| e.to_string());
        tracing::debug!(records = waiters.len(), took = ?started.elapsed(), partition = partition.partition(), "produced a batch");
        for waiter in waiters {
            // A waiter that gave up (its request was dropped) needs no answer.
            let _ = waiter.send(result.clone());
        }
    }
}
