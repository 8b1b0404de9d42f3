//! Prometheus metrics: the recorder behind the `metrics` facade, the HTTP middleware that
//! counts and times every request, the search timings, and `GET /metrics`.
//!
//! One recorder per process (the facade's global), installed by [`install`] before the
//! strategy is built so the strategies' handles ([`strategies::probes`]) register with it.
//! Several apps in one process (the in-process tests) share it; a test that asserts exact
//! counts runs its server as a process of its own.
//!
//! # Layout
//!
//! - [`install`]: the recorder (histogram buckets for every `_seconds` metric), once.
//! - [`measure`]: middleware; label handles cached per (route pattern, method, status).
//! - [`search_latency`]: per-engine handles.
//! - [`render`]: the outbox gauges (read at scrape time), then the text exposition.

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{OnceLock, RwLock},
    time::{Duration, Instant},
};

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
};
use metrics::{Counter, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::{bounded, search::engines::Engine};

/// Counter: HTTP requests by route pattern, method and status.
pub const HTTP_REQUESTS: &str = "nanum_http_requests_total";
/// Histogram: HTTP request latency by route pattern, method and status.
pub const HTTP_SECONDS: &str = "nanum_http_request_seconds";
/// Histogram: one search on one engine (query + loading the hits).
pub const SEARCH_SECONDS: &str = "nanum_search_seconds";
/// Gauge: `search_outbox` rows not yet applied to the index.
pub const OUTBOX_PENDING: &str = "nanum_search_outbox_pending";
/// Gauge: age of the oldest unapplied `search_outbox` row (0 when none).
pub const OUTBOX_AGE: &str = "nanum_search_outbox_age_seconds";

/// Latency buckets (seconds) for every `_seconds` histogram: from 100 µs (a section on a
/// quiet row) to 10 s (`redis_lock.max_wait_ms`).
const BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How often histograms are compacted when nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// The process's recorder, installed on first call (later calls return the same handle).
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            // Only fails on an empty bucket list, which BUCKETS is not.
            let builder = match builder.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "metrics buckets rejected; histograms render as summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::error!(error = %e, "another metrics recorder is installed; /metrics stays empty");
            }
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                }
            });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no metrics upkeep thread; histograms are compacted at scrapes only");
            }
            handle
        })
        .clone()
}

type RouteKey = (String, &'static str, Cow<'static, str>);

/// Handles per (route pattern, method, status): label sets are built once per key, never
/// per request. The key set is closed: patterns come from the route table (unmatched paths
/// share one label), methods and statuses from [`bounded`]'s short lists.
fn http_handles(key: RouteKey) -> (Counter, Histogram) {
    static CACHE: OnceLock<RwLock<HashMap<RouteKey, (Counter, Histogram)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(RwLock::default);
    if let Some(found) = cache.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return found.clone();
    }
    let (route, method, status) = &key;
    let labels = [("route", route.clone()), ("method", (*method).to_owned()), ("status", status.to_string())];
    let handles = (counter!(HTTP_REQUESTS, &labels), histogram!(HTTP_SECONDS, &labels));
    cache.write().unwrap_or_else(|p| p.into_inner()).entry(key).or_insert(handles).clone()
}

/// Middleware: counts and times every request under its matched route pattern
/// (`/api/v1/events/{id}/applications`), never the raw path.
///
/// # Errors
///
/// Whatever the wrapped service returns (counted with its error's status first).
pub async fn measure(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = bounded::method(req.method());
    let result = next.call(req).await;
    let (route, status) = match &result {
        Ok(res) => (res.request().match_pattern(), res.status()),
        Err(e) => (None, e.as_response_error().status_code()),
    };
    let (count, latency) =
        http_handles((route.unwrap_or_else(|| "unmatched".to_owned()), method, bounded::status(status)));
    count.increment(1);
    latency.record(started.elapsed().as_secs_f64());
    result
}

/// The latency histogram of `engine`.
pub fn search_latency(engine: Engine) -> &'static Histogram {
    static HANDLES: OnceLock<[Histogram; 3]> = OnceLock::new();
    let handles =
        HANDLES.get_or_init(|| Engine::ALL.map(|e| histogram!(SEARCH_SECONDS, "engine" => e.name())));
    let i = Engine::ALL.iter().position(|e| *e == engine).unwrap_or(0);
    &handles[i]
}

/// Sets the outbox gauges from the database (a failure leaves them as they were and is
/// logged: a scrape never fails because the database is down), then renders every metric.
pub async fn render(handle: &PrometheusHandle, db: &DatabaseConnection) -> String {
    let backend = db.get_database_backend();
    let sql = "SELECT COUNT(*), MIN(created_at) FROM search_outbox";
    match db.query_one_raw(Statement::from_string(backend, sql)).await {
        Ok(Some(row)) => {
            let pending = row.try_get_by_index::<i64>(0).unwrap_or(0);
            let oldest = row.try_get_by_index::<Option<chrono::NaiveDateTime>>(1).ok().flatten();
            let age = oldest.map_or(0.0, |t| {
                (chrono::Utc::now().naive_utc() - t).num_milliseconds().max(0) as f64 / 1000.0
            });
            // row counts stay far below 2^53, so the cast is exact
            gauge!(OUTBOX_PENDING).set(pending as f64);
            gauge!(OUTBOX_AGE).set(age);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the search outbox"),
    }
    handle.render()
}
