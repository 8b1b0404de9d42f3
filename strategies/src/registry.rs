//! The registry of strategies: one row per strategy (its name, spelling, backends, how far
//! its guarantee reaches, and its constructor), written once in `lib.rs` through
//! [`registry!`](crate::registry). Everything that lists strategies — the configuration
//! parser, the factory, start-up checks, the contract suite, the race and cluster tests, the
//! bench and `nanum compare` — reads what this macro generates, so adding a strategy is one
//! new file plus one row.
//!
//! A row reads
//!
//! ```text
//! /// Doc of the variant.
//! snake_name: VariantName = "spelling", NEEDS, Scope, constructor;
//! ```
//!
//! where `NEEDS` is one of [`DB`], [`REDIS`], [`KAFKA`], [`BOTH`], `Scope` a [`Scope`]
//! variant, and `constructor` either a path to an `async fn(&Parts<'_>) -> Result<Arc<dyn
//! ConcurrencyStrategy>, BuildError>` or `own`: the strategy lives in its own file
//! `src/<snake_name>.rs` (declared by the row, so no `mod` line is needed) whose `build` is
//! that function.

use std::sync::Arc;

use crate::redis_pool::Pool;
use sea_orm::DatabaseConnection;

use crate::{
    BuildError, ConcurrencyConfig, StrategyName,
    kafka::{KafkaConfig, Placement},
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

/// One registry row, as the generated table holds it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) name: StrategyName,
    pub(crate) spelling: &'static str,
    pub(crate) needs: Needs,
    pub(crate) scope: Scope,
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

/// Counts rows at compile time.
pub(crate) const fn one(_: &str) -> usize {
    1
}

/// Declares a row's module when its constructor is `own`.
macro_rules! registry_module {
    (own $snake:ident) => {
        mod $snake;
    };
    ($($other:tt)*) => {};
}

/// A row's constructor as a path.
macro_rules! registry_constructor {
    ($snake:ident, own) => {
        $snake::build
    };
    ($snake:ident, $($path:tt)+) => {
        $($path)+
    };
}

/// Generates [`StrategyName`], the registry table, the factory dispatch and
/// `for_each_strategy!` from the rows (see the module docs). The leading `$` is passed in so
/// the generated `for_each_strategy!` can have metavariables of its own.
macro_rules! registry {
    ($d:tt $(
        $(#[doc = $doc:literal])*
        $snake:ident: $variant:ident = $spelling:literal, $needs:ident, $scope:ident, $build:tt $(:: $rest:ident)*;
    )*) => {
        /// Every strategy, as written in configuration (spellings in the registry rows).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum StrategyName {
            $( $(#[doc = $doc])* $variant, )*
        }

        $( registry_module!($build $snake); )*

        /// The registry table, in the order of the comparison tables.
        const REGISTRY: [registry::Entry; StrategyName::ALL.len()] = [$(
            registry::Entry {
                name: StrategyName::$variant,
                spelling: $spelling,
                needs: registry::$needs,
                scope: registry::Scope::$scope,
            },
        )*];

        impl StrategyName {
            /// All names, in registry order.
            pub const ALL: [StrategyName; 0 $(+ registry::one(stringify!($variant)))*] =
                [$(StrategyName::$variant),*];

            /// Builds this strategy from its parts (the factory's one dispatch).
            async fn construct(
                self,
                parts: &registry::Parts<'_>,
            ) -> Result<std::sync::Arc<dyn ConcurrencyStrategy>, BuildError> {
                match self {
                    $( StrategyName::$variant => (registry_constructor!($snake, $build $(:: $rest)*))(parts).await, )*
                }
            }
        }

        /// Calls `callback! { snake_name => StrategyName::Variant, … }` with every registered
        /// strategy, so test suites generate one test module per strategy from the registry
        /// instead of keeping their own list.
        #[macro_export]
        macro_rules! for_each_strategy {
            ($d callback:ident) => {
                $d callback! { $( $snake => $d crate::StrategyName::$variant ),* }
            };
        }
    };
}
