//! One nanum deployment to race against: a fresh database, fresh Redis keys and Kafka
//! topic, real `nanum serve` processes in a [`Topology`] (through [`Cluster`]), an admin,
//! readers created in bulk with minted tokens — and, after each race, the check of what
//! the database holds against what the readers were told.

use std::{collections::HashSet, path::PathBuf, time::Duration};

use serde_json::Value;
use strategies::StrategyName;

use crate::{
    api,
    backends::{Backends, FreshDatabase, check_topology},
    cluster::Cluster,
    crowd::Crowd,
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
    /// The hops in front of `api` over a simulated network (empty on loopback).
    edge: Vec<crate::network::Hop>,
    database: FreshDatabase,
    client: reqwest::Client,
    admin: String,
    secret: String,
}

impl Deployment {
    /// Creates the fresh state and starts the processes: quiet logs (`RUST_LOG=warn`), no
    /// login throttle or rate limits, loopback only, a JWT secret and
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
        // Every instance's index follows the change log from its own position.
        let per_instance = move |i: usize| topology.env(i);
        let cluster = match Cluster::start(&spec.binary, topology.count(), &env, &per_instance).await {
            Ok(cluster) => cluster,
            Err(e) => {
                database.remove().await;
                return Err(e);
            }
        };
        let api = cluster.addresses()[..topology.api()].to_vec();
        // Over a simulated network the clients reach the instances through hops of their own.
        let (api, edge) = match &backends.network {
            Some(network) => match network.front(&api).await {
                Ok(fronted) => fronted,
                Err(e) => {
                    drop(cluster);
                    database.remove().await;
                    return Err(e);
                }
            },
            None => (api, Vec::new()),
        };
        let client = api::client()?;
        let admin = api::login(&client, &api[0], admin_email, &password).await?;
        Ok(Self { cluster, api, edge, database, client, admin, secret })
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

    /// `count` readers (as [`Deployment::readers`]) gathered into a [`Crowd`] that sends
    /// all its applications at once, round-robin over the API instances.
    ///
    /// # Errors
    ///
    /// Database or signing errors.
    pub async fn crowd(&self, count: usize, mint: &Mint) -> anyhow::Result<Crowd> {
        let readers = self.readers(count, mint).await?;
        let tokens = readers.into_iter().filter_map(|r| r.token).collect();
        Ok(Crowd::new(self.client.clone(), self.api.clone(), self.admin.clone(), tokens))
    }

    /// The admin's bearer token (the deployment made the admin with a password of its own).
    pub fn admin_token(&self) -> &str {
        &self.admin
    }

    /// The deployment's own database (for checks made beside the API).
    pub fn database_url(&self) -> &str {
        &self.database.url
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
        let lost = settled.values().filter(|s| matches!(s.as_str(), "sold_out" | "already_applied")).count();
        Ok(Check {
            copies,
            // a load run may send a reader more than once: "too few winners" is not judged here
            readers: 0,
            requests: stats.requests,
            lost_answers: stats.statuses.get(&409).copied().unwrap_or(0) + lost as u64,
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
        drop(self.edge);
        drop(self.cluster);
        self.database.remove().await;
    }
}

/// A race's books balanced: the one contract check, shared with the strategy-level race.
pub use strategies::contract::Check;
