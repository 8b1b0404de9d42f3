//! Concurrency strategies for nanum's one race: many readers applying for a few copies.
//!
//! Every strategy runs the *same* critical section — read the remaining stock, reject a
//! duplicate, decrement the stock, record the application — and differs only in how that
//! section is serialised. That makes the strategies comparable: the contract suite in
//! [`contract`] runs the same race against each of them, and `none` (no control at all) is
//! there to prove the suite catches an over-allocation when one happens.
//!
//! # Layout
//!
//! - [`strategy`]: the [`ConcurrencyStrategy`] trait, its request, outcome and error types.
//! - `registry`: the `registry!` macro; its one invocation, at the end of this file, lists
//!   every strategy (name, spelling, backends, [`Scope`], constructor) and generates
//!   [`StrategyName`], the factory's dispatch and [`for_each_strategy!`].
//! - [`config`]: [`ConcurrencyConfig`], and [`build_strategy`], the one factory that turns
//!   configuration into a strategy object.
//! - [`schema`]: the tables the race touches (`event_stock`, `applications`), as a
//!   sea-orm migration the app includes in its own migrator, plus small data helpers.
//! - `section`: the shared critical section, parametrised by how stock is read and
//!   decremented (`Gate`).
//! - `none`, `pessimistic-lock`, `db-atomic`: the section behind one gate (`section::Gated`);
//!   `app_mutex`, `optimistic_lock`, [`redis_lock`], `redis_atomic`: one module per
//!   strategy.
//! - `sold_out`: the sold-out shortcut (a monotonic fact answered from memory), wrapping
//!   any strategy; `event_locks`: per-event in-process FIFO queues.
//! - [`kafka`]: the three Kafka strategies (producer, consumers, offsets in the database).
//! - [`backoff`]: the one jittered exponential retry delay every loop uses.
//! - [`outcomes`]: the outcome store (every request's final answer, consumer offsets).
//! - [`probes`]: the strategies' Prometheus metrics (counters, histograms; `metrics` facade).
//! - [`redis_pool`]: the Redis pool (deadlines on every call) and Redis error mapping.
//! - [`dberr`]: classification of database errors (unique violation, transient, outage).
//! - [`contract`]: the shared contract suite (a race harness plus its invariant checks).
// The workspace lints (Cargo.toml) apply too; a library also documents and scopes its API.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

#[macro_use]
mod registry;

pub mod backoff;
pub mod config;
pub mod contract;
pub mod dberr;
mod event_locks;
pub mod kafka;
pub mod outcomes;
pub mod probes;
pub mod redis_lock;
pub mod redis_pool;
pub mod schema;
mod section;
mod sold_out;
pub mod strategy;

pub use config::{Backends, BuildError, ConcurrencyConfig, OptimisticConfig, build_strategy};
pub use redis_lock::RedisLockConfig;
pub use registry::{Needs, Scope};
pub use strategy::{ApplyOutcome, ApplyRequest, Backend, ConcurrencyStrategy, StrategyError};

// The registry: one row per strategy (see `registry` for the row syntax). A strategy with
// `own` lives in `src/<snake_name>.rs`, declared by its row.
registry! { $
    /// Plain read-modify-write: demonstrates the race (spelled `none`).
    no_control: NoControl = "none", DB, Nothing, section::build_no_control;
    /// Per-event in-process mutex (one process only).
    app_mutex: AppMutex = "app-mutex", DB, OneProcess, own;
    /// `SELECT … FOR UPDATE` on the stock row.
    pessimistic_lock: PessimisticLock = "pessimistic-lock", DB, AnyInstances, section::build_pessimistic;
    /// Version column with bounded, jittered retry.
    optimistic_lock: OptimisticLock = "optimistic-lock", DB, AnyInstances, own;
    /// Redis `SET NX PX` lock with fencing.
    redis_lock: RedisLock = "redis-lock", REDIS, AnyInstances, redis_lock::build;
    /// One Kafka partition, one consumer.
    kafka_single_partition: KafkaSinglePartition = "kafka-single-partition", KAFKA, AnyInstances, kafka::build;
    /// Kafka partitions (round-robin) plus the Redis lock in the consumer.
    kafka_redis_lock: KafkaRedisLock = "kafka-redis-lock", BOTH, AnyInstances, kafka::build;
    /// Kafka partitions keyed by event id, no lock.
    kafka_keyed: KafkaKeyed = "kafka-keyed", KAFKA, AnyInstances, kafka::build;
    /// One conditional `UPDATE … WHERE remaining > 0`.
    db_atomic: DbAtomic = "db-atomic", DB, AnyInstances, section::build_db_atomic;
    /// One Redis Lua script gates; the database records the winners.
    redis_atomic: RedisAtomic = "redis-atomic", REDIS, AnyInstances, own;
}
