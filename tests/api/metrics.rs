//! `/metrics` after a race of 1,000 readers for 100 copies on one real `nanum serve`
//! process (its own recorder, nobody else's counts): the strategy's counters say 100 won and
//! 900 rejected, as the database does. With a Kafka strategy the consumer decides, so its
//! decision counters are the ones that match the database (plus the losers the sold-out
//! shortcut answered without producing), and the API side's answers add up to the requests
//! sent (202 included). Every metric the Grafana dashboard queries is in a
//! live body.

use std::{collections::BTreeSet, time::Duration};

use nanum_load::{CrowdReport, Topology};
use sea_orm::{ConnectionTrait, Database, Statement};
use strategies::StrategyName;

use crate::cluster::{Launched, launch_crowd};

const READERS: usize = 1_000;
const COPIES: i64 = 100;
const DASHBOARD: &str = include_str!("../../deploy/grafana/dashboards/nanum.json");

/// The sum of `name`'s samples whose labels include every pair of `labels`.
fn sample_sum(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))) {
            total += value.parse::<f64>().unwrap_or_else(|_| panic!("not a number: {line}"));
        }
    }
    total
}

async fn scrape(address: &str) -> String {
    let response = reqwest::get(format!("{address}/metrics")).await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"].to_str().unwrap_or_default().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "content type {kind}");
    response.text().await.expect("metrics body")
}

/// Stored winners, straight from the race's database.
async fn winners_in_database(launched: &Launched) -> i64 {
    let db = Database::connect(&launched.database_url).await.expect("connect");
    let sql = "SELECT COUNT(*) FROM applications";
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("count");
    row.expect("a row").try_get_by_index::<i64>(0).expect("a count")
}

/// The race on one instance; `None` when MariaDB (or the strategy's backend) is absent.
async fn race(strategy: StrategyName) -> Option<(Launched, CrowdReport)> {
    let launched = launch_crowd(strategy, Topology::Uniform(1), READERS, &[]).await?;
    let report = launched.crowd.race(COPIES, 1).await.expect("race");
    assert!(report.holds(READERS), "{strategy}: {report:#?}");
    assert_eq!(winners_in_database(&launched).await, COPIES, "{strategy}: winners stored");
    Some((launched, report))
}

/// The answers `apply` counted on the instance: won, and sold_out + already_applied.
fn answered(body: &str, strategy: StrategyName) -> (f64, f64, f64) {
    let count = |outcome| {
        sample_sum(body, "nanum_applications_total", &[("strategy", strategy.as_str()), ("outcome", outcome)])
    };
    (count("won"), count("sold_out") + count("already_applied"), count("pending"))
}

async fn counters_match_the_database(strategy: StrategyName) {
    let Some((launched, report)) = race(strategy).await else { return };
    let body = scrape(&launched.deployment.cluster.addresses()[0]).await;
    let (won, rejected, pending) = answered(&body, strategy);
    println!("{strategy}: /metrics says {won} won, {rejected} rejected, {pending} pending");
    assert_eq!(won, 100.0, "{strategy}: won");
    assert_eq!(rejected, 900.0, "{strategy}: rejected");
    assert_eq!(pending, 0.0, "{strategy}: pending");
    assert_eq!(report.winners, 100);
    let applies = sample_sum(
        &body,
        "nanum_http_requests_total",
        &[("route", "/api/v1/events/{id}/applications"), ("method", "POST")],
    );
    assert_eq!(applies, 1_000.0, "{strategy}: apply requests counted under their route pattern");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_100_won_and_900_rejected_for_pessimistic_lock_as_the_database_does() {
    counters_match_the_database(StrategyName::PessimisticLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_100_won_and_900_rejected_for_redis_atomic_as_the_database_does() {
    counters_match_the_database(StrategyName::RedisAtomic).await;
}

/// The Kafka strategies: the consumer decides. Its decision counters match the database
/// exactly; the API side's answers add up to the requests (202 counted as pending), and once
/// every late answer has arrived no request is left pending and no partition lags.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_consumer_decisions_count_100_won_and_900_rejected_and_the_answers_add_up() {
    let strategy = StrategyName::KafkaKeyed;
    let Some((launched, report)) = race(strategy).await else { return };
    let address = &launched.deployment.cluster.addresses()[0];
    let decided = |body: &str, outcome| {
        sample_sum(
            body,
            "nanum_kafka_decisions_total",
            &[("strategy", strategy.as_str()), ("outcome", outcome)],
        )
    };
    // late answers reach the waiters just after their commit; give them a moment
    let mut body = scrape(address).await;
    for _ in 0..50 {
        let settled = sample_sum(&body, "nanum_kafka_pending_requests", &[]) == 0.0
            && sample_sum(&body, "nanum_kafka_consumer_lag", &[]) == 0.0;
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        body = scrape(address).await;
    }
    // a request is either answered by the sold-out shortcut (never produced) or decided
    let rejected_by_consumer = decided(&body, "sold_out") + decided(&body, "already_applied");
    let shortcut = sample_sum(&body, "nanum_sold_out_shortcut_total", &[("strategy", strategy.as_str())]);
    let (won, rejected, pending) = answered(&body, strategy);
    println!(
        "{strategy}: decided {} won, {rejected_by_consumer} rejected; {shortcut} rejected by the shortcut; \
         answered {won} won, {rejected} rejected, {pending} pending (202)",
        decided(&body, "won")
    );
    assert_eq!(decided(&body, "won"), 100.0, "decided won");
    assert_eq!(rejected_by_consumer + shortcut, 900.0, "rejected by the consumer or the shortcut");
    assert_eq!(won + rejected + pending, 1_000.0, "every request answered once");
    assert_eq!(pending, report.pending as f64, "202 answers");
    assert!(won <= 100.0, "never more wins told than decided");
    assert_eq!(sample_sum(&body, "nanum_kafka_pending_requests", &[]), 0.0, "late answers arrived");
    assert_eq!(sample_sum(&body, "nanum_kafka_consumer_lag", &[]), 0.0, "consumed to the end");
    // every request the shortcut did not answer was produced (and timed)
    let produced = sample_sum(&body, "nanum_kafka_produce_seconds_count", &[]);
    assert!(produced >= 1_000.0 - shortcut, "produce timed: {produced} for {} requests", 1_000.0 - shortcut);

    // the dashboard's every metric, from a live body (one search per engine first)
    for engine in ["tantivy", "like", "fulltext"] {
        let url = format!("{address}/api/v1/books/search?q=book&engine={engine}");
        assert_eq!(reqwest::get(url).await.expect("search").status(), 200, "{engine}");
    }
    let body = scrape(address).await;
    let exposed: BTreeSet<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let queried = dashboard_metrics();
    assert!(queried.len() >= 10, "the dashboard queries {queried:?}");
    let missing: Vec<_> = queried.iter().filter(|m| !exposed.contains(m.as_str())).collect();
    assert!(missing.is_empty(), "the dashboard queries {missing:?}, which /metrics does not expose");
}

/// Every `nanum_…` metric the dashboard's queries name, histogram suffixes taken off.
fn dashboard_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = DASHBOARD;
    while let Some(at) = rest.find("nanum_") {
        rest = &rest[at..];
        let end = rest.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(rest.len());
        let name = &rest[..end];
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        names.insert(base.to_owned());
        rest = &rest[end..];
    }
    names
}
