//! Concurrency strategies for nanum's one race: many readers applying for a few copies.
//!
//! Every strategy runs the *same* critical section — read the remaining stock, reject a
//! duplicate, decrement the stock, record the application — and differs only in how that
//! section is serialised. That makes the strategies comparable: the contract suite in
//! `contract` runs the same race against each of them, and `none` (no control at all) is
//! there to prove the suite catches an over-allocation when one happens.
//!
//! # Layout
//!
//! - [`strategy`]: the [`ConcurrencyStrategy`] trait, its request, outcome and error types.
//! - `registry`: [`StrategyName`] and the one list of strategies, a row each (spelling,
//!   backends, [`Scope`], constructor) that the factory, the parser, the tests, the bench,
//!   the metrics and `nanum compare` read.
//! - [`config`]: [`ConcurrencyConfig`], and [`build_strategy`], the one factory that turns
//!   configuration into a strategy object.
//! - [`schema`]: the tables the race touches (`event_stock`, `applications`), as a
//!   sea-orm migration the app includes in its own migrator, plus small data helpers.
//! - `section`: the shared critical section, parametrised by how stock is read and
//!   decremented (`Gate`).
//! - `none`, `pessimistic-lock`, `db-atomic`: the section behind one gate (`section::Gated`);
//!   `app_mutex`, `optimistic_lock`, [`redis_lock`], `redis_atomic`, [`group_commit`],
//!   [`named_lock`]: one
//!   module per strategy.
//! - `sold_out`: the sold-out shortcut (a monotonic fact answered from memory), wrapping
//!   any strategy; `event_locks`: per-event in-process FIFO queues.
//! - [`kafka`]: the three Kafka strategies (producer, consumers, offsets in the database).
//! - [`backoff`]: the one jittered exponential retry delay every loop uses.
//! - [`outcomes`]: the outcome store (every request's final answer, consumer offsets).
//! - [`probes`]: the strategies' Prometheus metrics (counters, histograms; `metrics` facade).
//! - [`redis_pool`]: the Redis pool (deadlines on every call) and Redis error mapping.
//! - [`dberr`]: classification of database errors (unique violation, transient, outage).
//! - `contract` (feature `testsuite`): the shared contract suite (a race harness plus its
//!   invariant checks), for tests, the bench and the load tools; never in the serving binary.

mod app_mutex;
pub mod backoff;
pub mod config;
#[cfg(any(test, feature = "testsuite"))]
pub mod contract;
pub mod dberr;
mod event_locks;
pub mod group_commit;
pub mod kafka;
pub mod named_lock;
mod optimistic_lock;
pub mod outcomes;
pub mod probes;
mod redis_atomic;
pub mod redis_lock;
pub mod redis_pool;
mod registry;
pub mod schema;
mod section;
mod sold_out;
pub mod strategy;

pub use config::{Backends, BuildError, ConcurrencyConfig, OptimisticConfig, build_strategy};
pub use group_commit::GroupCommitConfig;
pub use named_lock::NamedLockConfig;
pub use redis_lock::RedisLockConfig;
pub use registry::{Needs, Scope, StrategyName};
pub use strategy::{ApplyOutcome, ApplyRequest, Backend, ConcurrencyStrategy, StrategyError};
