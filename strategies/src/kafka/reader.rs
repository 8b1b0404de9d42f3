//! Reading one partition from an offset onwards: the fetch loop shared by the consumers
//! (`worker`) and the results listener (`waiters`).
//!
//! A fetch long-polls (`fetch_max_wait_ms`) and returns as soon as a record lands; a failed
//! or timed-out fetch is retried with the one backoff ([`crate::backoff`]) — never skipped —
//! and only the caller moves the position on, once it has dealt with what it read.

use std::{sync::Arc, time::Duration};

use rskafka::{client::partition::PartitionClient, record::RecordAndOffset};

use super::client::within;
use crate::backoff::Backoff;

/// Between retries of a failing fetch.
const RETRY: Backoff = Backoff::from_millis(10, 1_000);

/// A position in one partition.
#[derive(Debug)]
pub(crate) struct PartitionReader {
    partition: Arc<PartitionClient>,
    offset: i64,
    fetch_deadline: Duration,
    max_wait_ms: i32,
    /// Consumers: records behind the partition's end, set after every fetch.
    lag: Option<metrics::Gauge>,
}

impl PartitionReader {
    /// Reads `partition` from `offset`; every fetch is bounded by `deadline` plus the
    /// long-poll itself.
    pub(crate) fn new(
        partition: Arc<PartitionClient>,
        offset: i64,
        deadline: Duration,
        max_wait_ms: i32,
    ) -> Self {
        let fetch_deadline = deadline + Duration::from_millis(u64::try_from(max_wait_ms).unwrap_or(0));
        Self { partition, offset, fetch_deadline, max_wait_ms, lag: None }
    }

    /// Reports `high watermark − position` to `lag` after every fetch.
    pub(crate) fn with_lag(mut self, lag: metrics::Gauge) -> Self {
        self.lag = Some(lag);
        self
    }

    /// The next offset to read.
    pub(crate) fn offset(&self) -> i64 {
        self.offset
    }

    /// Moves the position past what the caller has dealt with.
    pub(crate) fn advance_to(&mut self, next: i64) {
        self.offset = self.offset.max(next);
    }

    /// The next records from the current position (waits until there are some).
    pub(crate) async fn next_batch(&self) -> Vec<RecordAndOffset> {
        let mut failures = 0;
        loop {
            let fetch = self.partition.fetch_records(self.offset, 1..4_000_000, self.max_wait_ms);
            match within(self.fetch_deadline, "fetch", fetch).await {
                // A fetch may start before the asked offset (it returns whole batches).
                Ok((records, high_watermark)) => {
                    if let Some(lag) = &self.lag {
                        // i64 → f64: exact below 2^53 records
                        lag.set((high_watermark - self.offset).max(0) as f64);
                    }
                    let records: Vec<_> = records.into_iter().filter(|r| r.offset >= self.offset).collect();
                    if !records.is_empty() {
                        return records;
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        topic = self.partition.topic(),
                        partition = self.partition.partition(),
                        "fetch failed; retrying"
                    );
                    RETRY.sleep(failures).await;
                    failures += 1;
                }
            }
        }
    }
}
