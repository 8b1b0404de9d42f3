//! Several instances: 3 real `nanum serve` processes on one MariaDB database (and one
//! Redis), 300 readers each applying twice, spread round-robin across them, 10 copies.
//! The safe strategies must hold; `app-mutex` and `none` must be caught over-allocating
//! (within a bounded number of races), so the harness is shown to catch the bug.

use std::path::Path;

use nanum::configuration;
use nanum_load::{Cluster, Crowd, CrowdReport, Topology};
use strategies::{StrategyName, contract};

const INSTANCES: usize = 3;
pub const READERS: usize = 300;
pub const ATTEMPTS: usize = 2;
pub const COPIES: i64 = 10;

/// A running cluster, its signed-up crowd, and the database URL (for direct checks).
pub struct Launched {
    pub cluster: Cluster,
    pub crowd: Crowd,
    pub database_url: String,
    /// One cluster at a time: on 2 cores, two clusters of debug builds racing each other
    /// measure the machine, not the strategy.
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts `strategy` in `topology` on a fresh database (plus Redis / a fresh Kafka topic
/// when the strategy needs them), with `extra` environment for every instance.
pub async fn launch(strategy: StrategyName, topology: Topology, extra: &[(&str, &str)]) -> Option<Launched> {
    launch_crowd(strategy, topology, READERS, extra).await
}

/// As [`launch`], with a crowd of `readers`.
pub async fn launch_crowd(
    strategy: StrategyName,
    topology: Topology,
    readers: usize,
    extra: &[(&str, &str)],
) -> Option<Launched> {
    let turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let url = contract::fresh_mariadb_url("cluster").await?;
    let mut env = vec![
        ("APP_ENV".to_owned(), "test".to_owned()),
        ("APP_CONFIG_DIR".to_owned(), concat!(env!("CARGO_MANIFEST_DIR"), "/config").to_owned()),
        ("APP__DATABASE__URL".to_owned(), url.clone()),
        ("APP__CONCURRENCY__STRATEGY".to_owned(), strategy.to_string()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
        // 600 requests through one lock in debug builds on a busy 2-core CI machine can
        // queue longer than the 10 s production bound; here the question is correctness.
        ("APP__CONCURRENCY__REDIS_LOCK__MAX_WAIT_MS".to_owned(), "60000".to_owned()),
    ];
    if strategy.needs().redis {
        contract::test_redis().await?;
        env.push(("APP__REDIS__URL".to_owned(), contract::test_redis_url()));
        env.push(("APP__REDIS__KEY_PREFIX".to_owned(), contract::unique_prefix("cluster")));
    }
    if strategy.needs().kafka {
        let kafka = contract::test_kafka(strategy.as_str()).await?;
        env.push(("APP__KAFKA__BROKERS".to_owned(), kafka.brokers));
        env.push(("APP__KAFKA__TOPIC".to_owned(), kafka.topic));
    }
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let roles = move |i: usize| topology.env(i);
    let binary = Path::new(env!("CARGO_BIN_EXE_nanum"));
    let cluster = Cluster::start(binary, topology.count(), &env, &roles).await.expect("start the instances");
    let settings = configuration::load_for("test", &[]).expect("test settings");
    let admin = (settings.auth.admin_email.as_str(), settings.auth.admin_password.expose());
    let crowd = Crowd::sign_up(&cluster.addresses()[..topology.api()], readers, admin)
        .await
        .expect("sign the crowd up");
    Some(Launched { cluster, crowd, database_url: url, _turn: turn })
}

pub fn row(label: &str, topology: Topology, report: &CrowdReport, verdict: &str) {
    println!(
        "| `{label}` | {topology} | {} | {} / {COPIES} | {:?} ({} settled later) | {verdict} |",
        report.requests, report.winners, report.statuses, report.pending
    );
}

pub async fn holds_in(strategy: StrategyName, topology: Topology, extra: &[(&str, &str)]) {
    let Some(launched) = launch(strategy, topology, extra).await else { return };
    let report = launched.crowd.race(COPIES, ATTEMPTS).await.expect("race");
    row(strategy.as_str(), topology, &report, if report.holds(READERS) { "holds" } else { "BROKEN" });
    assert!(report.holds(READERS), "{strategy} broke in {topology:?}: {report:#?}");
}

pub async fn over_allocates_in(
    strategy: StrategyName,
    topology: Topology,
    extra: &[(&str, &str)],
    label: &str,
) {
    const TRIES: usize = 10;
    let Some(launched) = launch(strategy, topology, extra).await else { return };
    for attempt in 1..=TRIES {
        let report = launched.crowd.race(COPIES, ATTEMPTS).await.expect("race");
        if report.over_allocated() {
            row(label, topology, &report, &format!("over-allocates (try {attempt})"));
            return;
        }
    }
    panic!("{label} never over-allocated in {topology:?} in {TRIES} races");
}

async fn holds_across_instances(strategy: StrategyName) {
    holds_in(strategy, Topology::Uniform(INSTANCES), &[]).await;
}

async fn caught_over_allocating(strategy: StrategyName) {
    over_allocates_in(strategy, Topology::Uniform(INSTANCES), &[], strategy.as_str()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pessimistic_lock_holds_across_three_instances() {
    holds_across_instances(StrategyName::PessimisticLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn optimistic_lock_holds_across_three_instances() {
    holds_across_instances(StrategyName::OptimisticLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn db_atomic_holds_across_three_instances() {
    holds_across_instances(StrategyName::DbAtomic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_lock_holds_across_three_instances() {
    holds_across_instances(StrategyName::RedisLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_atomic_holds_across_three_instances() {
    holds_across_instances(StrategyName::RedisAtomic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn app_mutex_over_allocates_across_three_instances() {
    caught_over_allocating(StrategyName::AppMutex).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_control_over_allocates_across_three_instances() {
    caught_over_allocating(StrategyName::NoControl).await;
}
