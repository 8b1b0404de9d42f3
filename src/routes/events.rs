//! Sharing events: admin creates, anyone reads. The stock row is created in the event's
//! own transaction, so an event never exists without the row its race serialises on.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, QueryOrder, Set, TransactionTrait};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Object, PageBody, PageQuery};
use crate::{
    auth::AuthUser,
    entities::{book, event},
    error::{ApiError, FieldErrors},
    state::AppState,
};

/// Most copies one event may offer.
const MAX_QUANTITY: i32 = 1_000_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewEvent {
    /// An existing book.
    pub(crate) book_id: i64,
    /// 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub(crate) title: String,
    /// 1–1,000,000 copies.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub(crate) quantity: i32,
    pub(crate) opens_at: DateTime<Utc>,
    /// After `opens_at`; none = never closes.
    pub(crate) closes_at: Option<DateTime<Utc>>,
}

/// An event as docs/API.md shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Event)]
pub(crate) struct EventBody {
    id: i64,
    book_id: i64,
    title: String,
    quantity: i32,
    remaining: i32,
    opens_at: DateTime<Utc>,
    closes_at: Option<DateTime<Utc>>,
    /// `scheduled`, `open`, `sold_out` or `closed`, computed on each read.
    #[schema(value_type = String)]
    status: &'static str,
}

impl EventBody {
    fn new(e: event::Model, remaining: i32) -> Self {
        let now = Utc::now();
        let status = if now < e.opens_at {
            "scheduled"
        } else if e.closes_at.is_some_and(|c| now >= c) {
            "closed"
        } else if remaining <= 0 {
            "sold_out"
        } else {
            "open"
        };
        Self {
            id: e.id,
            book_id: e.book_id,
            title: e.title,
            quantity: e.quantity,
            remaining,
            opens_at: e.opens_at,
            closes_at: e.closes_at,
            status,
        }
    }
}

/// The event (from the cache after its first read: events never change once created).
pub(crate) async fn find(state: &AppState, id: i64) -> Result<event::Model, ApiError> {
    if let Some(event) = state.events.get(id) {
        return Ok(event);
    }
    let event = event::Entity::find_by_id(id).one(&state.db).await?.ok_or(ApiError::NotFound("event"))?;
    state.events.put(&event);
    Ok(event)
}

async fn body(state: &AppState, e: event::Model) -> Result<EventBody, ApiError> {
    let remaining = strategies::schema::remaining(&state.db, e.id).await?.unwrap_or(0);
    Ok(EventBody::new(e, remaining))
}

/// 201 Event (admin).
#[utoipa::path(
    operation_id = "create_event",
    request_body = NewEvent,
    tag = "events",
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = EventBody,
        headers(("Location" = String, description = "/api/v1/events/{id}")))),
)]
#[post("/events")]
pub(crate) async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    json: web::Json<Object<NewEvent>>,
) -> Result<HttpResponse, ApiError> {
    let saved = create_event(&state, &user, json.into_inner().0).await?;
    let quantity = saved.quantity;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/events/{}", saved.id)))
        .json(EventBody::new(saved, quantity)))
}

/// Validates and stores an event with its stock row (admin; shared with the web pages).
pub(crate) async fn create_event(
    state: &AppState,
    user: &AuthUser,
    new: NewEvent,
) -> Result<event::Model, ApiError> {
    user.require_admin(&state.db).await?;
    let mut fields = FieldErrors::new();
    let title_len = new.title.trim().chars().count();
    if !(1..=200).contains(&title_len) {
        fields.insert("title", "must be 1 to 200 characters".into());
    } else if crate::text::refused(&new.title) {
        fields.insert("title", crate::text::REFUSED.into());
    }
    for (name, at) in [("opens_at", Some(new.opens_at)), ("closes_at", new.closes_at)] {
        if let Some(problem) = at.and_then(crate::text::time_problem) {
            fields.insert(name, problem.into());
        }
    }
    if !(1..=MAX_QUANTITY).contains(&new.quantity) {
        fields.insert("quantity", format!("must be between 1 and {MAX_QUANTITY}"));
    }
    if new.closes_at.is_some_and(|c| c <= new.opens_at) {
        fields.insert("closes_at", "must be after opens_at".into());
    }
    if book::Entity::find_by_id(new.book_id).one(&state.db).await?.is_none() {
        fields.insert("book_id", "no such book".into());
    }
    if !fields.is_empty() {
        return Err(ApiError::Validation(fields));
    }
    let tx = state.db.begin().await?;
    let saved = event::ActiveModel {
        book_id: Set(new.book_id),
        title: Set(new.title.trim().to_owned()),
        quantity: Set(new.quantity),
        opens_at: Set(new.opens_at),
        closes_at: Set(new.closes_at),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    strategies::schema::insert_stock(&tx, saved.id, saved.quantity).await?;
    tx.commit().await?;
    if let Err(e) = state.strategy.event_created(saved.id).await {
        // The event exists; a strategy with its own copy of the stock loads it lazily.
        tracing::warn!(event_id = saved.id, error = %e, "strategy could not preload the new event");
    }
    Ok(saved)
}

/// Event with `remaining` and `status`.
#[utoipa::path(
    operation_id = "get_event",
    tag = "events",
    params(("id" = i64, Path, description = "event id")),
    responses((status = 200, description = "The event", body = EventBody)),
)]
#[get("/events/{id}")]
pub(crate) async fn get(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let e = find(&state, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(body(&state, e).await?))
}

/// `{items, page, size, total}`, newest first.
#[utoipa::path(
    operation_id = "list_events",
    tag = "events",
    responses((status = 200, description = "One page, newest first", body = PageBody<EventBody>)),
)]
#[get("/events")]
pub(crate) async fn list(
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (page, size) = query.bounds()?;
    let paginator = event::Entity::find().order_by_desc(event::Column::Id).paginate(&state.db, size);
    let total = paginator.num_items().await?;
    let mut items = Vec::new();
    for e in paginator.fetch_page(page - 1).await? {
        items.push(body(&state, e).await?);
    }
    Ok(HttpResponse::Ok().json(PageBody::new(items, page, size, total)))
}
