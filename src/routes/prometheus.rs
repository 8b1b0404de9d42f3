//! `GET /metrics`: every metric in Prometheus' text format (docs/metrics.md), on the
//! public port unless `server.management_port` moves it there (`src/management.rs`).

use actix_web::{HttpRequest, HttpResponse, get, web};

use crate::{error::ApiError, state::AppState, telemetry};

/// The text exposition (format 0.0.4), unauthenticated like the health probes: expose it
/// to the Prometheus network only (docs/deploy.md).
#[utoipa::path(
    operation_id = "metrics",
    tag = "operations",
    responses((status = 200, description = "Every metric in Prometheus' text format (404 here when `server.management_port` is set: it is served there)", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub(crate) async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let on_management = req.app_data::<crate::management::Listener>().is_some();
    if state.settings.server.management_port.is_some() && !on_management {
        return ApiError::NotFound("route").into_response();
    }
    let body = telemetry::render(&state.metrics, &state.db).await;
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body)
}
