//! The registry of strategies: [`StrategyName`] and [`REGISTRY`], one row per strategy (its
//! spelling, backends, how far its guarantee reaches, and its constructor). Everything that
//! lists strategies — the configuration parser, the factory, start-up checks, the contract
//! suite, the race and cluster tests, the bench, the metrics and `nanum compare` — reads
//! [`StrategyName::ALL`] or a row.
//!
//! # Adding a strategy
//!
//! 1. Its file, `src/my_strategy.rs`, declared by `mod my_strategy;` in `lib.rs`: a type
//!    implementing [`ConcurrencyStrategy`] (usually the shared section,
//!    `section::run_to_outcome`, inside whatever mechanism it adds) and its constructor,
//!    `pub(crate) async fn build(parts: &Parts<'_>) -> Result<Arc<dyn ConcurrencyStrategy>,
//!    BuildError>` (`app_mutex.rs` is a complete example).
//! 2. A variant of [`StrategyName`] (its doc says what it does) and its row in [`REGISTRY`],
//!    at the same place:
//!    `row(S::MyStrategy, "my-strategy", DB, AnyInstances, |p| Box::pin(my_strategy::build(p))),`
//!    with the backends (`DB`, `REDIS`, `KAFKA`, `BOTH`) and how far its guarantee reaches
//!    (`Nothing`, `OneProcess`, `AnyInstances`).
//!
//! The contract suite, the HTTP races, the bench and `nanum compare` then run it without
//! further change, expecting the contract to hold or to be caught breaking by its scope.
//! Two tests count the database-only strategies on purpose (`config.rs`'s
//! `available_follows_the_backends`, `load/src/compare/tests.rs`): raise them with a new one.
//!
//! Rows are in the variants' order; a compile-time check below rejects a row out of place,
//! and a variant without a row panics with its name on first use (its spelling cannot even
//! be configured, since parsing reads the rows).

use std::{future::Future, pin::Pin, sync::Arc};

use crate::redis_pool::Pool;
use sea_orm::DatabaseConnection;

use crate::{
    BuildError, ConcurrencyConfig, ConcurrencyStrategy, app_mutex, group_commit,
    kafka::{self, KafkaConfig, Placement},
    named_lock, optimistic_lock, redis_atomic, redis_lock, section,
    sold_out::SoldOutBook,
};

/// What a strategy needs beyond the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// `redis.url` must be set.
    pub redis: bool,
    /// `kafka.brokers` must be set.
    pub kafka: bool,
}

/// Only the database.
pub(crate) const DB: Needs = Needs { redis: false, kafka: false };
/// The database and Redis.
pub(crate) const REDIS: Needs = Needs { redis: true, kafka: false };
/// The database and Kafka.
pub(crate) const KAFKA: Needs = Needs { redis: false, kafka: true };
/// All three.
pub(crate) const BOTH: Needs = Needs { redis: true, kafka: true };

/// How far a strategy's guarantee (never more winners than copies, never two for one
/// reader) reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// No guarantee: the strategy exists to show the race (and that the checks catch it).
    Nothing,
    /// Holds inside one process only (an in-process lock).
    OneProcess,
    /// Holds across any number of instances on one database.
    AnyInstances,
}

impl Scope {
    /// Whether the guarantee holds with `instances` processes serving the race.
    pub fn holds_with(self, instances: usize) -> bool {
        match self {
            Scope::Nothing => false,
            Scope::OneProcess => instances <= 1,
            Scope::AnyInstances => true,
        }
    }
}

/// What a constructor returns: the strategy, or why it cannot be built.
pub(crate) type Built<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<dyn ConcurrencyStrategy>, BuildError>> + Send + 'a>>;

/// A strategy's constructor: builds it from the configuration and the connected backends.
pub(crate) type Constructor = for<'a> fn(&'a Parts<'a>) -> Built<'a>;

/// One registry row.
pub(crate) struct Entry {
    pub(crate) name: StrategyName,
    pub(crate) spelling: &'static str,
    pub(crate) needs: Needs,
    pub(crate) scope: Scope,
    pub(crate) build: Constructor,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("spelling", &self.spelling)
            .finish_non_exhaustive()
    }
}

/// What a constructor gets: the configuration and the connected backends.
#[derive(Debug)]
pub(crate) struct Parts<'a> {
    /// The row being built (rows may share a constructor).
    pub(crate) name: StrategyName,
    pub(crate) config: &'a ConcurrencyConfig,
    pub(crate) db: DatabaseConnection,
    redis: Option<Pool>,
    pub(crate) redis_prefix: String,
    kafka: KafkaConfig,
    pub(crate) placement: Placement,
    /// The sold-out shortcut's book when `concurrency.sold_out_shortcut` is on; strategies
    /// ask it again at the head of their queues.
    pub(crate) book: Option<Arc<SoldOutBook>>,
}

impl<'a> Parts<'a> {
    pub(crate) fn new(config: &'a ConcurrencyConfig, backends: crate::Backends) -> Self {
        let crate::Backends { db, redis, redis_prefix, kafka, placement } = backends;
        let book = config.sold_out_shortcut.then(|| Arc::new(SoldOutBook::new(db.clone())));
        Self { name: config.strategy, config, db, redis, redis_prefix, kafka, placement, book }
    }

    /// The Redis pool, or the error naming the setting to add.
    pub(crate) fn redis(&self) -> Result<Pool, BuildError> {
        self.redis.clone().ok_or(BuildError::MissingBackend {
            strategy: self.name,
            backend: "Redis",
            setting: "redis.url (APP__REDIS__URL), e.g. redis://127.0.0.1:6379",
        })
    }

    /// The Kafka settings, or the error naming the setting to add.
    pub(crate) fn kafka(&self) -> Result<KafkaConfig, BuildError> {
        if self.kafka.brokers.trim().is_empty() {
            return Err(BuildError::MissingBackend {
                strategy: self.name,
                backend: "Kafka",
                setting: "kafka.brokers (APP__KAFKA__BROKERS), e.g. 127.0.0.1:9092",
            });
        }
        Ok(self.kafka.clone())
    }
}

/// Every strategy, as written in configuration (the spellings are in [`REGISTRY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StrategyName {
    /// Plain read-modify-write: demonstrates the race (spelled `none`).
    NoControl,
    /// Per-event in-process mutex (one process only).
    AppMutex,
    /// `SELECT … FOR UPDATE` on the stock row.
    PessimisticLock,
    /// Version column with bounded, jittered retry.
    OptimisticLock,
    /// Redis `SET NX PX` lock with fencing.
    RedisLock,
    /// One Kafka partition, one consumer.
    KafkaSinglePartition,
    /// Kafka partitions (round-robin) plus the Redis lock in the consumer.
    KafkaRedisLock,
    /// Kafka partitions keyed by event id, no lock.
    KafkaKeyed,
    /// One conditional `UPDATE … WHERE remaining > 0`.
    DbAtomic,
    /// One Redis Lua script gates; the database records the winners.
    RedisAtomic,
    /// Per event, the applications queued while a batch commits share the next transaction.
    GroupCommit,
    /// MariaDB `GET_LOCK` / `RELEASE_LOCK` per event around the section.
    NamedLock,
}

use Scope::{AnyInstances, Nothing, OneProcess};
use StrategyName as S;

/// The one list of strategies, in the variants' order (the order of the comparison tables).
pub(crate) const REGISTRY: &[Entry] = &[
    row(S::NoControl, "none", DB, Nothing, |p| Box::pin(section::build_no_control(p))),
    row(S::AppMutex, "app-mutex", DB, OneProcess, |p| Box::pin(app_mutex::build(p))),
    row(S::PessimisticLock, "pessimistic-lock", DB, AnyInstances, |p| {
        Box::pin(section::build_pessimistic(p))
    }),
    row(S::OptimisticLock, "optimistic-lock", DB, AnyInstances, |p| Box::pin(optimistic_lock::build(p))),
    row(S::RedisLock, "redis-lock", REDIS, AnyInstances, |p| Box::pin(redis_lock::build(p))),
    row(S::KafkaSinglePartition, "kafka-single-partition", KAFKA, AnyInstances, |p| {
        Box::pin(kafka::build(p))
    }),
    row(S::KafkaRedisLock, "kafka-redis-lock", BOTH, AnyInstances, |p| Box::pin(kafka::build(p))),
    row(S::KafkaKeyed, "kafka-keyed", KAFKA, AnyInstances, |p| Box::pin(kafka::build(p))),
    row(S::DbAtomic, "db-atomic", DB, AnyInstances, |p| Box::pin(section::build_db_atomic(p))),
    row(S::RedisAtomic, "redis-atomic", REDIS, AnyInstances, |p| Box::pin(redis_atomic::build(p))),
    row(S::GroupCommit, "group-commit", DB, AnyInstances, |p| Box::pin(group_commit::build(p))),
    row(S::NamedLock, "named-lock", DB, AnyInstances, |p| Box::pin(named_lock::build(p))),
];

/// A row (a function only so the table above reads one strategy per line).
const fn row(
    name: StrategyName,
    spelling: &'static str,
    needs: Needs,
    scope: Scope,
    build: Constructor,
) -> Entry {
    Entry { name, spelling, needs, scope, build }
}

// Row `i` must name variant `i`: `StrategyName::entry` indexes the table by the variant.
const _: () = {
    let mut i = 0;
    while i < REGISTRY.len() {
        assert!(REGISTRY[i].name as usize == i, "REGISTRY: a row is out of the variants' order");
        i += 1;
    }
};

impl StrategyName {
    /// All names, in registry order.
    pub const ALL: [StrategyName; REGISTRY.len()] = {
        let mut all = [S::NoControl; REGISTRY.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = REGISTRY[i].name;
            i += 1;
        }
        all
    };

    /// This strategy's row.
    pub(crate) fn entry(self) -> &'static Entry {
        match REGISTRY.get(self as usize) {
            Some(entry) => entry,
            None => panic!("StrategyName::{self:?} has no row in REGISTRY (strategies/src/registry.rs)"),
        }
    }
}
