//! Backend outages, simulated by cutting a TCP proxy between the app and MariaDB or Redis: the
//! apply answers 503 `backend_unavailable`, nothing is written, readiness says so, and the
//! app recovers by itself when the connection comes back.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use strategies::{StrategyName, contract};

use crate::{
    helpers::{TestApp, assert_error, body, spawn_configured, spawn_with},
    proxy::Proxy,
};

/// Polls readiness until 200; bounded.
async fn wait_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.get("/health/ready", None).await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "the app did not recover within 30 s of the backend returning");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Once an outage is known, the breaker answers for the backend at once: 20 more applies
/// are each refused within 250 ms (with `Retry-After`), and readiness answers within 1 s.
async fn fails_fast(app: &TestApp, event: i64, reader: &str, backend: &str) {
    const BOUND: Duration = Duration::from_millis(250);
    let mut took = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let refused = app.apply(event, reader, None).await;
        took.push(started.elapsed());
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.headers().contains_key("retry-after"), "a 503 says when to retry");
        assert_eq!(body(refused).await["error"], "backend_unavailable");
    }
    took.sort();
    let slowest = took[took.len() - 1];
    let started = Instant::now();
    let ready = app.get("/health/ready", None).await.status();
    let readiness = started.elapsed();
    println!(
        "{backend} down: 20 applies refused in p50 {:?}, max {slowest:?}; readiness {ready} in {readiness:?}",
        took[10]
    );
    assert!(slowest <= BOUND, "{backend} down: a 503 took {slowest:?} after the outage was known");
    assert!(readiness < Duration::from_secs(1), "readiness took {readiness:?} with {backend} down");
}

/// The shared scenario: an event of 3 copies and a reader; `backend` goes away → the apply
/// is 503 and readiness names `backend`; it comes back → the app recovers without a restart,
/// no copy was taken by the failed apply, and the same reader wins exactly once.
async fn outage_round(app: &TestApp, proxy: &mut Proxy, backend: &str) {
    let admin = app.admin_token().await;
    let event = app.open_event(&admin, 3).await;
    let (_, reader) = app.reader().await;

    proxy.cut();
    assert_error(
        app.apply(event, &reader, None).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "backend_unavailable",
    )
    .await;
    fails_fast(app, event, &reader, backend).await;
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = body(ready).await;
    assert_eq!(ready[backend], "unavailable", "readiness must name {backend}");
    if backend != "database" {
        assert_eq!(ready["database"], "ok", "only {backend} is down");
    }

    proxy.restore().await;
    wait_ready(app).await;
    let e = body(app.get(&format!("/api/v1/events/{event}"), None).await).await;
    assert_eq!(e["remaining"], 3, "the failed apply must not have taken a copy");
    assert_eq!(
        app.apply(event, &reader, None).await.status(),
        StatusCode::CREATED,
        "the same reader can still win"
    );
    assert_eq!(body(app.get(&format!("/api/v1/events/{event}"), None).await).await["remaining"], 2);
    let winners = body(app.get(&format!("/api/v1/events/{event}/applications"), Some(&admin)).await).await;
    assert_eq!(winners["total"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_answers_503_changes_nothing_and_recovers_by_itself() {
    let Some(url) = contract::fresh_mariadb_url("outage").await else { return };
    let (prefix, rest) = url.split_once('@').expect("user@host in the test URL");
    let (server, database) = rest.split_once('/').expect("host/database");
    let mut proxy = Proxy::start(server).await;
    let app =
        spawn_with(&format!("{prefix}@127.0.0.1:{}/{database}", proxy.port), StrategyName::PessimisticLock)
            .await;
    outage_round(&app, &mut proxy, "database").await;
}

/// Redis goes away under a Redis strategy: the database stays ready, Redis is named.
async fn redis_outage(strategy: StrategyName) {
    let Some(url) = contract::fresh_mariadb_url("redis_outage").await else { return };
    if contract::test_redis().await.is_none() {
        return;
    }
    let redis = contract::test_redis_url();
    let server = redis.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let mut proxy = Proxy::start(&server).await;
    let port = proxy.port;
    let app = spawn_configured(&url, strategy, |s| s.redis.url = format!("redis://127.0.0.1:{port}")).await;
    outage_round(&app, &mut proxy, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_under_redis_lock_answers_503_changes_nothing_and_recovers() {
    redis_outage(StrategyName::RedisLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_under_redis_atomic_answers_503_changes_nothing_and_recovers() {
    redis_outage(StrategyName::RedisAtomic).await;
}
