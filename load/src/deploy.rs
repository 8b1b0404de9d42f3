//! One nanum deployment to race against: a fresh database, fresh Redis keys and Kafka
//! topic, real `nanum serve` processes in a [`Topology`] (through [`Cluster`]), an admin,
//! readers created in bulk with minted tokens — and, after each race, the check of what
//! the database holds against what the readers were told.

use std::{
    collections::{BTreeMap, HashSet},
    path::PathBuf,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use strategies::StrategyName;

use crate::{
    api,
    backends::{Backends, FreshDatabase, check_topology},
    cluster::Cluster,
    engine::Stats,
    readers::{self, Mint},
    target::Reader,
    topology::Topology,
};

/// How long 202 answers may take to settle before they count as unsettled.
const SETTLE_BOUND: Duration = Duration::from_secs(60);

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The `nanum` binary to start (`std::env::current_exe()`).
    pub binary: PathBuf,
    /// The strategy.
    pub strategy: StrategyName,
    /// How the processes split the work.
    pub topology: Topology,
    /// Kafka partitions (Kafka strategies only; `None` = the configured default).
    pub partitions: Option<u32>,
    /// Extra `APP__…` settings for every instance, applied last (`--set`, variants).
    pub env: Vec<(String, String)>,
}

/// A running deployment.
#[derive(Debug)]
pub struct Deployment {
    /// The processes.
    pub cluster: Cluster,
    /// Base URLs of the instances that serve HTTP.
    pub api: Vec<String>,
    database: FreshDatabase,
    client: reqwest::Client,
    admin: String,
    secret: String,
}

impl Deployment {
    /// Creates the fresh state and starts the processes: quiet logs (`RUST_LOG=warn`), no
    /// login throttle or rate limits, loopback only, one search sync task (instance 0), a JWT secret and
    /// admin password of its own.
    ///
    /// # Errors
    ///
    /// A backend the strategy needs is missing, SQLite with several processes, or an
    /// instance that does not start (its log tail is in the message).
    pub async fn start(spec: &Spec, backends: &Backends) -> anyhow::Result<Self> {
        check_topology(&backends.database, spec.topology.count())?;
        let needs = spec.strategy.needs();
        anyhow::ensure!(!needs.redis || backends.redis.is_some(), "{} needs Redis", spec.strategy);
        anyhow::ensure!(!needs.kafka || backends.kafka.is_some(), "{} needs Kafka", spec.strategy);
        let run = uuid::Uuid::new_v4().simple().to_string();
        let secret = format!("{run}{}", uuid::Uuid::new_v4().simple());
        let password = uuid::Uuid::new_v4().simple().to_string();
        let admin_email = "compare-admin@nanum.local";
        let database = FreshDatabase::create(&backends.database, "compare").await?;
        let mut env: Vec<(String, String)> = [
            ("APP__DATABASE__URL", database.url.as_str()),
            ("APP__CONCURRENCY__STRATEGY", spec.strategy.as_str()),
            ("APP__SERVER__HOST", "127.0.0.1"),
            ("APP__AUTH__JWT_SECRET", secret.as_str()),
            ("APP__AUTH__ADMIN_EMAIL", admin_email),
            ("APP__AUTH__ADMIN_PASSWORD", password.as_str()),
            // Abuse limits off for measuring: failed logins per email, and the request rates
            // per IP and per user (`Cluster::start` switches those off too).
            ("APP__AUTH__LOGIN_MAX_FAILURES", "1000000000"),
            ("APP__RATE_LIMIT__ENABLED", "false"),
            ("RUST_LOG", "warn"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let (true, Some(url)) = (needs.redis, &backends.redis) {
            env.push(("APP__REDIS__URL".into(), url.clone()));
            env.push(("APP__REDIS__KEY_PREFIX".into(), format!("nanum-compare:{run}")));
        }
        if let (true, Some(brokers)) = (needs.kafka, &backends.kafka) {
            env.push(("APP__KAFKA__BROKERS".into(), brokers.clone()));
            // A topic per deployment: a new partition count needs a new topic anyway.
            env.push(("APP__KAFKA__TOPIC".into(), format!("nanum-compare.{}.{run}", spec.strategy)));
            if let Some(partitions) = spec.partitions {
                env.push(("APP__KAFKA__PARTITIONS".into(), partitions.to_string()));
            }
        }
        env.extend(spec.env.iter().cloned());
        let topology = spec.topology;
        let per_instance = move |i: usize| {
            let mut extra = topology.env(i);
            // One outbox consumer per database; the others would only contend for it.
            extra.push(("APP__SEARCH__SYNC_ENABLED".into(), (i == 0).to_string()));
            extra
        };
        let cluster = match Cluster::start(&spec.binary, topology.count(), &env, &per_instance).await {
            Ok(cluster) => cluster,
            Err(e) => {
                database.remove().await;
                return Err(e);
            }
        };
        let api = cluster.addresses()[..topology.api()].to_vec();
        let client = api::client()?;
        let admin = api::login(&client, &api[0], admin_email, &password).await?;
        Ok(Self { cluster, api, database, client, admin, secret })
    }

    /// `count` readers: accounts created in bulk in the database, tokens minted with this
    /// deployment's secret.
    ///
    /// # Errors
    ///
    /// Database or signing errors.
    pub async fn readers(&self, count: usize, mint: &Mint) -> anyhow::Result<Vec<Reader>> {
        let db = self.database.connect(2).await?;
        let ids = readers::create_users(&db, count).await;
        let _ = db.close().await;
        readers::minted(mint, &self.secret, &ids?)
    }

    /// A new event of `copies`, open now.
    ///
    /// # Errors
    ///
    /// A failed API call.
    pub async fn open_event(&self, copies: i64) -> anyhow::Result<i64> {
        api::open_event(&self.client, &self.api[0], &self.admin, copies).await
    }

    /// Settles the race's 202 answers (bounded) and compares what the readers were told
    /// with what the database holds.
    ///
    /// # Errors
    ///
    /// A failed API call while reading back.
    pub async fn check(&self, event_id: i64, copies: i64, stats: &Stats) -> anyhow::Result<Check> {
        let pending: Vec<String> = stats
            .kept
            .iter()
            .filter(|k| k.status == 202)
            .filter_map(|k| serde_json::from_slice::<Value>(&k.body).ok())
            .filter_map(|body| body["application_id"].as_str().map(str::to_owned))
            .collect();
        let settled = api::settle(&self.client, &self.api[0], &self.admin, &pending, SETTLE_BOUND).await?;
        let outcome = api::outcome(&self.client, &self.api[0], &self.admin, event_id).await?;
        let count =
            |f: &dyn Fn(u16) -> bool| stats.statuses.iter().filter(|(s, _)| f(**s)).map(|(_, n)| *n).sum();
        Ok(Check {
            copies,
            winners: outcome.winners.len() as u64,
            distinct_winners: outcome.winners.iter().collect::<HashSet<_>>().len() as u64,
            remaining: outcome.remaining,
            won_answers: stats.statuses.get(&201).copied().unwrap_or(0)
                + settled.values().filter(|s| *s == "won").count() as u64,
            pending: stats.statuses.get(&202).copied().unwrap_or(0),
            unsettled: settled.values().filter(|s| *s == "pending").count() as u64
                // a 202 whose body named no request id can never be settled
                + stats.statuses.get(&202).copied().unwrap_or(0).saturating_sub(pending.len() as u64),
            server_errors: count(&|s| s >= 500),
            unexpected: count(&|s| !matches!(s, 201 | 202 | 409) && s < 500) + stats.errors,
        })
    }

    /// Stops the processes and removes the database.
    pub async fn remove(self) {
        drop(self.cluster);
        self.database.remove().await;
    }
}

/// A race's books balanced: what readers were told against what the database holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Copies offered.
    pub copies: i64,
    /// Application rows.
    pub winners: u64,
    /// Distinct readers among them.
    pub distinct_winners: u64,
    /// `remaining` afterwards.
    pub remaining: i64,
    /// 201 answers plus 202s that settled `won`.
    pub won_answers: u64,
    /// 202 `pending` answers.
    pub pending: u64,
    /// 202s still pending when the settle bound ran out.
    pub unsettled: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Other answers outside the contract (4xx but 409, no answer at all).
    pub unexpected: u64,
}

impl Check {
    /// Winners beyond the copies.
    pub fn over_allocated(&self) -> u64 {
        self.winners.saturating_sub(u64::try_from(self.copies).unwrap_or(0))
    }

    /// Rows beyond one per reader.
    pub fn duplicates(&self) -> u64 {
        self.winners - self.distinct_winners.min(self.winners)
    }

    /// Whether the contract itself broke: a copy too many, a reader twice, a win told that
    /// is not stored (or stored but not told), stock that does not add up, an accepted
    /// request never decided. A 5xx or a refused request is counted among the violations
    /// but is not this: nothing was written for it, and the reader was told so.
    pub fn breaks_contract(&self) -> bool {
        self.violations().keys().any(|k| !matches!(*k, "5xx" | "other errors"))
    }

    /// Every broken invariant with its count; empty when the race held.
    pub fn violations(&self) -> BTreeMap<&'static str, u64> {
        let stock_off = self.remaining != self.copies - i64::try_from(self.winners).unwrap_or(i64::MAX);
        let answers_off = self.won_answers.abs_diff(self.winners);
        [
            ("over-allocated", self.over_allocated()),
            ("duplicate winners", self.duplicates()),
            ("5xx", self.server_errors),
            ("unsettled 202", self.unsettled),
            ("wins told ≠ rows", answers_off),
            ("stock ≠ copies − winners", u64::from(stock_off)),
            ("other errors", self.unexpected),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_race_has_no_violations_and_each_fault_is_named() {
        let clean = Check {
            copies: 10,
            winners: 10,
            distinct_winners: 10,
            remaining: 0,
            won_answers: 10,
            ..Check::default()
        };
        assert!(clean.violations().is_empty());
        let over = Check { winners: 58, distinct_winners: 58, won_answers: 58, ..clean };
        assert_eq!(over.violations().get("over-allocated"), Some(&48));
        // remaining stayed 0 while 58 rows were written: the stock no longer adds up
        assert!(over.violations().contains_key("stock ≠ copies − winners"));
        let dup = Check { distinct_winners: 9, ..clean };
        assert_eq!(dup.violations().get("duplicate winners"), Some(&1));
        let lost = Check { won_answers: 9, unsettled: 1, server_errors: 2, ..clean };
        assert_eq!(lost.violations().len(), 3);
        assert!(lost.breaks_contract() && over.breaks_contract() && dup.breaks_contract());
        let refused = Check { server_errors: 1, unexpected: 2, ..clean };
        assert_eq!(refused.violations().len(), 2);
        assert!(!refused.breaks_contract(), "a 503 with nothing written keeps the contract");
    }
}
