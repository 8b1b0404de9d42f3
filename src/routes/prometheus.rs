//! `GET /metrics`: every metric in Prometheus' text format (docs/metrics.md).

use actix_web::{HttpResponse, get, web};

use crate::{state::AppState, telemetry};

/// The text exposition (format 0.0.4), unauthenticated like the health probes: expose it
/// to the Prometheus network only (docs/deploy.md).
#[utoipa::path(
    operation_id = "metrics",
    tag = "operations",
    responses((status = 200, description = "Every metric in Prometheus' text format", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let body = telemetry::render(&state.metrics, &state.db).await;
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body)
}
