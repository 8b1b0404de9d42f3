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

pub use crate::registry::{Needs, Scope, StrategyName};
use crate::{
    ConcurrencyStrategy,
    group_commit::GroupCommitConfig,
    kafka::{KafkaConfig, Placement},
    named_lock::NamedLockConfig,
    redis_lock::RedisLockConfig,
    registry::Parts,
    sold_out::Shortcut,
};

impl StrategyName {
    /// The configuration spelling, e.g. `pessimistic-lock`.
    pub fn as_str(self) -> &'static str {
        self.entry().spelling
    }

    /// The backends it needs beyond the database (`kafka-redis-lock` counts its lock).
    pub fn needs(self) -> Needs {
        self.entry().needs
    }

    /// How far its guarantee reaches (one process, any number of instances, or nowhere).
    pub fn scope(self) -> Scope {
        self.entry().scope
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

impl Serialize for StrategyName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
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
    /// Options of `group-commit`.
    #[serde(default)]
    pub group_commit: GroupCommitConfig,
    /// Options of `named-lock`.
    #[serde(default)]
    pub named_lock: NamedLockConfig,
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
            group_commit: GroupCommitConfig::default(),
            named_lock: NamedLockConfig::default(),
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
    pub redis: Option<crate::redis_pool::Pool>,
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
    let parts = Parts::new(config, backends.into());
    let strategy = (config.strategy.entry().build)(&parts).await?;
    let strategy: Arc<dyn ConcurrencyStrategy> = match parts.book {
        Some(book) => Arc::new(Shortcut::new(strategy, book)),
        None => strategy,
    };
    Ok(Arc::new(crate::probes::Measured::new(strategy)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::REGISTRY;

    #[test]
    fn registry_names_every_variant_once() {
        for (i, entry) in REGISTRY.iter().enumerate() {
            assert_eq!(entry.name.as_str(), entry.spelling, "row {i}");
            assert_eq!(StrategyName::ALL[i], entry.name, "row {i} out of order");
            assert_eq!(entry.spelling.parse::<StrategyName>().ok(), Some(entry.name));
            assert_eq!(
                REGISTRY.iter().filter(|e| e.spelling == entry.spelling).count(),
                1,
                "{} twice",
                entry.spelling
            );
        }
        // serde's spelling (kebab-case of the variant) agrees with the registry's
        for name in StrategyName::ALL {
            let json = serde_json::to_string(&name).unwrap_or_default();
            assert_eq!(json, format!("\"{name}\""));
        }
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
        assert_eq!(StrategyName::available(false, false).len(), 7);
        assert!(StrategyName::available(true, false).contains(&StrategyName::RedisAtomic));
        assert!(!StrategyName::available(false, true).contains(&StrategyName::KafkaRedisLock));
        assert_eq!(StrategyName::available(true, true), StrategyName::ALL.to_vec());
    }
}
