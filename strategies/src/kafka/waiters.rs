//! HTTP requests waiting for their answer, and the listener that feeds them from the
//! results topic when the answering worker runs in another process.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use rskafka::client::partition::{OffsetAt, PartitionClient};
use tokio::sync::oneshot;

use super::{client::within, reader::PartitionReader, wire::ResultMessage};
use crate::{ApplyOutcome, backoff::Backoff};

/// Between retries of reading the end offset.
const RETRY: Backoff = Backoff::from_millis(10, 1_000);

/// Requests answered 202 that are remembered until their late answer arrives (for the
/// `nanum_kafka_pending_requests` gauge); beyond this the set starts over.
const MAX_LATE: usize = 100_000;

/// Request id → the channel its HTTP handler waits on.
#[derive(Debug)]
pub(crate) struct Waiters {
    // std Mutex: held only to insert or remove an entry, never across an await.
    pending: Mutex<Registry>,
    /// How many requests were answered 202 and have not seen their answer here yet.
    late_gauge: metrics::Gauge,
}

#[derive(Debug, Default)]
struct Registry {
    waiting: HashMap<String, oneshot::Sender<ApplyOutcome>>,
    /// Answered 202; their decision has not reached this process yet.
    late: HashSet<String>,
}

impl Registry {
    // counts stay far below 2^53
    fn late_count(&self) -> f64 {
        self.late.len() as f64
    }
}

impl Waiters {
    pub(crate) fn new(late_gauge: metrics::Gauge) -> Self {
        Self { pending: Mutex::default(), late_gauge }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn register(&self, request_id: &str) -> oneshot::Receiver<ApplyOutcome> {
        let (tx, rx) = oneshot::channel();
        self.registry().waiting.insert(request_id.to_owned(), tx);
        rx
    }

    pub(crate) fn forget(&self, request_id: &str) {
        self.registry().waiting.remove(request_id);
    }

    /// The handler stops waiting and answers 202: remember the request until its answer
    /// arrives (unless it arrived just now, between the timeout and this call).
    pub(crate) fn gave_up(&self, request_id: &str) {
        let mut registry = self.registry();
        if let Some((id, _)) = registry.waiting.remove_entry(request_id) {
            if registry.late.len() >= MAX_LATE {
                registry.late.clear();
            }
            registry.late.insert(id);
            self.late_gauge.set(registry.late_count());
        }
    }

    /// Hands an answer to its waiter, if it is still waiting here.
    pub(crate) fn complete(&self, request_id: &str, outcome: ApplyOutcome) {
        let waiter = {
            let mut registry = self.registry();
            let waiter = registry.waiting.remove(request_id);
            if waiter.is_none() && registry.late.remove(request_id) {
                self.late_gauge.set(registry.late_count());
            }
            waiter
        };
        if let Some(tx) = waiter {
            let _ = tx.send(outcome); // the handler may have given up (202) meanwhile
        }
    }
}

/// Reads the results topic from its end at start-up onwards and completes local waiters.
/// Answers for requests of other processes are ignored. Runs until the process ends;
/// broker errors are logged and retried (waiters then time out into 202, which the
/// database settles).
pub(crate) async fn listen(
    results: Arc<PartitionClient>,
    waiters: Arc<Waiters>,
    deadline: Duration,
    max_wait_ms: i32,
) {
    let mut attempt = 0;
    let offset = loop {
        match within(deadline, "results offset", results.get_offset(OffsetAt::Latest)).await {
            Ok(offset) => break offset,
            Err(e) => {
                tracing::warn!(error = %e, "results listener: cannot read the end offset; retrying");
                RETRY.sleep(attempt).await;
                attempt += 1;
            }
        }
    };
    let mut reader = PartitionReader::new(results, offset, deadline, max_wait_ms);
    loop {
        for record in reader.next_batch().await {
            reader.advance_to(record.offset + 1);
            let Some(value) = record.record.value else { continue };
            match serde_json::from_slice::<ResultMessage>(&value) {
                Ok(msg) => {
                    if let Some(outcome) = msg.outcome() {
                        waiters.complete(&msg.request_id, outcome);
                    }
                }
                Err(e) => tracing::warn!(error = %e, offset = record.offset, "unreadable result record"),
            }
        }
    }
}
