//! `/health/live`, `/health/ready`, `/api/v1/strategy`.

use actix_web::{HttpResponse, get, web};
use serde_json::json;
use strategies::Backend;

use crate::{breaker, db::backend_name, state::AppState};

/// 200 while the process runs.
#[utoipa::path(
    operation_id = "live",
    tag = "operations",
    responses((status = 200, description = "The process runs", body = crate::routes::openapi::Live))
)]
#[get("/health/live")]
pub(crate) async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when every configured backend answers, 503 (with the failing one marked) otherwise;
/// either way the body names the build (`version`, `commit`).
/// Answers within a second whatever is down: the checks run at once, each bounded by
/// [`breaker::PROBE_TIMEOUT`], and a backend whose breaker is open is reported down without
/// asking it again (its breaker's probe is already asking). A failed check opens the
/// backend's breaker.
#[utoipa::path(
    operation_id = "ready",
    tag = "operations",
    responses(
        (status = 200, description = "Every entry is `ok`", body = crate::routes::openapi::Readiness),
        (status = 503, description = "The failing entries are `unavailable`", body = crate::routes::openapi::Readiness),
    )
)]
#[get("/health/ready")]
pub(crate) async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let check = |backend: Backend, configured: bool| {
        let state = state.clone();
        async move {
            if !configured {
                None
            } else if state.breakers.is_open(backend) {
                Some(Err("circuit open".to_owned()))
            } else {
                Some(state.breakers.probe(backend).await)
            }
        }
    };
    let (database, redis, kafka) = tokio::join!(
        check(Backend::Database, true),
        check(Backend::Redis, state.redis.is_some()),
        check(Backend::Kafka, state.strategy.name().needs().kafka),
    );
    let checks = [(Backend::Database, database), (Backend::Redis, redis), (Backend::Kafka, kafka)];
    let mut body = json!({});
    for (backend, check) in checks.into_iter().filter_map(|(b, c)| Some((b, c?))) {
        body[backend.as_str()] = match check {
            Ok(()) => json!("ok"),
            Err(e) => {
                tracing::warn!(error = %e, "readiness: {}", backend.as_str());
                breaker::trip(&state.breakers, backend);
                json!("unavailable")
            }
        };
    }
    // The index is open (the server holds it); its sync task must be going round its loop.
    let sync = &state.settings.search;
    let within = std::time::Duration::from_millis(sync.sync_interval_ms.saturating_mul(10).max(10_000));
    body["search"] =
        json!(if !sync.sync_enabled || state.search.sync_alive(within) { "ok" } else { "unavailable" });
    let healthy = body.as_object().is_some_and(|o| o.values().all(|v| v == "ok"));
    // After the verdict: which build answered is information, not a check.
    body["version"] = json!(crate::build_info::VERSION);
    body["commit"] = json!(crate::build_info::COMMIT);
    if healthy { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

/// Which strategy and backends this instance runs.
#[utoipa::path(
    operation_id = "strategy",
    tag = "operations",
    responses((status = 200, description = "This instance", body = crate::routes::openapi::StrategyInfo))
)]
#[get("/strategy")]
pub(crate) async fn strategy(state: web::Data<AppState>) -> HttpResponse {
    let s = &state.settings;
    HttpResponse::Ok().json(json!({
        "strategy": state.strategy.name(),
        "instance": { "index": s.instance.index, "count": s.instance.count },
        "backends": {
            "database": backend_name(&state.db),
            "redis": !s.redis.url.is_empty(),
            "kafka": !s.kafka.brokers.is_empty(),
        },
        "role": s.instance.role,
    }))
}
