//! The contract every strategy must keep, as reusable code (after quickwit's
//! `storage_test_suite`): [`race`] runs N concurrent applicants against K copies and
//! [`RaceReport::violations`] lists every broken invariant through [`Check`], the one
//! contract check that the HTTP races (`nanum_load`: the multi-instance tests,
//! `nanum loadtest`, `nanum compare`) use too. `tests/contract.rs` calls it for each
//! strategy; the criterion bench reuses the same harness.
//!
//! It also owns [`fresh_mariadb`], the per-test database: a new MariaDB database with the
//! race tables, or a printed skip when MariaDB is absent — except under `CI=true`, where an
//! absent service fails the test instead, so a broken `scripts/services-up` cannot pass.

mod check;
mod each;

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use sea_orm_migration::{MigrationTrait, SchemaManager};
use tokio::sync::Barrier;

pub use check::Check;
pub use each::{for_each_strategy, selected};

use crate::{ApplyOutcome, ApplyRequest, ConcurrencyStrategy, schema};

/// MariaDB server URL used by tests (no database part); override with `NANUM_TEST_MYSQL_URL`.
pub const DEFAULT_TEST_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306";

/// The server URL tests use.
pub fn test_mysql_url() -> String {
    std::env::var("NANUM_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_TEST_MYSQL_URL.to_owned())
}

/// True when running under CI, where a missing service is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing service: panics under CI, otherwise prints why the test is skipped.
///
/// # Panics
///
/// Under `CI=true`, always: a service the tests need is absent.
pub fn service_absent(service: &str, why: &str) {
    if in_ci() {
        panic!("CI=true and {service} is not reachable ({why}); did scripts/services-up run?");
    }
    eprintln!("SKIPPED: {service} is not reachable ({why}); run scripts/services-up to include this test");
}

/// Creates a fresh, uniquely named MariaDB database on the test server and returns its URL
/// and name, or why it could not (never panics, never skips): the one "fresh database"
/// helper, for tests ([`fresh_mariadb_url`]), benches and tools alike.
///
/// # Errors
///
/// The server does not answer within a few seconds, or refuses `CREATE DATABASE`.
pub async fn create_mariadb_database(prefix: &str) -> Result<(String, String), String> {
    create_mariadb_database_on(&test_mysql_url(), prefix).await
}

/// As [`create_mariadb_database`], on the MariaDB `server` given as a URL without a database
/// part (`nanum compare` creates its databases on the configured server).
///
/// # Errors
///
/// As [`create_mariadb_database`].
pub async fn create_mariadb_database_on(server: &str, prefix: &str) -> Result<(String, String), String> {
    let mut opts = ConnectOptions::new(server.to_owned());
    opts.max_connections(1).connect_timeout(Duration::from_secs(3)).sqlx_logging(false);
    // The outer timeout also covers a host that swallows packets instead of refusing.
    let admin = match tokio::time::timeout(Duration::from_secs(5), Database::connect(opts)).await {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => return Err(format!("{server}: {e}")),
        Err(_) => return Err(format!("{server}: no answer within 5 s")),
    };
    let name = format!("nanum_{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let created = admin.execute_unprepared(&format!("CREATE DATABASE `{name}`")).await;
    let _ = admin.close().await;
    created.map_err(|e| format!("CREATE DATABASE failed: {e}"))?;
    Ok((format!("{}/{name}", server.trim_end_matches('/')), name))
}

/// Creates a fresh, uniquely named MariaDB database and returns its URL, or `None` (after
/// [`service_absent`]) when MariaDB cannot be reached.
pub async fn fresh_mariadb_url(prefix: &str) -> Option<String> {
    match create_mariadb_database(prefix).await {
        Ok((url, _)) => Some(url),
        Err(why) => {
            service_absent("MariaDB", &why);
            None
        }
    }
}

/// Redis URL used by tests; override with `NANUM_TEST_REDIS_URL`.
pub fn test_redis_url() -> String {
    std::env::var("NANUM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A Redis pool for tests, or `None` (after [`service_absent`]) when Redis is absent.
pub async fn test_redis() -> Option<crate::redis_pool::Pool> {
    match crate::redis_pool::connect(&test_redis_url(), 32).await {
        Ok(pool) => Some(pool),
        Err(e) => {
            service_absent("Redis", &e);
            None
        }
    }
}

/// Kafka brokers used by tests; override with `NANUM_TEST_KAFKA_BROKERS`.
pub fn test_kafka_brokers() -> String {
    std::env::var("NANUM_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// Kafka settings for a test: the test broker, a topic no other test uses, and a reply
/// bound long enough that a correct strategy never answers `pending` in the contract
/// races. `None` (after [`service_absent`]) when the broker is absent.
pub async fn test_kafka(what: &str) -> Option<crate::kafka::KafkaConfig> {
    let brokers = test_kafka_brokers();
    if let Err(e) = crate::kafka::client::connect(&brokers, Duration::from_secs(5)).await {
        service_absent("Kafka", &e);
        return None;
    }
    Some(crate::kafka::KafkaConfig {
        brokers,
        topic: format!("nanum-test.{what}.{}", uuid::Uuid::new_v4().simple()),
        reply_timeout_ms: 30_000,
        ..crate::kafka::KafkaConfig::default()
    })
}

/// A key prefix no other test uses, so tests sharing one Redis never collide.
pub fn unique_prefix(what: &str) -> String {
    format!("nanum-test:{what}:{}", uuid::Uuid::new_v4().simple())
}

/// A fresh MariaDB database holding only the race tables, with a pool of `pool` connections.
pub async fn fresh_mariadb(prefix: &str, pool: u32) -> Option<DatabaseConnection> {
    let url = fresh_mariadb_url(prefix).await?;
    let db = connect(&url, pool).await.expect("connect to the fresh test database");
    migrate(&db).await.expect("create the race tables");
    Some(db)
}

/// Connects with a pool of `pool` connections and quiet statement logging.
///
/// # Errors
///
/// Any connection error.
pub async fn connect(url: &str, pool: u32) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(pool)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    Database::connect(opts).await
}

/// `pessimistic-lock`'s section once, statement for statement as the strategy runs it, but
/// without the sold-out shortcut and without retrying: the hot-row loop `nanum compare`
/// measures every strategy against. `Ok(true)` when it took a copy.
///
/// # Errors
///
/// Any database error, a deadlock or lock timeout included (nothing was written then).
pub async fn hot_row_section(
    db: &DatabaseConnection,
    event_id: i64,
    user_id: i64,
    request_id: &str,
) -> Result<bool, DbErr> {
    let req = ApplyRequest { event_id, user_id, request_id: request_id.to_owned() };
    let probes = crate::probes::probes(crate::StrategyName::PessimisticLock);
    let attempt = crate::section::run(db, None, &req, crate::section::Gate::ForUpdate, probes).await?;
    Ok(matches!(attempt, crate::section::Attempt::Done(ApplyOutcome::Won { .. })))
}

/// Runs this crate's migrations alone (the app runs it inside its full migrator).
///
/// # Errors
///
/// Any database error.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    schema::Migration.up(&SchemaManager::new(db)).await?;
    crate::outcomes::Migration.up(&SchemaManager::new(db)).await
}

/// What a race produced, and what the database holds afterwards.
#[derive(Debug, Clone, Default)]
pub struct RaceReport {
    /// Copies offered.
    pub quantity: i32,
    /// Distinct readers racing.
    pub applicants: usize,
    /// Requests each reader sent.
    pub attempts_each: usize,
    /// `Won` answers.
    pub won: usize,
    /// `SoldOut` answers.
    pub sold_out: usize,
    /// `AlreadyApplied` answers.
    pub already_applied: usize,
    /// Errors, as text (a correct strategy under the contract has none).
    pub errors: Vec<String>,
    /// Application rows in the database.
    pub rows: usize,
    /// Distinct readers among those rows.
    pub distinct_winners: usize,
    /// `remaining` after the race.
    pub remaining: i32,
    /// Wall time of the race.
    pub elapsed: Duration,
}

impl RaceReport {
    /// The winners a correct strategy must produce: `min(N, K)`.
    pub fn expected_winners(&self) -> usize {
        self.applicants.min(usize::try_from(self.quantity).unwrap_or(0))
    }

    /// True when more copies were handed out than exist.
    pub fn over_allocated(&self) -> bool {
        self.rows > usize::try_from(self.quantity).unwrap_or(0)
    }

    /// The race's books, for the one contract check.
    pub fn check(&self) -> Check {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let answered = self.won + self.sold_out + self.already_applied + self.errors.len();
        Check {
            copies: i64::from(self.quantity),
            readers: count(self.applicants),
            requests: count(self.applicants * self.attempts_each),
            winners: count(self.rows),
            distinct_winners: count(self.distinct_winners),
            remaining: i64::from(self.remaining),
            won_answers: count(self.won),
            lost_answers: count(self.sold_out + self.already_applied),
            server_errors: count(self.errors.len()),
            // answers the harness never got (a task that did not come back)
            unexpected: count((self.applicants * self.attempts_each).saturating_sub(answered)),
            ..Check::default()
        }
    }

    /// Every broken invariant with its count ([`Check::violations`]); empty when the
    /// contract held.
    pub fn violations(&self) -> BTreeMap<&'static str, u64> {
        self.check().violations()
    }
}

/// Creates an event's stock row with `quantity` copies and returns the event id.
///
/// # Errors
///
/// Any database error.
pub async fn fresh_event(db: &DatabaseConnection, quantity: i32) -> Result<i64, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT COALESCE(MAX(event_id), 0) + 1 FROM event_stock",
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("max(event_id)".into()))?;
    let id: i64 = row.try_get_by_index(0)?;
    schema::insert_stock(db, id, quantity).await?;
    Ok(id)
}

/// Races `applicants` readers, each sending `attempts_each` requests, all released at once
/// by a barrier, against one event, then reads back the database.
///
/// # Errors
///
/// Only a failure to read the result back; strategy errors are collected in the report.
pub async fn race(
    strategy: Arc<dyn ConcurrencyStrategy>,
    db: &DatabaseConnection,
    event_id: i64,
    applicants: usize,
    attempts_each: usize,
) -> Result<RaceReport, DbErr> {
    let quantity_before = schema::remaining(db, event_id).await?.unwrap_or(0);
    let total = applicants * attempts_each;
    let barrier = Arc::new(Barrier::new(total));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for user in 0..applicants {
        for attempt in 0..attempts_each {
            let strategy = Arc::clone(&strategy);
            let barrier = Arc::clone(&barrier);
            let request = ApplyRequest {
                event_id,
                user_id: i64::try_from(user).unwrap_or(i64::MAX) + 1,
                request_id: format!("race-{event_id}-{user}-{attempt}-{}", uuid::Uuid::new_v4().simple()),
            };
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                strategy.apply(&request).await
            }));
        }
    }
    let mut report =
        RaceReport { quantity: quantity_before, applicants, attempts_each, ..RaceReport::default() };
    for task in tasks {
        match task.await {
            Ok(Ok(ApplyOutcome::Won { .. })) => report.won += 1,
            Ok(Ok(ApplyOutcome::SoldOut)) => report.sold_out += 1,
            Ok(Ok(ApplyOutcome::AlreadyApplied)) => report.already_applied += 1,
            Ok(Ok(ApplyOutcome::Pending)) => {
                report.errors.push("pending: not decided within the wait bound".into())
            }
            Ok(Err(e)) => report.errors.push(e.to_string()),
            Err(e) => report.errors.push(format!("task failed: {e}")),
        }
    }
    report.elapsed = started.elapsed();
    let winners = schema::winners(db, event_id).await?;
    report.rows = winners.len();
    report.distinct_winners = winners.iter().map(|w| w.user_id).collect::<HashSet<_>>().len();
    report.remaining = schema::remaining(db, event_id).await?.unwrap_or(-1);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(quantity: i32, applicants: usize) -> RaceReport {
        let winners = applicants.min(usize::try_from(quantity).unwrap_or(0));
        RaceReport {
            quantity,
            applicants,
            attempts_each: 1,
            won: winners,
            sold_out: applicants - winners,
            rows: winners,
            distinct_winners: winners,
            remaining: quantity - i32::try_from(winners).unwrap_or(0),
            ..RaceReport::default()
        }
    }

    #[test]
    fn a_race_report_is_judged_by_the_one_contract_check() {
        assert!(held(10, 300).violations().is_empty());
        assert!(held(100, 50).violations().is_empty());

        let over = RaceReport { rows: 12, won: 12, distinct_winners: 12, sold_out: 288, ..held(10, 300) };
        assert!(over.over_allocated());
        assert_eq!(over.violations().get("over-allocated"), Some(&2));

        let twice = RaceReport { distinct_winners: 9, ..held(10, 300) };
        assert!(twice.violations().contains_key("duplicate winners"));

        let lost = RaceReport { won: 9, sold_out: 291, ..held(10, 300) };
        assert!(lost.violations().contains_key("wins told ≠ rows"));

        let errors = RaceReport { errors: vec!["boom".into()], sold_out: 289, ..held(10, 300) };
        assert_eq!(errors.violations().get("5xx"), Some(&1));
    }
}
