//! The Redis strategies when Redis itself fails over, and when a lock holder freezes.
//!
//! - Failover: two instances on `redis-sentinel://…` (a set of the test's own: primary,
//!   replica, three sentinels) take a steady stream of applications, each reader retrying a
//!   503 as a real client would; the primary is SIGKILLed mid-stream. The sentinels promote
//!   the replica, nanum follows without a restart, every answer during the failover is a
//!   quick 503, nothing is over-allocated, and no 503 wrote anything. The stall (the
//!   primary's death to the first win after it) is measured against the sentinels' own
//!   failover time.
//! - Frozen holder: a `nanum serve` process is SIGSTOPped while it holds the Redis lock,
//!   past the lease; another process takes the lock and commits; the first is resumed. Its
//!   stale write is refused by the fence (the database's token), so its reader is never
//!   told "won" for a copy that was not there.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use nanum::auth::TokenService;
use reqwest::StatusCode;
use strategies::{StrategyName, contract, schema};

use crate::{
    helpers::{TestApp, spawn_configured},
    sentinel::SentinelSet,
};

const READERS: usize = 240;
const COPIES: i32 = 200;
/// Concurrent clients of the stream.
const CLIENTS: usize = 4;
/// Kill the primary once this many readers were answered.
const KILL_AFTER: usize = 40;
/// A reader gives up retrying a 503 after this long (the test then fails).
const RETRY_FOR: Duration = Duration::from_secs(40);

/// One answer the stream received.
#[derive(Debug, Clone)]
struct Answer {
    reader: i64,
    status: u16,
    sent: Instant,
    at: Instant,
}

fn tokens(app: &TestApp, ids: &[i64]) -> Vec<String> {
    let service = TokenService::with_secret(app.settings.auth.jwt_secret.expose(), Duration::from_secs(3600));
    ids.iter().map(|&id| service.issue_for(id, "reader").expect("mint a token")).collect()
}

/// The counter `nanum_strategy_retries_total{reason="fenced"}` summed from `{base}/metrics`.
async fn fenced_retries(client: &reqwest::Client, base: &str) -> u64 {
    let text = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("nanum_strategy_retries_total") && l.contains("reason=\"fenced\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

// Long on purpose: one scenario told top to bottom (set up, act, check), as a reader of
// the test expects it.
async fn failover_keeps_the_race(strategy: StrategyName) {
    let Some(database_url) = contract::fresh_mariadb_url("sentinel").await else { return };
    let mut set = SentinelSet::start().await;
    let prefix = contract::unique_prefix("sentinel");
    let configure = |s: &mut nanum::configuration::Settings| {
        s.redis.url = set.url();
        s.redis.key_prefix = prefix.clone();
        // the lock wait is bounded by the failover, not by a long test setting
        s.concurrency.redis_lock.max_wait_ms = 3_000;
    };
    let apps = [
        spawn_configured(&database_url, strategy, configure).await,
        spawn_configured(&database_url, strategy, configure).await,
    ];
    let admin = apps[0].admin_token().await;
    let event = apps[0].open_event(&admin, COPIES).await;
    let db = contract::connect(&database_url, 2).await.expect("connect for checks");
    let ids = nanum_load::readers::create_users(&db, READERS).await.expect("readers");
    let tokens = tokens(&apps[0], &ids);

    let next = AtomicUsize::new(0);
    let answered = AtomicUsize::new(0);
    let history = Mutex::new(Vec::<Answer>::new());
    let client = |i: usize| {
        let (apps, next, answered, history, ids, tokens) = (&apps, &next, &answered, &history, &ids, &tokens);
        async move {
            loop {
                let r = next.fetch_add(1, Ordering::Relaxed);
                if r >= READERS {
                    return;
                }
                let give_up = Instant::now() + RETRY_FOR;
                loop {
                    let sent = Instant::now();
                    let status = apps[(r + i) % 2].apply(event, &tokens[r], None).await.status().as_u16();
                    let at = Instant::now();
                    history.lock().unwrap().push(Answer { reader: ids[r], status, sent, at });
                    if status != 503 {
                        break;
                    }
                    assert!(Instant::now() < give_up, "reader {r} still got 503 after {RETRY_FOR:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                answered.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let nemesis = async {
        while answered.load(Ordering::Relaxed) < KILL_AFTER {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let old = set.kill_primary().await;
        let killed_at = Instant::now();
        let new = set.promoted_after(old, Duration::from_secs(30)).await;
        (killed_at, killed_at.elapsed(), old, new)
    };
    let (_, (killed_at, failover, old, new)) =
        tokio::join!(futures::future::join_all((0..CLIENTS).map(client)), nemesis);
    let history = history.into_inner().unwrap();

    // What the history and the database say.
    let winners = schema::winners(&db, event).await.expect("winners");
    let stored: std::collections::BTreeSet<i64> = winners.iter().map(|w| w.user_id).collect();
    let told_won: std::collections::BTreeSet<i64> =
        history.iter().filter(|a| a.status == 201).map(|a| a.reader).collect();
    let unavailable: Vec<&Answer> = history.iter().filter(|a| a.status == 503).collect();
    // Requests already past Redis when it died may still win; the stall is how long until
    // a request sent after the death wins.
    let first_win_after =
        history.iter().filter(|a| a.status == 201 && a.sent > killed_at).map(|a| a.at).min();
    let stall = first_win_after.map(|t| t - killed_at);
    let slowest = history.iter().map(|a| a.at - a.sent).max().unwrap_or_default();
    let fenced = fenced_retries(&apps[0].client, &apps[0].address).await;
    println!(
        "{strategy} over sentinels: primary {old} killed, {new} promoted after {failover:.2?}; \
         stall to the first win {stall:.2?}; {} answers 503, slowest answer {slowest:.2?}; \
         {} winners of {COPIES}; fenced retries {fenced} ({})",
        unavailable.len(),
        winners.len(),
        if fenced > 0 {
            "a second lock grant happened and was refused by the fence"
        } else {
            "no second grant provoked"
        },
    );

    assert!(winners.len() <= COPIES as usize, "over-allocated: {} winners", winners.len());
    assert_eq!(stored.len(), winners.len(), "a reader won twice");
    assert_eq!(told_won, stored, "every win told is stored, and every stored winner was told");
    assert!(
        history.iter().all(|a| matches!(a.status, 201 | 409 | 503)),
        "only 201, 409 and 503: {:?}",
        history.iter().filter(|a| !matches!(a.status, 201 | 409 | 503)).collect::<Vec<_>>()
    );
    assert!(
        winners.len() == COPIES as usize,
        "the race sold out after the failover: {} winners",
        winners.len()
    );
    assert!(slowest < Duration::from_secs(6), "an answer took {slowest:?}: a hang, not a quick 503");
    let stall = stall.expect("a win after the primary died");
    assert!(stall <= failover + Duration::from_secs(2), "stall {stall:?} vs failover {failover:?} + 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_lock_follows_a_sentinel_failover_without_over_allocating() {
    failover_keeps_the_race(StrategyName::RedisLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_atomic_follows_a_sentinel_failover_without_over_allocating() {
    failover_keeps_the_race(StrategyName::RedisAtomic).await;
}

// Long on purpose: one scenario told top to bottom (set up, act, check), as a reader of
// the test expects it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_frozen_while_holding_the_redis_lock_is_fenced_out_when_it_wakes() {
    let Some(database_url) = contract::fresh_mariadb_url("frozen").await else { return };
    let Some(_) = contract::test_redis().await else { return };
    let mysql = contract::test_mysql_url();
    let server =
        mysql.trim_start_matches("mysql://").rsplit('@').next().unwrap().trim_end_matches('/').to_owned();
    // Process A reaches MariaDB through a proxy the test can freeze: it then holds the lock
    // with its first statement in flight, where a GC pause or a stalled network would.
    let proxy = crate::proxy::Proxy::start(&server).await;
    let proxied = database_url.replacen(&server, &format!("127.0.0.1:{}", proxy.port), 1);
    let prefix = contract::unique_prefix("frozen");
    let env: Vec<(String, String)> = [
        ("APP_ENV", "test"),
        ("APP_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
        ("APP__CONCURRENCY__STRATEGY", "redis-lock"),
        ("APP__REDIS__URL", &contract::test_redis_url()),
        ("APP__REDIS__KEY_PREFIX", &prefix),
        // a short lease, so the frozen holder loses it quickly; a long wait, so nobody 503s
        ("APP__CONCURRENCY__REDIS_LOCK__TTL_MS", "1000"),
        ("APP__CONCURRENCY__REDIS_LOCK__MAX_WAIT_MS", "30000"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let per_instance = |i: usize| {
        let url = if i == 0 { proxied.clone() } else { database_url.clone() };
        vec![("APP__DATABASE__URL".to_owned(), url)]
    };
    let (cluster, client, admin) = crate::helpers::start_processes(2, &env, &per_instance).await;
    let (a, b) = (cluster.instances[0].address.clone(), cluster.instances[1].address.clone());
    let event = nanum_load::api::open_event(&client, &a, &admin, 2).await.expect("event");
    let db = contract::connect(&database_url, 2).await.expect("connect for checks");
    let ids = nanum_load::readers::create_users(&db, 3).await.expect("readers");
    let settings = nanum::configuration::load_for("test", &[]).unwrap();
    let service = TokenService::with_secret(settings.auth.jwt_secret.expose(), Duration::from_secs(600));
    let token = |i: usize| service.issue_for(ids[i], "reader").unwrap();
    let apply_to = |base: &str, event: i64, i: usize| {
        let req = client.post(format!("{base}/api/v1/events/{event}/applications")).bearer_auth(token(i));
        async move { req.send().await.map(|r| r.status()) }
    };
    let apply = |base: &str, i: usize| apply_to(base, event, i);

    // A warms up (its event cache, its pool) with one winner: one copy left. The reader it
    // will freeze on applies to another event first, so A already knows the account and
    // the frozen request's first database statement is the one under the lock.
    assert_eq!(apply(&a, 0).await.unwrap(), StatusCode::CREATED);
    let other = nanum_load::api::open_event(&client, &a, &admin, 1).await.expect("another event");
    assert_eq!(apply_to(&a, other, 1).await.unwrap(), StatusCode::CREATED);
    proxy.freeze();
    let frozen_reader = tokio::spawn(apply(&a, 1));
    let lock_key = format!("{prefix}:lock:{event}");
    let redis = contract::test_redis().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut conn = redis.get().await.unwrap();
        let held: Option<String> =
            deadpool_redis::redis::cmd("GET").arg(&lock_key).query_async(&mut conn).await.unwrap();
        if held.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "process A never took the lock");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = cluster.instances[0].pid().expect("A's pid");
    signal(pid, "STOP").await;
    // past the lease: B takes the lock, wins the last copy, commits
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let b_answer = apply(&b, 2).await.unwrap();
    signal(pid, "CONT").await;
    proxy.thaw();
    let a_answer = tokio::time::timeout(Duration::from_secs(30), frozen_reader)
        .await
        .expect("A answers")
        .unwrap()
        .unwrap();

    let winners: Vec<i64> = schema::winners(&db, event).await.unwrap().iter().map(|w| w.user_id).collect();
    let fenced = fenced_retries(&client, &a).await;
    println!(
        "frozen holder: B answered {b_answer}, A answered {a_answer} after waking; winners {winners:?}; A's fenced retries {fenced}"
    );
    assert_eq!(b_answer, StatusCode::CREATED, "B took the expired lease and won the last copy");
    assert_ne!(a_answer, StatusCode::CREATED, "the frozen holder's reader must not be told won");
    assert_eq!(winners, vec![ids[0], ids[2]], "exactly the two copies, to the warm-up reader and B's");
    assert!(fenced >= 1, "A's stale write was not refused by the fence (fenced retries {fenced})");
}

async fn signal(pid: u32, sig: &str) {
    let status = tokio::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid}");
}
