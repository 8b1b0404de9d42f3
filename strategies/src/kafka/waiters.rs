//! HTTP requests waiting for their answer, and the listener that feeds them from the
//! results topic when the answering worker runs in another process.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use rskafka::client::partition::{OffsetAt, PartitionClient};
use tokio::sync::oneshot;

use super::{client::within, reader::PartitionReader, wire::ResultMessage};
use crate::{ApplyOutcome, backoff::Backoff};

/// Between retries of reading the end offset.
const RETRY: Backoff = Backoff::from_millis(10, 1_000);

/// Request id → the channel its HTTP handler waits on.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    // std Mutex: held only to insert or remove an entry, never across an await.
    pending: Mutex<HashMap<String, oneshot::Sender<ApplyOutcome>>>,
}

impl Waiters {
    pub(crate) fn register(&self, request_id: &str) -> oneshot::Receiver<ApplyOutcome> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(request_id.to_owned(), tx);
        rx
    }

    pub(crate) fn forget(&self, request_id: &str) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(request_id);
    }

    /// Hands an answer to its waiter, if it is still waiting here.
    pub(crate) fn complete(&self, request_id: &str, outcome: ApplyOutcome) {
        let waiter = self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(request_id);
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
