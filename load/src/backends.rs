//! Which backends a comparison can use: the configured (or flagged) database, Redis and
//! Kafka, each asked once whether it answers — and, from that, which strategies can run
//! and which setting enables the ones that cannot.

use std::time::Duration;

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use strategies::{StrategyName, contract};

/// The database kind races run on; each deployment gets a fresh database of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A MariaDB/MySQL server: `mysql://user@host:port`, no database part.
    MariaDb(String),
    /// A fresh SQLite file per deployment (one process: SQLite has one writer).
    Sqlite,
}

/// The backends that answered.
#[derive(Debug, Clone)]
pub struct Backends {
    /// Where the races' databases are created.
    pub database: Database,
    /// Redis URL, when configured and answering.
    pub redis: Option<String>,
    /// Kafka brokers, when configured and answering.
    pub kafka: Option<String>,
    /// Why a configured backend is not used, one line each.
    pub notes: Vec<String>,
    /// The hops in front of the backends (and, per deployment, the API) when the run is
    /// over a simulated network; `None` on loopback.
    pub network: Option<std::sync::Arc<crate::network::Network>>,
}

/// A strategy left out, and what would bring it in.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    /// The strategy.
    pub strategy: String,
    /// Why, and the setting that enables it.
    pub reason: String,
}

impl Backends {
    /// Probes the configuration: `database_url` (`mysql://…` = MariaDB, anything else =
    /// SQLite), `redis_url` and `kafka_brokers` (empty = not configured).
    ///
    /// # Errors
    ///
    /// A MariaDB URL whose server does not answer: a comparison silently run on SQLite
    /// instead would measure something else.
    pub async fn probe(database_url: &str, redis_url: &str, kafka_brokers: &str) -> anyhow::Result<Self> {
        let database = if database_url.starts_with("mysql://") || database_url.starts_with("mariadb://") {
            let server = server_of(database_url);
            let probe = contract::connect(&server, 1)
                .await
                .with_context(|| format!("database.url: the MariaDB server {server} does not answer"))?;
            let _ = probe.close().await;
            Database::MariaDb(server)
        } else {
            Database::Sqlite
        };
        let mut notes = Vec::new();
        let redis = match redis_url.trim() {
            "" => None,
            url => match strategies::redis_pool::connect(url, 2).await {
                Ok(_) => Some(url.to_owned()),
                Err(e) => {
                    notes.push(format!("redis.url = {url} does not answer ({e})"));
                    None
                }
            },
        };
        let kafka = match kafka_brokers.trim() {
            "" => None,
            brokers => match strategies::kafka::client::connect(brokers, Duration::from_secs(3)).await {
                Ok(_) => Some(brokers.to_owned()),
                Err(e) => {
                    notes.push(format!("kafka.brokers = {brokers} does not answer ({e})"));
                    None
                }
            },
        };
        Ok(Self { database, redis, kafka, notes, network: None })
    }

    /// `mariadb` or `sqlite`.
    pub fn database_name(&self) -> &'static str {
        match self.database {
            Database::MariaDb(_) => "mariadb",
            Database::Sqlite => "sqlite",
        }
    }

    /// The strategies these backends allow, in registry order.
    pub fn available(&self) -> Vec<StrategyName> {
        StrategyName::available(self.redis.is_some(), self.kafka.is_some())
    }

    /// The strategies they do not allow, each with the setting that enables it.
    pub fn skipped(&self) -> Vec<Skipped> {
        let available = self.available();
        StrategyName::ALL
            .into_iter()
            .filter(|s| !available.contains(s))
            .map(|s| {
                let mut missing = Vec::new();
                if s.needs().redis && self.redis.is_none() {
                    missing.push("Redis: set redis.url (APP__REDIS__URL or --redis-url), e.g. redis://127.0.0.1:6379");
                }
                if s.needs().kafka && self.kafka.is_none() {
                    missing.push("Kafka: set kafka.brokers (APP__KAFKA__BROKERS or --kafka-brokers), e.g. 127.0.0.1:9092");
                }
                Skipped { strategy: s.to_string(), reason: format!("needs {}", missing.join("; and ")) }
            })
            .collect()
    }
}

/// `mysql://user@host:port/db?x` → `mysql://user@host:port` (`mariadb://` spelled `mysql://`).
pub fn server_of(url: &str) -> String {
    let url = url.replacen("mariadb://", "mysql://", 1);
    let rest = url.trim_start_matches("mysql://");
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    format!("mysql://{authority}")
}

/// A fresh database for one deployment, and how to remove it.
#[derive(Debug)]
pub struct FreshDatabase {
    /// Its URL, for `APP__DATABASE__URL`.
    pub url: String,
    sqlite_file: Option<std::path::PathBuf>,
}

impl FreshDatabase {
    /// `nanum_<prefix>_<random>` on MariaDB, or a new SQLite file under the temp folder.
    ///
    /// # Errors
    ///
    /// `CREATE DATABASE` refused.
    pub async fn create(database: &Database, prefix: &str) -> anyhow::Result<Self> {
        match database {
            Database::MariaDb(server) => {
                let (url, _) =
                    contract::create_mariadb_database_on(server, prefix).await.map_err(anyhow::Error::msg)?;
                Ok(Self { url, sqlite_file: None })
            }
            Database::Sqlite => {
                let file = std::env::temp_dir()
                    .join(format!("nanum_{prefix}_{}.db", &uuid::Uuid::new_v4().simple().to_string()[..12]));
                Ok(Self { url: format!("sqlite://{}?mode=rwc", file.display()), sqlite_file: Some(file) })
            }
        }
    }

    /// Connects with a small pool (the load tools' own checks and bulk inserts).
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub async fn connect(&self, pool: u32) -> anyhow::Result<DatabaseConnection> {
        Ok(contract::connect(&self.url, pool).await?)
    }

    /// Drops the MariaDB database, or deletes the SQLite file and its journal files.
    pub async fn remove(self) {
        if let Some(file) = self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let mut path = file.clone().into_os_string();
                path.push(suffix);
                let _ = std::fs::remove_file(path);
            }
            return;
        }
        let name = self.url.rsplit('/').next().unwrap_or_default().to_owned();
        if let Ok(db) = contract::connect(&self.url, 1).await {
            if let Err(e) = db.execute_unprepared(&format!("DROP DATABASE IF EXISTS `{name}`")).await {
                eprintln!("warning: could not drop the database {name}: {e}");
            }
            let _ = db.close().await;
        }
    }
}

/// Refuses a topology SQLite cannot serve: several processes writing one SQLite file
/// would measure its file lock, not a strategy.
///
/// # Errors
///
/// SQLite with more than one process.
pub fn check_topology(database: &Database, processes: usize) -> anyhow::Result<()> {
    if *database == Database::Sqlite && processes > 1 {
        bail!(
            "SQLite serves one process; use --topology all=1, or a MariaDB database.url \
             (APP__DATABASE__URL / --database-url mysql://root@127.0.0.1:3306)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_part_of_a_url() {
        assert_eq!(server_of("mysql://root@127.0.0.1:3306/nanum"), "mysql://root@127.0.0.1:3306");
        assert_eq!(server_of("mariadb://u:p@h:1/db?ssl=false"), "mysql://u:p@h:1");
        assert_eq!(server_of("mysql://root@127.0.0.1:3306"), "mysql://root@127.0.0.1:3306");
    }
}
