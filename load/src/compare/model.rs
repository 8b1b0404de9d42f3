//! The network a comparison crossed, and the round-trip model: how many round trips each
//! strategy makes while its serialising resource (the stock row, a lock) is held, and so
//! the winners per second one row allows at a given round trip —
//! `1 / (held round trips × RTT + the row's own time per winner)`.

use serde::{Deserialize, Serialize};
use strategies::StrategyName;

use crate::{backends::Backends, figures::num};

/// The network a run crossed: the profile, the hops, a hop's round trip as measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// `loopback`, `lan`, `az`, `cross-az` or `custom`.
    pub profile: String,
    /// Round trip each hop adds, ms.
    pub rtt_ms: f64,
    /// ± jitter per chunk and direction, ms.
    pub jitter_ms: f64,
    /// The proxied hops (the backends'; every API instance has one too).
    pub hops: Vec<String>,
    /// A hop's round trip measured at the start (none on loopback).
    pub measured: Option<crate::network::Measured>,
}

impl NetworkInfo {
    pub(super) fn of(backends: &Backends) -> Self {
        match &backends.network {
            None => Self { profile: "loopback".into(), ..Self::default() },
            Some(n) => Self {
                profile: n.profile.name.to_owned(),
                rtt_ms: n.profile.rtt_ms,
                jitter_ms: n.profile.jitter_ms,
                hops: n
                    .hops
                    .iter()
                    .map(|h| h.name.clone())
                    .chain(["api (one per instance)".to_owned()])
                    .collect(),
                measured: Some(n.measured),
            },
        }
    }

    /// One line for the preamble and the report.
    pub fn text(&self) -> String {
        match &self.measured {
            None => format!(
                "network {}: no proxy",
                if self.profile.is_empty() { "loopback" } else { &self.profile }
            ),
            Some(m) => format!(
                "network {}: {} ms RTT ± {} ms on every hop ({}); a hop measured {} ms p50, {} ms mean, {} ms p99 (loopback alone {} ms)",
                self.profile,
                self.rtt_ms,
                self.jitter_ms,
                self.hops.join(", "),
                num(m.p50_ms),
                num(m.mean_ms),
                num(m.p99_ms),
                num(m.direct_p50_ms),
            ),
        }
    }
}

/// What each strategy holds across round trips, counted from the code: from the moment the
/// serialising resource is granted at its server until its release executes there (or, where
/// the next holder cannot start before that, until it can), in round trips of the database
/// and Redis hops, per winner — or per batch (`true`), where `B`
/// winners share them and the bound is `B` times higher. The counts include sqlx's
/// `PING` on every pool checkout and deadpool's recycle `PING`, which a reading of the
/// statements alone misses. docs/performance.md ("Over a network") has the table in words.
pub const HELD: [(StrategyName, f64, f64, bool); 12] = [
    // The stock row, `UPDATE` → `COMMIT`; the read before it is not serialised (the race).
    (StrategyName::NoControl, 1.0, 0.0, false),
    // The in-process mutex over ping, BEGIN, insert, read, update, commit.
    (StrategyName::AppMutex, 6.0, 0.0, false),
    // The row from `SELECT … FOR UPDATE` executing: half back, the update, half to COMMIT.
    (StrategyName::PessimisticLock, 2.0, 0.0, false),
    // The row from the versioned `UPDATE` to COMMIT (a conflict costs a whole new attempt).
    (StrategyName::OptimisticLock, 1.0, 0.0, false),
    // The Redis lock is held for the section's seven database round trips and two of Redis,
    // but a process's next head only starts acquiring after the release: the serial cycle is
    // the seven and four of Redis (acquire, the pool's ping, the lease check, release).
    (StrategyName::RedisLock, 7.0, 4.0, false),
    // The partition's consumer loop, per fetched batch.
    (StrategyName::KafkaSinglePartition, 9.0, 0.0, true),
    // The Redis lock, per partition batch.
    (StrategyName::KafkaRedisLock, 10.0, 2.0, true),
    // The event's partition consumer, per batch.
    (StrategyName::KafkaKeyed, 9.0, 0.0, true),
    // The row from the conditional `UPDATE` to COMMIT.
    (StrategyName::DbAtomic, 1.0, 0.0, false),
    // The Lua gate holds nothing across a round trip; the database row's decrement does.
    (StrategyName::RedisAtomic, 1.0, 0.0, false),
    // The row per batch (`FOR UPDATE` → decrement → COMMIT).
    (StrategyName::GroupCommit, 2.0, 0.0, true),
    // The named lock: half a trip for the grant, ping and the five statements, half for
    // `RELEASE_LOCK`.
    (StrategyName::NamedLock, 7.0, 0.0, false),
];

/// The model's bound on winners per second for `strategy` when every hop's round trip is
/// `rtt_ms` on average and the row's own work per winner (statements, commit, the lock's
/// hand-off — measured with the hop undelayed) is `own_ms`:
/// `1 / (held round trips × RTT + own)`. `None` on loopback, for a batching strategy (its
/// bound depends on the batch size, which the load decides), or a strategy the table does
/// not know.
pub fn predicted_bound(strategy: &str, rtt_ms: f64, own_ms: f64) -> Option<f64> {
    let (_, db, redis, batched) = held(strategy)?;
    (!batched && rtt_ms > 0.0).then(|| 1000.0 / ((db + redis) * rtt_ms + own_ms))
}

/// `strategy`'s row of [`HELD`], by its name as reports keep it.
fn held(strategy: &str) -> Option<&'static (StrategyName, f64, f64, bool)> {
    HELD.iter().find(|(s, ..)| s.as_str() == strategy)
}

/// Round trips held per winner (or per batch), in words, for the report.
pub fn held_text(strategy: &str) -> String {
    match held(strategy) {
        Some((_, db, redis, batched)) => {
            let mut t = format!("{db} DB");
            if *redis > 0.0 {
                let _ = std::fmt::Write::write_fmt(&mut t, format_args!(" + {redis} Redis"));
            }
            if *batched {
                t.push_str(" per batch");
            }
            t
        }
        None => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_strategy_has_a_round_trip_count() {
        for strategy in StrategyName::ALL {
            assert!(HELD.iter().any(|(s, ..)| *s == strategy), "{strategy} is missing from HELD");
        }
        assert_eq!(HELD.len(), StrategyName::ALL.len());
    }

    #[test]
    fn the_bound_falls_with_the_round_trip() {
        let at = |rtt| predicted_bound("pessimistic-lock", rtt, 0.0).unwrap();
        assert!((at(0.5) - 1000.0).abs() < 1e-9);
        assert!((at(1.5) * 3.0 - at(0.5)).abs() < 1e-9);
        // The row's own time adds to the round trips: 2 × 0.5 + 0.25 ms per winner.
        assert!((predicted_bound("pessimistic-lock", 0.5, 0.25).unwrap() - 800.0).abs() < 1e-9);
        assert_eq!(predicted_bound("pessimistic-lock", 0.0, 0.2), None);
        assert_eq!(predicted_bound("group-commit", 0.5, 0.0), None);
    }
}
