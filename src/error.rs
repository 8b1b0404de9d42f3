//! One error type for every endpoint; each variant says its status and code
//! (after realworld-axum-sqlx). Bodies are `{"error", "message"}` (plus `fields` for
//! validation); a 500 logs its cause and answers opaquely. Two codes come from below the
//! app, in the same body shape: `bad_request` (400) and `headers_too_large` (431), which the
//! HTTP codec answers itself before any route runs (the vendored actix-http patch).

use std::collections::BTreeMap;

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::json;
use strategies::{Backend, StrategyError};

/// Field name → what is wrong with it.
pub type FieldErrors = BTreeMap<&'static str, String>;

/// Every failure an endpoint can answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the body is not JSON (or not an object).
    #[error("{0}")]
    InvalidJson(String),
    /// 400: a query-string parameter is malformed or out of range.
    #[error("{0}")]
    InvalidQuery(String),
    /// 401: missing, malformed, forged or expired token, or wrong credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: signed in, but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: no copies left.
    #[error("all copies of this event have been given away")]
    SoldOut,
    /// 409: this reader already holds a copy.
    #[error("you already applied to this event")]
    AlreadyApplied,
    /// 409: an account with that email exists.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// 409: the resource is referenced by another (e.g. a book with events).
    #[error("{0}")]
    Conflict(&'static str),
    /// 422: well-formed JSON with invalid values.
    #[error("some fields are invalid")]
    Validation(FieldErrors),
    /// 422: the event has not opened yet.
    #[error("the event opens at {0}")]
    EventNotOpen(String),
    /// 422: the event has closed.
    #[error("the event closed at {0}")]
    EventClosed(String),
    /// 422: an `Idempotency-Key` first used on another event (or endpoint).
    #[error("this Idempotency-Key was already used for another request; use a new key")]
    IdempotencyKeyReused,
    /// 413: the request body is larger than the endpoint accepts.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 422: the search engine asked for does not run on this database.
    #[error("{0}")]
    EngineUnavailable(String),
    /// 429: too many attempts; retry after the given seconds.
    #[error("too many attempts; retry in {0} s")]
    RateLimited(u64),
    /// 503: every password-hashing slot stayed busy; the request had no effect.
    #[error("the server is busy; the request had no effect, please retry")]
    Overloaded,
    /// 503: a backend is down (named when it is an outage, not when a lock wait ran out);
    /// the request had no effect. The cause is logged, not sent.
    #[error("a backend is unavailable; the request had no effect, please retry")]
    BackendUnavailable(Option<Backend>, String),
    /// 503: the optimistic strategy gave up under contention; nothing was written.
    #[error("too many concurrent applications; nothing was recorded, please retry")]
    Contention,
    /// 500: a bug; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// The `error` code of the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::SoldOut => "sold_out",
            ApiError::AlreadyApplied => "already_applied",
            ApiError::EmailTaken => "email_taken",
            ApiError::Conflict(_) => "conflict",
            ApiError::Validation(_) => "validation_failed",
            ApiError::EventNotOpen(_) => "event_not_open",
            ApiError::EventClosed(_) => "event_closed",
            ApiError::EngineUnavailable(_) => "engine_unavailable",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::Overloaded => "overloaded",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::BackendUnavailable(..) => "backend_unavailable",
            ApiError::Contention => "contention",
            ApiError::Internal(_) => "internal",
        }
    }

    /// One invalid field.
    pub fn field(name: &'static str, message: impl Into<String>) -> Self {
        ApiError::Validation(BTreeMap::from([(name, message.into())]))
    }

    /// Wraps any error as an opaque 500.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_) | ApiError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::SoldOut | ApiError::AlreadyApplied | ApiError::EmailTaken | ApiError::Conflict(_) => {
                StatusCode::CONFLICT
            }
            ApiError::Validation(_)
            | ApiError::EventNotOpen(_)
            | ApiError::EventClosed(_)
            | ApiError::EngineUnavailable(_)
            | ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BackendUnavailable(..) | ApiError::Contention | ApiError::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        match self {
            ApiError::Validation(fields) => body["fields"] = json!(fields),
            ApiError::Internal(cause) => {
                let error = format!("{cause:?}");
                tracing::error!(error = %crate::bounded::text(&error, crate::bounded::MAX_LOGGED), "internal error");
            }
            ApiError::BackendUnavailable(backend, cause) => {
                let cause = crate::bounded::text(cause, crate::bounded::MAX_LOGGED);
                tracing::warn!(backend = backend.map(Backend::as_str), %cause, "backend unavailable");
            }
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::RateLimited(secs) => {
                response.insert_header(("Retry-After", secs.to_string()));
            }
            ApiError::BackendUnavailable(..) | ApiError::Contention | ApiError::Overloaded => {
                response.insert_header(("Retry-After", "1"));
            }
            _ => {}
        }
        let mut response = response.json(body);
        if let ApiError::BackendUnavailable(Some(backend), _) = self {
            // read by the breaker middleware, which then answers for this backend at once
            response.extensions_mut().insert(Outage(*backend));
        }
        response
    }
}

/// Set on a 503 response by [`ApiError`] when a backend was found down; the breaker
/// middleware reads it and answers for that backend at once until it is back.
#[derive(Debug, Clone, Copy)]
pub struct Outage(pub Backend);

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        if strategies::dberr::is_unavailable(&err) {
            ApiError::BackendUnavailable(Some(Backend::Database), err.to_string())
        } else {
            ApiError::Internal(err.into())
        }
    }
}

impl From<StrategyError> for ApiError {
    fn from(err: StrategyError) -> Self {
        match err {
            StrategyError::UnknownEvent(_) => ApiError::NotFound("event"),
            StrategyError::Contention { .. } => ApiError::Contention,
            StrategyError::Unavailable(backend, cause) => ApiError::BackendUnavailable(Some(backend), cause),
            // a lock wait that ran out is contention, not an outage: no breaker opens
            e @ StrategyError::LockTimeout { .. } => ApiError::BackendUnavailable(None, e.to_string()),
            other => ApiError::internal(other),
        }
    }
}

/// Maps a unique-index violation to the given conflict, anything else through `From`.
pub fn on_unique(err: sea_orm::DbErr, conflict: ApiError) -> ApiError {
    if strategies::dberr::is_unique_violation(&err) { conflict } else { err.into() }
}

impl From<crate::search::engines::SearchError> for ApiError {
    fn from(err: crate::search::engines::SearchError) -> Self {
        use crate::search::engines::SearchError;
        match err {
            SearchError::InvalidQuery(m) => ApiError::InvalidQuery(m),
            SearchError::EngineUnavailable(m) => ApiError::EngineUnavailable(m),
            SearchError::Database(e) => e.into(),
            SearchError::Index(e) => ApiError::Internal(e),
        }
    }
}
