//! Kafka as a cluster: the three-broker KRaft cluster of `scripts/services-up kafka-cluster`
//! (replication factor 3, `min.insync.replicas` 2) loses the partition leader to SIGKILL in
//! the middle of a race. Nothing acknowledged is lost, nobody wins twice, every 202
//! settles, and applies stall only as long as the brokers' own failover — answered 503 or
//! 202 meanwhile, never hanging.
//!
//! Then every broker is killed at once: 503 `backend_unavailable` with nothing produced,
//! readiness naming Kafka, and recovery without restarting nanum.
//!
//! The shared single broker on 9092 is never touched; the tests skip (fail under
//! `CI=true`) when the cluster is not up, and start the killed brokers again at the end.

use std::{
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use nanum_load::{Topology, api};
use reqwest::StatusCode;
use serde_json::json;
use strategies::{StrategyName, contract, outcomes};

use crate::{
    cluster::{ATTEMPTS, COPIES, READERS, launch, row},
    helpers::{assert_error, body, spawn_configured},
};

/// The cluster's brokers (`scripts/services-up kafka-cluster`).
pub(crate) const CLUSTER: &str = "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094";

/// How long an apply may stall after the leader dies: the controller fences a broker it has
/// not heard from for `broker.session.timeout.ms` (Kafka's default, 9 s) and moves the
/// leadership; then a produce needs one `kafka.deadline_ms` (3 s) retry round. Beyond
/// this the stall is nanum's, not the brokers'.
const STALL_BOUND: Duration = Duration::from_secs(20);

/// No single apply may take longer than this (a produce's deadline, then the reply wait):
/// a 503 or a 202, never a hang.
const APPLY_BOUND: Duration = Duration::from_secs(15);

/// One test on the cluster at a time: one kills a leader, another every broker.
static CLUSTER_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The cluster's brokers, or `None` after [`contract::service_absent`].
pub(crate) async fn cluster_brokers() -> Option<&'static str> {
    match strategies::kafka::client::connect(CLUSTER, Duration::from_secs(5)).await {
        Ok(_) => Some(CLUSTER),
        Err(e) => {
            contract::service_absent(
                "the three-broker Kafka cluster (scripts/services-up kafka-cluster)",
                &e,
            );
            None
        }
    }
}

/// Runs a repository script; its stdout, trimmed.
pub(crate) fn script(name: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name);
    let out = Command::new(&path).args(args).output().unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert!(out.status.success(), "{name} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Starts whatever node of the cluster is down when dropped — also when the test fails —
/// so the next run finds three brokers.
pub(crate) struct RestartOnDrop;

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        let started = Instant::now();
        script("services-up", &["kafka-cluster"]);
        println!("cluster whole again after {:.1} s", started.elapsed().as_secs_f64());
    }
}

/// One probe apply: when it was sent (since the kill), how long it took, its status.
type Probe = (Duration, Duration, u16);

/// Applies every 200 ms (each on its own, never waiting for the previous one) for one reader
/// on an event of its own, from the kill on, until an apply sent after the kill is accepted
/// by Kafka (201/202/409) or 60 s pass. Returns every probe.
async fn probe_until_accepted(base: String, token: String, event: i64, killed_at: Instant) -> Vec<Probe> {
    let client = api::client().expect("http client");
    let probes = Arc::new(Mutex::new(Vec::<Probe>::new()));
    let mut tasks = Vec::new();
    let url = format!("{base}/api/v1/events/{event}/applications");
    loop {
        let (client, url, token, list) = (client.clone(), url.clone(), token.clone(), Arc::clone(&probes));
        tasks.push(tokio::spawn(async move {
            let sent = killed_at.elapsed();
            let status =
                client.post(&url).bearer_auth(&token).send().await.map_or(0, |r| r.status().as_u16());
            let took = killed_at.elapsed() - sent;
            list.lock().expect("probe list").push((sent, took, status));
        }));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let accepted = probes.lock().expect("probe list").iter().any(|p| matches!(p.2, 201 | 202 | 409));
        if accepted || killed_at.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    for task in tasks {
        task.await.expect("probe task");
    }
    Arc::try_unwrap(probes).expect("probes done").into_inner().expect("probe list")
}

/// A reader of its own (not one of the crowd's) and an event of many copies, for the probes.
async fn probe_reader(base: &str, admin: &str) -> (String, i64) {
    let client = api::client().expect("http client");
    let email = format!("probe-{}@example.com", uuid::Uuid::new_v4().simple());
    let user = json!({"email": email, "password": "probe-password-1", "name": "probe"});
    api::post(&client, &format!("{base}/api/v1/users"), None, &user).await.expect("sign the probe up");
    let token = api::login(&client, base, &email, "probe-password-1").await.expect("probe login");
    let event = api::open_event(&client, base, admin, 1_000).await.expect("probe event");
    (token, event)
}

/// The partition leader of a one-partition topic is SIGKILLed once the worker has answered
/// its first applications; the race goes on through the failover.
// Long on purpose: one scenario told top to bottom (set up, act, check), as a reader of
// the test expects it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_partition_leader_killed_mid_race_loses_nothing_and_stalls_only_for_the_failover() {
    let _turn = CLUSTER_TURN.lock().await;
    let Some(brokers) = cluster_brokers().await else { return };
    let topic = format!("nanum-test.failover.{}", uuid::Uuid::new_v4().simple());
    let extra = [
        ("APP__KAFKA__BROKERS", brokers),
        ("APP__KAFKA__TOPIC", topic.as_str()),
        ("APP__KAFKA__REPLICATION_FACTOR", "3"),
        ("APP__KAFKA__REPLY_TIMEOUT_MS", "2000"),
        // Every apply goes through Kafka, also after the copies are gone: the shortcut
        // would answer most of the burst from memory, and there would be nothing to fail over.
        ("APP__CONCURRENCY__SOLD_OUT_SHORTCUT", "false"),
    ];
    // API and worker apart, so both topics (applications and results) are in play.
    let topology = Topology::Split { api: 1, workers: 1 };
    let Some(launched) = launch(StrategyName::KafkaSinglePartition, topology, &extra).await else { return };
    let _restart = RestartOnDrop;
    let db = contract::connect(&launched.database_url, 2).await.expect("connect for checks");
    let base = launched.deployment.cluster.addresses()[0].clone();
    let (probe_token, probe_event) = probe_reader(&base, launched.deployment.admin_token()).await;
    let leader = script("kafka-cluster", &["leader", &topic, "0"]);
    println!("{topic} partition 0: leader is node {leader}");

    let killer = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while outcomes::answered(&db).await.expect("count answers") < 20 {
            assert!(Instant::now() < deadline, "the worker never started answering");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let answered_at_kill = outcomes::answered(&db).await.expect("count answers");
        let pid = script("kafka-cluster", &["kill", &leader]);
        let killed_at = Instant::now();
        println!("SIGKILLed node {leader} (pid {pid}) after {answered_at_kill} answers");
        let probes = probe_until_accepted(base.clone(), probe_token.clone(), probe_event, killed_at).await;
        (answered_at_kill, probes)
    };
    let (report, (answered_at_kill, probes)) = tokio::join!(launched.crowd.race(COPIES, ATTEMPTS), killer);
    // `race` fails when a 202 is still pending 60 s later: an accepted application lost.
    let report = report.expect("race (every 202 settled)");

    let stall = probes
        .iter()
        .filter(|p| matches!(p.2, 201 | 202 | 409))
        .map(|(sent, took, _)| *sent + *took)
        .min()
        .expect("an apply sent after the kill was accepted within 60 s");
    let slowest = probes.iter().map(|p| p.1).max().unwrap_or_default();
    let unavailable = probes.iter().filter(|p| p.2 == 503).count();
    let answered = outcomes::answered(&db).await.expect("count answers");
    let accepted: usize = [201, 202, 409].iter().filter_map(|s| report.statuses.get(s)).sum();
    row("kafka-single-partition, 3 brokers, leader SIGKILLed", topology, &report, "see below");
    println!(
        "failover: stall {:.1} s (kill → first apply accepted again), {} probes ({unavailable} answered 503, \
         slowest {:.1} s); race {:?} in {:.1} s; {accepted} accepted, {answered} answers stored \
         ({answered_at_kill} before the kill)",
        stall.as_secs_f64(),
        probes.len(),
        slowest.as_secs_f64(),
        report.statuses,
        report.elapsed.as_secs_f64()
    );

    // 503 is the right answer while no broker leads the partition; everything else must
    // hold as in any race: exactly min(N, K) winners, nobody twice, stock consistent.
    // (the one contract check: a 503 is counted, but it does not break the contract)
    let check = report.check(READERS);
    assert!(!check.breaks_contract(), "{:?}\n{report:#?}", check.violations());
    assert_eq!(report.winners, usize::try_from(COPIES).unwrap_or(0), "{report:#?}");
    // Every application Kafka acknowledged (201/202/409) has its one stored answer: nothing
    // acknowledged was lost in the failover (the probe's applications are answers too).
    let probe_accepted = probes.iter().filter(|p| matches!(p.2, 201 | 202 | 409)).count();
    assert!(
        usize::try_from(answered).unwrap_or(0) >= accepted + probe_accepted,
        "{answered} answers stored for {accepted} + {probe_accepted} accepted applications"
    );
    assert!(
        usize::try_from(answered).unwrap_or(usize::MAX) <= report.requests + probes.len(),
        "more answers ({answered}) than applications"
    );
    assert!(stall <= STALL_BOUND, "applies stalled {stall:?} after the leader died (bound {STALL_BOUND:?})");
    assert!(slowest <= APPLY_BOUND, "an apply took {slowest:?}: it must answer 503 or 202, not hang");
    assert!(
        probes.iter().all(|p| matches!(p.2, 201 | 202 | 409 | 503)),
        "only 201/202/409/503 while failing over: {probes:?}"
    );
}

/// The bound the circuit breaker puts on a 503 once the brokers are known down:
/// the first apply waits out `kafka.deadline_ms` to find out, every later one is refused at
/// once.
const BREAKER_BOUND: Duration = Duration::from_millis(250);

/// The record count (high watermark) of the applications topic's one partition.
async fn records_in(brokers: &str, topic: &str) -> i64 {
    let deadline = Duration::from_secs(10);
    let client = strategies::kafka::client::connect(brokers, deadline).await.expect("connect to the cluster");
    let partition =
        strategies::kafka::client::partition_client(&client, topic, 0, deadline).await.expect("partition");
    partition.get_offset(rskafka::client::partition::OffsetAt::Latest).await.expect("high watermark")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Every broker of the cluster is killed: applies answer 503 `backend_unavailable` and
/// produce nothing, readiness is 503 naming Kafka, and once the brokers are back the same
/// nanum (not restarted) serves again.
// Long on purpose: one scenario told top to bottom (set up, act, check), as a reader of
// the test expects it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_every_broker_down_applies_answer_503_produce_nothing_and_recover_without_a_restart() {
    let _turn = CLUSTER_TURN.lock().await;
    let Some(brokers) = cluster_brokers().await else { return };
    let Some(url) = contract::fresh_mariadb_url("kafka_down").await else { return };
    let topic = format!("nanum-test.down.{}", uuid::Uuid::new_v4().simple());
    let app = spawn_configured(&url, StrategyName::KafkaSinglePartition, |s| {
        s.kafka.brokers = brokers.to_owned();
        s.kafka.topic.clone_from(&topic);
        s.kafka.replication_factor = 3;
    })
    .await;
    let _restart = RestartOnDrop;
    let admin = app.admin_token().await;
    let event = app.open_event(&admin, 3).await;
    let (_, first) = app.reader().await;
    assert_eq!(app.apply(event, &first, None).await.status(), StatusCode::CREATED, "before the outage");
    assert_eq!(records_in(brokers, &topic).await, 1);

    for node in ["1", "2", "3"] {
        script("kafka-cluster", &["kill", node]);
    }
    let mut readers = Vec::new();
    for _ in 0..10 {
        readers.push(app.reader().await.1);
    }
    let mut latencies = Vec::new();
    for reader in &readers {
        let started = Instant::now();
        let response = app.apply(event, reader, None).await;
        latencies.push(started.elapsed());
        assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "backend_unavailable").await;
    }
    let detection = latencies.remove(0);
    latencies.sort();
    let p99 = percentile(&latencies, 0.99);
    println!(
        "kafka down: the first apply found out in {detection:?}; the next {} answered 503 in p50 {:?}, p99 {p99:?} (bound {BREAKER_BOUND:?})",
        latencies.len(),
        percentile(&latencies, 0.50),
    );
    assert!(
        p99 <= BREAKER_BOUND,
        "once the outage is known a 503 must take ≤ {BREAKER_BOUND:?}, p99 was {p99:?}"
    );
    let started = Instant::now();
    let ready = app.get("/health/ready", None).await;
    let readiness = started.elapsed();
    assert!(readiness < Duration::from_secs(1), "readiness took {readiness:?} with every broker down");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = body(ready).await;
    assert_eq!(ready["kafka"], "unavailable", "readiness must name kafka: {ready}");
    assert_eq!(ready["database"], "ok", "only kafka is down: {ready}");

    let started = Instant::now();
    script("services-up", &["kafka-cluster"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.get("/health/ready", None).await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "nanum did not see the brokers back within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("kafka back: ready again {:.1} s after the restart began", started.elapsed().as_secs_f64());
    assert_eq!(records_in(brokers, &topic).await, 1, "a 503 must not have produced anything");
    let e = body(app.get(&format!("/api/v1/events/{event}"), None).await).await;
    assert_eq!(e["remaining"], 2, "the 503s took no copy");
    // The same process serves again; the reader turned away now wins.
    let outcome = app.apply(event, &readers[0], None).await.status();
    assert!(matches!(outcome, StatusCode::CREATED | StatusCode::ACCEPTED), "after recovery: {outcome}");
    assert_eq!(records_in(brokers, &topic).await, 2);
}
