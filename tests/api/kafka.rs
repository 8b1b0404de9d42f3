//! The Kafka strategies over real processes, beyond the race every strategy runs in
//! `cluster`: the round-robin race without the lock, and a worker killed with SIGKILL in the
//! middle of a burst.

use std::{collections::HashSet, time::Duration};

use strategies::{StrategyName, contract, outcomes, schema};

use nanum_load::{CrowdReport, Topology};

use crate::cluster::{ATTEMPTS, COPIES, READERS, launch, over_allocates_in, row};

const TEAM: Topology = Topology::TEAM;

/// The race the team hit: several partitions, records spread round-robin, no lock in the
/// consumers — two workers allocate the same event at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_robin_partitions_without_the_lock_over_allocate() {
    over_allocates_in(
        StrategyName::KafkaRedisLock,
        TEAM,
        &[("APP__CONCURRENCY__KAFKA_LOCK", "false")],
        "kafka-redis-lock, lock off",
    )
    .await;
}

/// What a burst through one API and one worker gave when the worker was SIGKILLed (no
/// shutdown, mid-transaction) once it had stored `kill_after` answers, then restarted.
struct Crash {
    report: CrowdReport,
    answered_at_kill: i64,
    answered: i64,
    winners: Vec<i64>,
}

async fn kill_the_worker_after(kill_after: i64, extra: &[(&str, &str)], label: &str) -> Option<Crash> {
    let topology = Topology::Split { api: 1, workers: 1 };
    let mut launched = launch(StrategyName::KafkaSinglePartition, topology, extra).await?;
    let db = contract::connect(&launched.database_url, 2).await.expect("connect for checks");

    let killer = async {
        // Kill once the worker is visibly answering (bounded wait).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while outcomes::answered(&db).await.expect("count answers") < kill_after {
            assert!(std::time::Instant::now() < deadline, "the worker never started answering");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let answered_at_kill = outcomes::answered(&db).await.expect("count answers");
        launched.deployment.cluster.kill(1).await.expect("SIGKILL the worker");
        launched.deployment.cluster.restart(1).await.expect("restart the worker");
        answered_at_kill
    };
    let (report, answered_at_kill) = tokio::join!(launched.crowd.race(COPIES, ATTEMPTS), killer);
    let report = report.expect("race");
    row(label, topology, &report, &format!("killed after {answered_at_kill} answers"));
    let answered = outcomes::answered(&db).await.unwrap();
    let winners = schema::winners(&db, 1).await.unwrap().iter().map(|w| w.user_id).collect();
    Some(Crash { report, answered_at_kill, answered, winners })
}

/// A worker is killed (SIGKILL: no shutdown, mid-transaction) while a burst is in flight,
/// then restarted. It resumes from the offset stored with its last allocation: exactly
/// min(N, K) winners, nobody twice, and every accepted request has a final answer.
///
/// The sold-out shortcut is off here: with it on, the API answers the losers from memory
/// once the event is sold out, so most of the burst never reaches the worker and there is
/// no mid-burst worker to kill. This test is about the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_burst_and_restarted_loses_and_repeats_nothing() {
    let extra = [("APP__KAFKA__REPLY_TIMEOUT_MS", "1000"), ("APP__CONCURRENCY__SOLD_OUT_SHORTCUT", "false")];
    let Some(crash) = kill_the_worker_after(50, &extra, "kafka-single-partition, worker SIGKILLed").await
    else {
        return;
    };
    let Crash { report, answered_at_kill, answered, winners } = crash;
    assert!(report.holds(READERS), "{report:#?}");
    assert!(answered_at_kill < i64::try_from(report.requests).unwrap(), "the kill must land mid-burst");
    assert_eq!(
        answered,
        i64::try_from(report.requests).unwrap(),
        "every accepted request has exactly one answer"
    );
    assert_eq!(winners.len(), 10);
    assert_eq!(winners.iter().collect::<HashSet<_>>().len(), 10);
}

/// The same crash with the default settings (sold-out shortcut on): the worker is killed
/// as soon as it has answered anything, while the first wave is still queued in the
/// partition. Whatever the API answered from memory never reached the worker; whatever
/// reached the worker is allocated exactly once after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_at_its_first_answers_with_the_shortcut_on_loses_and_repeats_nothing() {
    let extra = [("APP__KAFKA__REPLY_TIMEOUT_MS", "1000")];
    let label = "kafka-single-partition, shortcut on, worker SIGKILLed";
    let Some(Crash { report, answered, winners, .. }) = kill_the_worker_after(1, &extra, label).await else {
        return;
    };
    // exactly min(N, K) winners, nobody twice, stock consistent, every 202 settled
    assert!(report.holds(READERS), "{report:#?}");
    // every request the worker stored an answer for was one request, answered once
    assert!(
        answered <= i64::try_from(report.requests).unwrap(),
        "{answered} answers for {} requests",
        report.requests
    );
    assert_eq!(winners.len(), 10);
    assert_eq!(winners.iter().collect::<HashSet<_>>().len(), 10);
}
