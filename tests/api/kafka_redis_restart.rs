//! `kafka-redis-lock` when Redis loses everything mid-race: a throwaway `redis-server` of the
//! test's own (the shared one on 6379 is never restarted) is SIGKILLed and started again
//! empty while two workers allocate. The fence counter starts again from zero, below the
//! tokens already stored in the database, so the consumers are fenced out until the shared
//! lease loop (`RedisLock::under_leases`, the `redis-lock` strategy's own) raises it again:
//! no over-allocation, no partition left stalled, and the whole race bounded.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use nanum_load::Topology;
use strategies::{StrategyName, contract, outcomes, schema};
use tokio::process::{Child, Command};

use crate::cluster::{ATTEMPTS, COPIES, READERS, launch, row};

/// The whole race, Redis restart included, must finish within this.
const RACE_BOUND: Duration = Duration::from_secs(90);

/// A `redis-server` on its own port, no persistence: restarting it empties it.
struct ThrowawayRedis {
    port: u16,
    child: Child,
}

impl ThrowawayRedis {
    async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server (installed by scripts/services-up)");
        let redis = Self { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.cli(&["PING"]).await != "PONG" {
            assert!(Instant::now() < deadline, "the throwaway redis-server did not answer within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        redis
    }

    /// A free port for it (bound and released).
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
    }

    async fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .await
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// SIGKILL, then the same port again, empty.
    async fn restart_empty(&mut self) {
        self.child.kill().await.expect("SIGKILL redis-server");
        *self = Self::start(self.port).await;
    }
}

// Long on purpose: one scenario told top to bottom (set up, act, check), as a reader of
// the test expects it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_redis_lock_with_redis_restarted_empty_mid_race_neither_over_allocates_nor_stalls() {
    let mut redis = ThrowawayRedis::start(ThrowawayRedis::free_port()).await;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let extra = [
        ("APP__REDIS__URL", url.as_str()),
        // Every application reaches the consumers (and their lock), also after sell-out.
        ("APP__CONCURRENCY__SOLD_OUT_SHORTCUT", "false"),
    ];
    let topology = Topology::TEAM;
    let Some(launched) = launch(StrategyName::KafkaRedisLock, topology, &extra).await else { return };
    let db = contract::connect(&launched.database_url, 2).await.expect("connect for checks");

    let restarter = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while outcomes::answered(&db).await.expect("count answers") < 20 {
            assert!(Instant::now() < deadline, "the workers never started answering");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let before = redis.cli(&["DBSIZE"]).await;
        redis.restart_empty().await;
        let after = redis.cli(&["DBSIZE"]).await;
        println!("redis restarted empty mid-race: {before} keys before, {after} after");
    };
    let started = Instant::now();
    let (report, ()) = tokio::join!(launched.crowd.race(COPIES, ATTEMPTS), restarter);
    // `race` fails when a 202 is still pending 60 s on: a stalled partition.
    let report = report.expect("race (every 202 settled)");
    let took = started.elapsed();
    row("kafka-redis-lock, redis restarted empty", topology, &report, "see below");

    // On a fast run the burst can be decided before the restart lands; one more application
    // to the same event then goes through a worker's lock after it (a 409, sold out), so the
    // repair below is always exercised.
    let base = launched.deployment.cluster.addresses()[0].clone();
    let client = nanum_load::api::client().expect("http client");
    let url = format!("{base}/api/v1/events/1/applications");
    let admin = launched.deployment.admin_token();
    let _sold_out = nanum_load::api::post(&client, &url, Some(admin), &serde_json::json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while redis.cli(&["--scan", "--pattern", "*:fence:*"]).await.trim().is_empty() {
        assert!(Instant::now() < deadline, "no worker took the lock after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The shared lease loop raised the fence counter past the database's token: the workers'
    // logs say so, and the counter now in Redis is not behind the stored token.
    let mut raised = 0;
    for worker in &launched.deployment.cluster.instances[topology.api()..] {
        let log = std::fs::read_to_string(&worker.log).unwrap_or_default();
        raised += log.matches("fence counter was behind the database; raised").count();
    }
    // The race's event is the fresh database's first.
    let stored = schema::fence_token(&db, 1).await.expect("fence token").unwrap_or(0);
    let prefix_keys = redis.cli(&["--scan", "--pattern", "*:fence:*"]).await;
    let fence_key = prefix_keys.lines().next().expect("a fence counter in the restarted redis").to_owned();
    let counter: i64 = redis.cli(&["GET", &fence_key]).await.parse().expect("a numeric fence counter");
    println!(
        "{took:.1?} in all; fence repaired {raised} time(s); counter {counter} in redis, token {stored} in the database"
    );

    assert!(report.holds(READERS), "{report:#?}");
    assert!(took <= RACE_BOUND, "the race took {took:?} (bound {RACE_BOUND:?})");
    assert!(raised >= 1, "no worker went through the fence repair after the restart");
    assert!(counter >= stored, "fence counter {counter} is behind the database's token {stored}");
}
