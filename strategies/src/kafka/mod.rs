//! The Kafka strategies: applications are produced to a topic and allocated by consumers.
//!
//! - `kafka-single-partition`: one partition, one consumer — correct, one lane.
//! - `kafka-redis-lock`: N partitions, records spread round-robin, consumers take the
//!   `redis-lock` (fenced) around the critical section — the team's final design. With
//!   `concurrency.kafka_lock = false` the lock is off, to show the race the team hit.
//! - `kafka-keyed`: N partitions, partition = event id mod N, no lock: all of one event's
//!   requests queue in one partition, consumed by exactly one consumer, in order.
//!
//! rskafka has no consumer groups and no offset commits, so nanum owns both: workers own
//! partitions by `instance.index` / `instance.count`, and a consumer stores its next offset
//! in the database in the same transaction as the allocation ([`crate::outcomes`]). The HTTP request
//! waits for its answer in-process when the consuming worker is in the same process, and
//! over `<topic>.results` otherwise; after `reply_timeout_ms` it answers 202 `pending`.
//!
//! # Layout
//!
//! - [`client`]: connecting with deadlines, creating/verifying topics.
//! - `wire`: the JSON records on the two topics.
//! - `producer`: a per-partition producer that batches what queues up during a produce.
//! - `reader`: the one partition fetch loop (consumers and the results listener).
//! - `waiters`: requests waiting for their answer, and the results-topic listener.
//! - `worker`: the consumer loop (exactly-once effect, one transaction per fetched batch).
//! - `strategy`: the [`crate::ConcurrencyStrategy`] that produces and waits.

pub mod client;
mod producer;
mod reader;
mod strategy;
mod waiters;
mod wire;
mod worker;

use serde::{Deserialize, Serialize};

pub(crate) use strategy::build;

/// The `[kafka]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaConfig {
    /// Comma-separated bootstrap brokers; empty = not configured.
    pub brokers: String,
    /// Partitions of the applications topic (`kafka-redis-lock`, `kafka-keyed`).
    pub partitions: i32,
    /// Replicas of each partition when nanum creates its topics (1 for a single broker; 3
    /// on a three-broker cluster, whose `min.insync.replicas = 2` then keeps every
    /// acknowledged record through the loss of one broker). Existing topics are left as
    /// they are.
    pub replication_factor: i16,
    /// Applications topic; answers go to `<topic>.results`. One topic per database.
    pub topic: String,
    /// How long an HTTP request waits for its answer before 202 `pending`.
    pub reply_timeout_ms: u64,
    /// Deadline of every produce, fetch and metadata call.
    pub deadline_ms: u64,
    /// Long-poll of a consumer fetch (returns as soon as a record lands).
    pub fetch_max_wait_ms: i32,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: String::new(),
            partitions: 3,
            replication_factor: 1,
            topic: "nanum.applications".into(),
            reply_timeout_ms: 5_000,
            deadline_ms: 3_000,
            fetch_max_wait_ms: 500,
        }
    }
}

/// What this process does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serve HTTP only: produce applications, read answers from the results topic.
    Api,
    /// Consume only: allocate from the partitions this instance owns.
    Worker,
    /// Both (the default).
    #[default]
    All,
}

impl Role {
    /// Serves HTTP requests.
    pub fn serves(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }

    /// Runs consumers.
    pub fn consumes(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Api => "api",
            Role::Worker => "worker",
            Role::All => "all",
        })
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "api" => Ok(Role::Api),
            "worker" => Ok(Role::Worker),
            "all" => Ok(Role::All),
            other => Err(format!("unknown role `{other}`; expected api, worker or all")),
        }
    }
}

/// Which instance this is, for partition ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// What the process does.
    pub role: Role,
    /// 0-based index among the instances that share `count`.
    pub index: u32,
    /// Number of such instances.
    pub count: u32,
}

impl Default for Placement {
    fn default() -> Self {
        Self { role: Role::All, index: 0, count: 1 }
    }
}

impl Placement {
    /// The partitions of `0..partitions` this instance consumes.
    pub fn owned(&self, partitions: i32) -> Vec<i32> {
        if !self.role.consumes() {
            return Vec::new();
        }
        let count = i32::try_from(self.count.max(1)).unwrap_or(1);
        let index = i32::try_from(self.index).unwrap_or(0);
        (0..partitions).filter(|p| p % count == index).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_split_the_partitions_between_them_and_api_instances_own_none() {
        let worker = |index| Placement { role: Role::Worker, index, count: 2 };
        assert_eq!(worker(0).owned(5), vec![0, 2, 4]);
        assert_eq!(worker(1).owned(5), vec![1, 3]);
        assert_eq!(Placement { role: Role::Api, index: 0, count: 1 }.owned(5), Vec::<i32>::new());
        assert_eq!(Placement::default().owned(3), vec![0, 1, 2], "one `all` instance consumes everything");
        // every partition has exactly one owner, whatever the counts
        for count in 1..=4 {
            for partitions in 1..=7 {
                let mut owners = vec![0; usize::try_from(partitions).unwrap_or(0)];
                for index in 0..count {
                    for p in (Placement { role: Role::Worker, index, count }).owned(partitions) {
                        owners[usize::try_from(p).unwrap_or(0)] += 1;
                    }
                }
                assert!(
                    owners.iter().all(|&n| n == 1),
                    "{count} workers, {partitions} partitions: {owners:?}"
                );
            }
        }
    }
}
