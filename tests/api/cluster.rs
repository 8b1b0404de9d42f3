//! Several instances: 3 real `nanum serve` processes on one MariaDB database (and one
//! Redis), 300 readers each applying twice, spread round-robin across them, 10 copies.
//! The safe strategies must hold; `app-mutex` and `none` must be caught over-allocating
//! (within a bounded number of races), so the harness is shown to catch the bug.

use std::path::Path;

use nanum::{
    cluster::{Cluster, Crowd, CrowdReport},
    configuration,
};
use strategies::{StrategyName, contract};

const INSTANCES: usize = 3;
const READERS: usize = 300;
const ATTEMPTS: usize = 2;
const COPIES: i64 = 10;

async fn start(strategy: StrategyName) -> Option<(Cluster, Crowd)> {
    let url = contract::fresh_mariadb_url("cluster").await?;
    let mut env = vec![
        ("APP_ENV".to_owned(), "test".to_owned()),
        ("APP_CONFIG_DIR".to_owned(), concat!(env!("CARGO_MANIFEST_DIR"), "/config").to_owned()),
        ("APP__DATABASE__URL".to_owned(), url),
        ("APP__CONCURRENCY__STRATEGY".to_owned(), strategy.to_string()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ];
    if StrategyName::REDIS.contains(&strategy) {
        contract::test_redis().await?;
        env.push(("APP__REDIS__URL".to_owned(), contract::test_redis_url()));
        env.push(("APP__REDIS__KEY_PREFIX".to_owned(), contract::unique_prefix("cluster")));
    }
    let binary = Path::new(env!("CARGO_BIN_EXE_nanum"));
    let cluster =
        Cluster::start(binary, INSTANCES, &env, &|_| Vec::new()).await.expect("start the instances");
    let settings = configuration::load_for("test", &[]).expect("test settings");
    let admin = (settings.auth.admin_email.as_str(), settings.auth.admin_password.as_str());
    let crowd = Crowd::sign_up(&cluster.addresses(), READERS, admin).await.expect("sign the crowd up");
    Some((cluster, crowd))
}

fn row(strategy: StrategyName, report: &CrowdReport, verdict: &str) {
    println!(
        "| `{strategy}` | {INSTANCES} | {} | {} / {COPIES} | {:?} | {verdict} |",
        report.requests, report.winners, report.statuses
    );
}

async fn holds_across_instances(strategy: StrategyName) {
    let Some((_cluster, crowd)) = start(strategy).await else { return };
    let report = crowd.race(COPIES, ATTEMPTS).await.expect("race");
    row(strategy, &report, if report.holds(READERS) { "holds" } else { "BROKEN" });
    assert!(report.holds(READERS), "{strategy} broke across {INSTANCES} instances: {report:#?}");
}

async fn caught_over_allocating(strategy: StrategyName) {
    const TRIES: usize = 10;
    let Some((_cluster, crowd)) = start(strategy).await else { return };
    for attempt in 1..=TRIES {
        let report = crowd.race(COPIES, ATTEMPTS).await.expect("race");
        if report.over_allocated() {
            row(strategy, &report, &format!("over-allocates (try {attempt})"));
            return;
        }
    }
    panic!("{strategy} never over-allocated across {INSTANCES} instances in {TRIES} races");
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
    caught_over_allocating(StrategyName::None).await;
}
