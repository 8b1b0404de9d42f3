//! Strategy selection: the configuration values and the one factory.
//!
//! The model is loco's cache drivers (a config value picks a trait object through one
//! factory), but with a plain `strategy` name plus one optional table per strategy instead
//! of a `#[serde(tag)]` enum: values that come from `APP__…` environment variables are
//! strings, and serde's internally tagged enums buffer them without the string→number
//! coercion the `config` crate does for plain structs.

use std::{fmt, str::FromStr, sync::Arc};

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use crate::{
    ConcurrencyStrategy,
    app_mutex::AppMutex,
    kafka::{KafkaConfig, KafkaStrategy, Placement},
    optimistic::Optimistic,
    redis_atomic::RedisAtomic,
    redis_lock::{RedisLock, RedisLockConfig},
    section::{Gate, Gated},
    sold_out::{Shortcut, SoldOutBook},
};

/// Every strategy, as written in configuration (the spelling lives in the registry below).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StrategyName {
    /// Plain read-modify-write: demonstrates the race (spelled `none`).
    #[serde(rename = "none")]
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
}

/// What a strategy needs beyond the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// `redis.url` must be set.
    pub redis: bool,
    /// `kafka.brokers` must be set.
    pub kafka: bool,
}

/// The registry: every strategy with its configuration spelling and its backends, in the
/// order of the comparison tables. Every other place (start-up checks, the contract suite,
/// the race tests, the bench, `nanum compare`) reads this table instead of repeating it.
const REGISTRY: [(StrategyName, &str, Needs); 10] = {
    const DB: Needs = Needs { redis: false, kafka: false };
    const REDIS: Needs = Needs { redis: true, kafka: false };
    const KAFKA: Needs = Needs { redis: false, kafka: true };
    const BOTH: Needs = Needs { redis: true, kafka: true };
    [
        (StrategyName::NoControl, "none", DB),
        (StrategyName::AppMutex, "app-mutex", DB),
        (StrategyName::PessimisticLock, "pessimistic-lock", DB),
        (StrategyName::OptimisticLock, "optimistic-lock", DB),
        (StrategyName::RedisLock, "redis-lock", REDIS),
        (StrategyName::KafkaSinglePartition, "kafka-single-partition", KAFKA),
        (StrategyName::KafkaRedisLock, "kafka-redis-lock", BOTH),
        (StrategyName::KafkaKeyed, "kafka-keyed", KAFKA),
        (StrategyName::DbAtomic, "db-atomic", DB),
        (StrategyName::RedisAtomic, "redis-atomic", REDIS),
    ]
};

impl StrategyName {
    /// All names, in registry order.
    pub const ALL: [StrategyName; REGISTRY.len()] = {
        let mut all = [StrategyName::NoControl; REGISTRY.len()];
        let mut i = 0;
        while i < REGISTRY.len() {
            all[i] = REGISTRY[i].0;
            i += 1;
        }
        all
    };

    fn entry(self) -> &'static (StrategyName, &'static str, Needs) {
        // Every variant has a row: `registry_names_every_variant` checks it.
        REGISTRY.iter().find(|(n, _, _)| *n == self).unwrap_or(&REGISTRY[0])
    }

    /// The configuration spelling, e.g. `pessimistic-lock`.
    pub fn as_str(self) -> &'static str {
        self.entry().1
    }

    /// The backends it needs beyond the database (`kafka-redis-lock` counts its lock).
    pub fn needs(self) -> Needs {
        self.entry().2
    }

    /// The strategies that can run with the given backends, in registry order.
    pub fn available(redis: bool, kafka: bool) -> Vec<StrategyName> {
        Self::ALL.into_iter().filter(|n| (redis || !n.needs().redis) && (kafka || !n.needs().kafka)).collect()
    }
}

impl fmt::Display for StrategyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StrategyName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StrategyName::ALL.into_iter().find(|n| n.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = StrategyName::ALL.iter().map(|n| n.as_str()).collect();
            format!("unknown strategy `{s}`; expected one of: {}", names.join(", "))
        })
    }
}

/// Read through [`FromStr`], so a misspelt strategy in configuration names every valid one
/// (serde's derived message would only say the variant does not exist).
impl<'de> Deserialize<'de> for StrategyName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spelled = String::deserialize(deserializer)?;
        spelled.parse().map_err(serde::de::Error::custom)
    }
}

/// Settings of the optimistic strategy's retry loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OptimisticConfig {
    /// Transactions tried before giving up with [`crate::StrategyError::Contention`].
    pub max_attempts: u32,
    /// First backoff; doubles per attempt (full jitter) up to `max_backoff_ms`.
    pub base_backoff_ms: u64,
    /// Backoff cap.
    pub max_backoff_ms: u64,
}

impl Default for OptimisticConfig {
    fn default() -> Self {
        // Each failed attempt means another reader won a copy, so with K copies a request
        // loses at most K times before it wins or sees "sold out"; 200 covers K ≤ 200 even
        // in the worst interleaving, and the jittered backoff keeps the total wait short.
        Self { max_attempts: 200, base_backoff_ms: 1, max_backoff_ms: 20 }
    }
}

impl OptimisticConfig {
    pub(crate) fn backoff(&self) -> crate::backoff::Backoff {
        crate::backoff::Backoff::from_millis(self.base_backoff_ms, self.max_backoff_ms)
    }
}

/// The `[concurrency]` section of the app's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConcurrencyConfig {
    /// Which strategy serialises applications.
    pub strategy: StrategyName,
    /// Options of `optimistic-lock`.
    #[serde(default)]
    pub optimistic: OptimisticConfig,
    /// Options of `redis-lock` (and of the lock inside `kafka-redis-lock`).
    #[serde(default)]
    pub redis_lock: RedisLockConfig,
    /// `kafka-redis-lock` only: take the Redis lock in the consumer (the team's fix). Off, the
    /// round-robin partitions race — the bug the team hit.
    #[serde(default = "yes")]
    pub kafka_lock: bool,
    /// Answer `sold_out` / `already_applied` from memory once this instance has read a
    /// committed `remaining = 0` (stock never goes back up). Off, every request runs the
    /// strategy — the pure lock comparison.
    #[serde(default = "yes")]
    pub sold_out_shortcut: bool,
}

fn yes() -> bool {
    true
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        Self {
            strategy: StrategyName::PessimisticLock,
            optimistic: OptimisticConfig::default(),
            redis_lock: RedisLockConfig::default(),
            kafka_lock: true,
            sold_out_shortcut: true,
        }
    }
}

/// The backends a strategy may use, connected by the caller.
#[derive(Debug, Clone)]
pub struct Backends {
    /// The database (always).
    pub db: DatabaseConnection,
    /// Redis, when `redis.url` is set.
    pub redis: Option<deadpool_redis::Pool>,
    /// Namespace of this deployment's Redis keys (one per database, so tests and
    /// deployments sharing a Redis never see each other's locks and counters).
    pub redis_prefix: String,
    /// The broker and topics (`brokers` empty = not configured).
    pub kafka: KafkaConfig,
    /// This instance's role and place, for partition ownership.
    pub placement: Placement,
}

impl From<DatabaseConnection> for Backends {
    /// Only a database (enough for every strategy but the Redis and Kafka ones).
    fn from(db: DatabaseConnection) -> Self {
        Self {
            db,
            redis: None,
            redis_prefix: "nanum".into(),
            kafka: KafkaConfig::default(),
            placement: Placement::default(),
        }
    }
}

/// A strategy could not be built from the configuration; the message names the setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The strategy needs a backend that is not configured.
    #[error("concurrency.strategy = \"{strategy}\" needs {backend}: set {setting}")]
    MissingBackend {
        /// The configured name.
        strategy: StrategyName,
        /// What is missing.
        backend: &'static str,
        /// The setting to change.
        setting: &'static str,
    },
    /// A backend is configured but could not be set up (unreachable, wrong topic shape).
    #[error("concurrency.strategy = \"{strategy}\": {reason}")]
    Backend {
        /// The configured name.
        strategy: StrategyName,
        /// One line naming the setting to change.
        reason: String,
    },
}

/// Builds the configured strategy over the given backends.
///
/// # Errors
///
/// [`BuildError`] when the strategy needs a backend that is not configured.
pub async fn build_strategy(
    config: &ConcurrencyConfig,
    backends: impl Into<Backends>,
) -> Result<Arc<dyn ConcurrencyStrategy>, BuildError> {
    let Backends { db, redis, redis_prefix, kafka, placement } = backends.into();
    let need_redis = |strategy| {
        redis.clone().ok_or(BuildError::MissingBackend {
            strategy,
            backend: "Redis",
            setting: "redis.url (APP__REDIS__URL), e.g. redis://127.0.0.1:6379",
        })
    };
    let book = config.sold_out_shortcut.then(|| Arc::new(SoldOutBook::new(db.clone())));
    let strategy: Arc<dyn ConcurrencyStrategy> = match config.strategy {
        // `none` shows the race: no shortcut inside its section either
        name @ StrategyName::NoControl => Arc::new(Gated::new(name, Gate::ReadModifyWrite, db, None)),
        StrategyName::AppMutex => Arc::new(AppMutex::new(db, book.clone())),
        name @ StrategyName::PessimisticLock => Arc::new(Gated::new(name, Gate::ForUpdate, db, book.clone())),
        StrategyName::OptimisticLock => {
            Arc::new(Optimistic::new(db, config.optimistic.clone(), book.clone()))
        }
        name @ StrategyName::DbAtomic => Arc::new(Gated::new(name, Gate::Atomic, db, book.clone())),
        StrategyName::RedisLock => Arc::new(
            RedisLock::new(db, need_redis(StrategyName::RedisLock)?, redis_prefix, config.redis_lock.clone())
                .with_sold_out(book.clone()),
        ),
        StrategyName::RedisAtomic => {
            Arc::new(RedisAtomic::new(db, need_redis(StrategyName::RedisAtomic)?, redis_prefix))
        }
        name @ (StrategyName::KafkaSinglePartition
        | StrategyName::KafkaRedisLock
        | StrategyName::KafkaKeyed) => {
            if kafka.brokers.trim().is_empty() {
                return Err(BuildError::MissingBackend {
                    strategy: name,
                    backend: "Kafka",
                    setting: "kafka.brokers (APP__KAFKA__BROKERS), e.g. 127.0.0.1:9092",
                });
            }
            let lock = if name == StrategyName::KafkaRedisLock && config.kafka_lock {
                let redis = need_redis(name)?;
                Some(Arc::new(
                    RedisLock::new(db.clone(), redis, redis_prefix, config.redis_lock.clone())
                        .measured_as(name),
                ))
            } else {
                None
            };
            let strategy = KafkaStrategy::connect(name, db, kafka, placement, lock)
                .await
                .map_err(|reason| BuildError::Backend { strategy: name, reason })?;
            Arc::new(strategy)
        }
    };
    let strategy: Arc<dyn ConcurrencyStrategy> = match book {
        Some(book) => Arc::new(Shortcut::new(strategy, book)),
        None => strategy,
    };
    Ok(Arc::new(crate::probes::Measured::new(strategy)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_every_variant_once() {
        for (i, (name, spelling, _)) in REGISTRY.iter().enumerate() {
            assert_eq!(name.as_str(), *spelling, "row {i}");
            assert_eq!(spelling.parse::<StrategyName>().ok(), Some(*name));
            assert_eq!(REGISTRY.iter().filter(|(n, _, _)| n == name).count(), 1, "{spelling} twice");
        }
        // serde's spelling (kebab-case of the variant) agrees with the registry's
        for name in StrategyName::ALL {
            let json = serde_json::to_string(&name).unwrap_or_default();
            assert_eq!(json, format!("\"{name}\""));
        }
    }

    /// A new variant fails to compile here until it is added (and given a registry row).
    #[test]
    fn every_variant_has_a_registry_row() {
        for name in StrategyName::ALL {
            match name {
                StrategyName::NoControl
                | StrategyName::AppMutex
                | StrategyName::PessimisticLock
                | StrategyName::OptimisticLock
                | StrategyName::RedisLock
                | StrategyName::KafkaSinglePartition
                | StrategyName::KafkaRedisLock
                | StrategyName::KafkaKeyed
                | StrategyName::DbAtomic
                | StrategyName::RedisAtomic => {}
            }
        }
        assert_eq!(StrategyName::ALL.len(), 10, "a variant without a row, or a row without a variant");
    }

    #[test]
    fn a_misspelt_strategy_in_configuration_lists_the_valid_ones() {
        let err = serde_json::from_str::<StrategyName>("\"fastest\"").err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("unknown strategy `fastest`"), "{err}");
        for name in StrategyName::ALL {
            assert!(err.contains(name.as_str()), "{name} missing from: {err}");
        }
        assert_eq!(serde_json::from_str::<StrategyName>("\"db-atomic\"").ok(), Some(StrategyName::DbAtomic));
    }

    #[test]
    fn available_follows_the_backends() {
        assert_eq!(StrategyName::available(false, false).len(), 5);
        assert!(StrategyName::available(true, false).contains(&StrategyName::RedisAtomic));
        assert!(!StrategyName::available(false, true).contains(&StrategyName::KafkaRedisLock));
        assert_eq!(StrategyName::available(true, true), StrategyName::ALL.to_vec());
    }
}
