//! Request ids and their replay: an `Idempotency-Key` (or a fresh id) becomes the request id
//! the strategy records, and what a request id already got — a stored winner, a decided
//! answer, or a 202 still queued — is looked up here, once, for the apply flow's replay,
//! `GET /applications/{request id}` and the web's `/requests/{id}` page.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use strategies::{
    ApplyRequest,
    outcomes::{self, RequestResult},
    schema,
};

use crate::error::ApiError;

/// Longest accepted `Idempotency-Key`.
const MAX_KEY_LEN: usize = 64;

/// The request id of an apply, and whether the client chose it (a key replays, a fresh id
/// never does).
///
/// # Errors
///
/// 422 for a key that is empty, too long or has characters outside `A-Z a-z 0-9 - _ . :`.
pub(crate) fn request_id(key: Option<&str>, user_id: i64) -> Result<(String, bool), ApiError> {
    // Request ids start with their owner, so `GET /applications/{request id}` can check
    // ownership even before a Kafka consumer has decided the request.
    let Some(raw) = key else {
        return Ok((format!("u{user_id}:{}", uuid::Uuid::new_v4().simple()), false));
    };
    let key = raw.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.chars().all(allowed) {
        return Err(ApiError::field(
            "Idempotency-Key",
            format!("must be 1 to {MAX_KEY_LEN} characters of A-Z a-z 0-9 - _ . :"),
        ));
    }
    // Scoped to the user, so one reader's key can never replay another's answer.
    Ok((format!("u{user_id}:{key}"), true))
}

/// The owner encoded in a request id (`u<user id>:…`).
pub(crate) fn owner_of(request_id: &str) -> Option<i64> {
    request_id.strip_prefix('u')?.split_once(':')?.0.parse().ok()
}

/// What a request id already got.
#[derive(Debug)]
pub(crate) enum Settled {
    /// A copy: the stored application.
    Won(schema::Application),
    /// A final answer without a stored application (sold out, already applied, …).
    Answered(RequestResult),
    /// Answered 202 for this event and not decided yet.
    Queued { event_id: i64 },
}

impl Settled {
    /// The event the request was for.
    pub(crate) fn event_id(&self) -> i64 {
        match self {
            Settled::Won(app) => app.event_id,
            Settled::Answered(result) => result.event_id,
            Settled::Queued { event_id } => *event_id,
        }
    }
}

/// What `request_id` already got, if anything: the stored winner first (a decided Kafka
/// request has both), then the outcome store, then the queue of 202s.
///
/// # Errors
///
/// Any database error.
pub(crate) async fn settled(db: &DatabaseConnection, request_id: &str) -> Result<Option<Settled>, DbErr> {
    if let Some(app) = schema::application_by_request(db, request_id).await? {
        return Ok(Some(Settled::Won(app)));
    }
    if let Some(result) = outcomes::result_of(db, request_id).await? {
        return Ok(Some(Settled::Answered(result)));
    }
    Ok(pending_event(db, request_id).await?.map(|event_id| Settled::Queued { event_id }))
}

/// Records a request id that answered 202 (a replay of it may record it again).
///
/// # Errors
///
/// Any database error.
pub(crate) async fn record_pending(db: &DatabaseConnection, request: &ApplyRequest) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let insert = match backend {
        sea_orm::DbBackend::Sqlite => "INSERT OR IGNORE INTO",
        _ => "INSERT IGNORE INTO",
    };
    let sql =
        format!("{insert} pending_requests (request_id, event_id, user_id, created_at) VALUES (?, ?, ?, ?)");
    let values = vec![
        request.request_id.as_str().into(),
        request.event_id.into(),
        request.user_id.into(),
        Utc::now().naive_utc().into(),
    ];
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await.map(|_| ())
}

/// The event of a request id that answered 202, if one did.
async fn pending_event(db: &DatabaseConnection, request_id: &str) -> Result<Option<i64>, DbErr> {
    let backend = db.get_database_backend();
    let sql = "SELECT event_id FROM pending_requests WHERE request_id = ?";
    let row = db.query_one_raw(Statement::from_sql_and_values(backend, sql, vec![request_id.into()])).await?;
    row.map(|r| r.try_get_by_index::<i64>(0)).transpose()
}

/// The reader's winning application of an event, if any (the copy a double submit already
/// holds).
///
/// # Errors
///
/// Any database error.
pub(crate) async fn held_by(
    db: &DatabaseConnection,
    event_id: i64,
    user_id: i64,
) -> Result<Option<i64>, DbErr> {
    let backend = db.get_database_backend();
    let sql = "SELECT id FROM applications WHERE event_id = ? AND user_id = ?";
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [event_id.into(), user_id.into()]))
        .await?;
    Ok(row.and_then(|r| r.try_get_by_index::<i64>(0).ok()))
}
