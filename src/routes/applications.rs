//! The one flow that matters: apply. Validation happens here; the race itself belongs to
//! the configured [`strategies::ConcurrencyStrategy`].

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use strategies::{ApplyOutcome, ApplyRequest, schema};
use utoipa::ToSchema;

use crate::{
    auth::AuthUser,
    error::ApiError,
    limits::{RateLimits, per_ip},
    routes::{
        events,
        idempotency::{self, Settled},
    },
    state::AppState,
};

/// The application resource, one shape for every answer that shows one: fields that an
/// answer does not know are left out rather than invented.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Application)]
pub(crate) struct ApplicationBody<'a> {
    /// The numeric id once allocated; the request id while only that is known.
    application_id: ApplicationId<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<i64>,
    user_id: i64,
    /// `won`, `pending`, `sold_out` or `already_applied`.
    #[schema(value_type = String)]
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    strategy: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<chrono::DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum ApplicationId<'a> {
    Allocated(i64),
    Request(&'a str),
}

impl<'a> ApplicationBody<'a> {
    /// A stored winner.
    fn stored(app: &'a schema::Application) -> Self {
        Self {
            application_id: ApplicationId::Allocated(app.id),
            request_id: None,
            event_id: Some(app.event_id),
            user_id: app.user_id,
            status: "won",
            strategy: None,
            created_at: None,
        }
    }

    /// A request known only by its id (pending, or answered without an allocation).
    fn request(request_id: &'a str, user_id: i64, status: &'static str) -> Self {
        Self {
            application_id: ApplicationId::Request(request_id),
            request_id: None,
            event_id: None,
            user_id,
            status,
            strategy: None,
            created_at: None,
        }
    }
}

fn won(app: &schema::Application, strategy: &str) -> HttpResponse {
    HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/applications/{}", app.id)))
        .json(ApplicationBody { strategy: Some(strategy), ..ApplicationBody::stored(app) })
}

/// How an apply ended when it did not fail (sold out, already applied and the rest are
/// errors).
#[derive(Debug)]
pub(crate) enum Applied {
    /// A copy: the stored application.
    Won(schema::Application),
    /// Queued (the Kafka strategies): settles under this request id.
    Pending(String),
}

/// The apply flow shared by the API and the web pages: checks the window, replays a keyed
/// request's answer, else asks the strategy.
pub(crate) async fn apply_as(
    state: &AppState,
    user: &AuthUser,
    event_id: i64,
    key: Option<&str>,
) -> Result<Applied, ApiError> {
    // per reader here, so the pages are limited as the API is (per address: the handler)
    RateLimits::check(state.limits.apply_per_user.as_ref(), &user.id)?;
    // A token signed for an id with no account (a leaked secret, a deleted row) wins nothing.
    state.accounts.confirm(&state.db, user.id).await?;
    let event = events::find(state, event_id).await?;
    let now = Utc::now();
    if now < event.opens_at {
        return Err(ApiError::EventNotOpen(event.opens_at.to_rfc3339()));
    }
    if let Some(closes_at) = event.closes_at.filter(|c| now >= *c) {
        return Err(ApiError::EventClosed(closes_at.to_rfc3339()));
    }
    let (request_id, keyed) = idempotency::request_id(key, user.id)?;
    if keyed {
        // A replay answers like the first request did; a key belongs to one event, so its
        // first use elsewhere is refused, never replayed. A queued one asks the strategy
        // again, which answers its replay.
        match idempotency::settled(&state.db, &request_id).await? {
            Some(done) if done.event_id() != event.id => return Err(ApiError::IdempotencyKeyReused),
            Some(Settled::Won(app)) => return Ok(Applied::Won(app)),
            Some(Settled::Answered(r)) if r.outcome == ApplyOutcome::SoldOut => {
                return Err(ApiError::SoldOut);
            }
            Some(Settled::Answered(r)) if r.outcome == ApplyOutcome::AlreadyApplied => {
                return Err(ApiError::AlreadyApplied);
            }
            _ => {}
        }
    }
    let request = ApplyRequest { event_id: event.id, user_id: user.id, request_id };
    match state.strategy.apply(&request).await? {
        ApplyOutcome::Won { application_id } => Ok(Applied::Won(schema::Application {
            id: application_id,
            event_id: event.id,
            user_id: user.id,
            request_id: request.request_id,
            status: "won".into(),
            created_at: now,
        })),
        ApplyOutcome::SoldOut => Err(ApiError::SoldOut),
        ApplyOutcome::AlreadyApplied => Err(ApiError::AlreadyApplied),
        ApplyOutcome::Pending => {
            idempotency::record_pending(&state.db, &request).await?;
            Ok(Applied::Pending(request.request_id))
        }
        other => Err(ApiError::internal(anyhow::anyhow!("unexpected outcome {other:?}"))),
    }
}

/// 201 won · 409 `sold_out` / `already_applied` · 422 `event_not_open` / `event_closed`.
#[utoipa::path(
    operation_id = "apply",
    tag = "applications",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "event id")),
    params(("Idempotency-Key" = Option<String>, Header, description = "1–64 characters of A-Z a-z 0-9 - _ . :")),
    responses(
        (status = 201, description = "Won a copy", body = ApplicationBody<'static>,
            headers(("Location" = String, description = "/api/v1/applications/{application_id}"))),
        (status = 202, description = "Queued (Kafka strategies); settle it at the Location", body = ApplicationBody<'static>,
            headers(("Location" = String, description = "/api/v1/applications/{request id}"))),
    ),
)]
#[post("/events/{id}/applications")]
pub(crate) async fn apply(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<i64>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.breakers.refuse_apply()?;
    per_ip(&req, &state.settings.server.trusted_proxies, state.limits.apply_per_ip.as_ref())?;
    let key = req.headers().get("Idempotency-Key").map(|raw| raw.to_str().unwrap_or_default());
    let strategy = state.strategy.name().as_str();
    match apply_as(&state, &user, id.into_inner(), key).await? {
        Applied::Won(app) => Ok(won(&app, strategy)),
        Applied::Pending(request_id) => Ok(HttpResponse::Accepted()
            .insert_header(("Location", format!("/api/v1/applications/{request_id}")))
            .json(ApplicationBody {
                strategy: Some(strategy),
                ..ApplicationBody::request(&request_id, user.id, "pending")
            })),
    }
}

/// The caller may read `owner`'s applications: the owner, or a (confirmed) admin.
async fn may_read(state: &AppState, user: &AuthUser, owner: i64) -> Result<(), ApiError> {
    if owner == user.id {
        return Ok(());
    }
    if !user.is_admin() {
        return Err(ApiError::Forbidden("this application belongs to another reader"));
    }
    user.require_admin(&state.db).await
}

/// `GET /applications/{request id}`: a request that answered 202 settles here — `won`
/// (with its application id), `sold_out`, `already_applied`, or still `pending`; a request
/// id that was never queued nor answered is 404.
async fn by_request(state: &AppState, user: &AuthUser, request_id: &str) -> Result<HttpResponse, ApiError> {
    let owner = idempotency::owner_of(request_id).ok_or(ApiError::NotFound("application"))?;
    may_read(state, user, owner).await?;
    let body = match idempotency::settled(&state.db, request_id).await? {
        Some(Settled::Won(app)) => {
            return Ok(HttpResponse::Ok()
                .json(ApplicationBody { request_id: Some(request_id), ..ApplicationBody::stored(&app) }));
        }
        Some(Settled::Answered(done)) => ApplicationBody {
            event_id: Some(done.event_id),
            ..ApplicationBody::request(request_id, done.user_id, done.outcome.as_str())
        },
        Some(Settled::Queued { .. }) => ApplicationBody::request(request_id, owner, "pending"),
        None => return Err(ApiError::NotFound("application")),
    };
    Ok(HttpResponse::Ok().json(body))
}

/// One application (its owner or an admin).
#[utoipa::path(
    operation_id = "get_application",
    tag = "applications",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "An application id, or a request id (`u<user id>:…`)")),
    responses((status = 200, description = "The application", body = ApplicationBody<'static>)),
)]
#[get("/applications/{id}")]
pub(crate) async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Ok(id) = id.parse::<i64>() else {
        return by_request(&state, &user, &id).await;
    };
    let app = schema::application(&state.db, id).await?.ok_or(ApiError::NotFound("application"))?;
    may_read(&state, &user, app.user_id).await?;
    Ok(HttpResponse::Ok().json(ApplicationBody::stored(&app)))
}

/// The winners of an event in allocation order (admin).
#[utoipa::path(
    operation_id = "list_applications",
    tag = "applications",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "event id")),
    responses((status = 200, description = "Every winner, in allocation order", body = crate::routes::openapi::EventApplications)),
)]
#[get("/events/{id}/applications")]
pub(crate) async fn list_for_event(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    user.require_admin(&state.db).await?;
    let event = events::find(&state, id.into_inner()).await?;
    let winners = schema::winners(&state.db, event.id).await?;
    let items: Vec<_> = winners
        .iter()
        .map(|a| ApplicationBody {
            event_id: None,
            created_at: Some(a.created_at),
            ..ApplicationBody::stored(a)
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "event_id": event.id, "total": items.len(), "items": items })))
}
