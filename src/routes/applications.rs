//! The one flow that matters: apply. Validation happens here; the race itself belongs to
//! the configured [`strategies::ConcurrencyStrategy`].

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::Utc;
use serde_json::json;
use strategies::{ApplyOutcome, ApplyRequest, schema};

use crate::{auth::AuthUser, error::ApiError, routes::events, startup::AppState};

/// Longest accepted `Idempotency-Key`.
const MAX_KEY_LEN: usize = 64;

fn request_id(req: &HttpRequest, user_id: i64) -> Result<(String, bool), ApiError> {
    let Some(raw) = req.headers().get("Idempotency-Key") else {
        return Ok((uuid::Uuid::new_v4().to_string(), false));
    };
    let key = raw.to_str().unwrap_or_default().trim();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::field(
            "Idempotency-Key",
            format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        ));
    }
    // Scoped to the user, so one reader's key can never replay another's answer.
    Ok((format!("u{user_id}:{key}"), true))
}

fn won(app: &schema::Application, strategy: &str) -> HttpResponse {
    HttpResponse::Created().insert_header(("Location", format!("/api/v1/applications/{}", app.id))).json(
        json!({
            "application_id": app.id,
            "event_id": app.event_id,
            "user_id": app.user_id,
            "status": "won",
            "strategy": strategy,
        }),
    )
}

/// 201 won · 409 `sold_out` / `already_applied` · 422 `event_not_open` / `event_closed`.
#[post("/events/{id}/applications")]
pub(crate) async fn apply(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<i64>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let event = events::find(&state, id.into_inner()).await?;
    let now = Utc::now();
    if now < event.opens_at {
        return Err(ApiError::EventNotOpen(event.opens_at.to_rfc3339()));
    }
    if let Some(closes_at) = event.closes_at.filter(|c| now >= *c) {
        return Err(ApiError::EventClosed(closes_at.to_rfc3339()));
    }
    let (request_id, keyed) = request_id(&req, user.id)?;
    let strategy = state.strategy.name().as_str();
    if keyed && let Some(app) = schema::application_by_request(&state.db, &request_id).await? {
        return Ok(won(&app, strategy)); // replay of a request that already won
    }
    let request = ApplyRequest { event_id: event.id, user_id: user.id, request_id };
    match state.strategy.apply(&request).await? {
        ApplyOutcome::Won { application_id } => {
            let app = schema::Application {
                id: application_id,
                event_id: event.id,
                user_id: user.id,
                request_id: request.request_id,
                status: "won".into(),
                created_at: now,
            };
            Ok(won(&app, strategy))
        }
        ApplyOutcome::SoldOut => Err(ApiError::SoldOut),
        ApplyOutcome::AlreadyApplied => Err(ApiError::AlreadyApplied),
        other => Err(ApiError::internal(anyhow::anyhow!("unexpected outcome {other:?}"))),
    }
}

/// One application (its owner or an admin).
#[get("/applications/{id}")]
pub(crate) async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let app =
        schema::application(&state.db, id.into_inner()).await?.ok_or(ApiError::NotFound("application"))?;
    if app.user_id != user.id && !user.is_admin() {
        return Err(ApiError::Forbidden("this application belongs to another reader"));
    }
    Ok(HttpResponse::Ok().json(json!({
        "application_id": app.id,
        "event_id": app.event_id,
        "user_id": app.user_id,
        "status": app.status,
    })))
}

/// The winners of an event in allocation order (admin).
#[get("/events/{id}/applications")]
pub(crate) async fn list_for_event(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    user.require_admin()?;
    let event = events::find(&state, id.into_inner()).await?;
    let winners = schema::winners(&state.db, event.id).await?;
    let items: Vec<_> = winners
        .iter()
        .map(|a| json!({ "application_id": a.id, "user_id": a.user_id, "status": a.status, "created_at": a.created_at }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "event_id": event.id, "total": items.len(), "items": items })))
}
