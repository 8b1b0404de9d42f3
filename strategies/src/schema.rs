//! The two tables the race touches, defined once: `event_stock` (one row per event, the row
//! every strategy serialises on) and `applications` (one row per winner).
//!
//! The app's migrator includes [`Migration`]; the contract suite runs it alone on a fresh
//! database. There are no foreign keys to the app's tables so this crate stays independent
//! of them; the app creates the stock row in the same transaction as the event.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};
use sea_orm_migration::prelude::*;

/// `event_stock`: the remaining copies of one event.
#[derive(DeriveIden)]
pub enum EventStock {
    /// Table name.
    Table,
    /// Primary key, the event's id.
    EventId,
    /// Copies left; a CHECK keeps it ≥ 0 (the last line of defence, not the mechanism).
    Remaining,
    /// Bumped by every decrement; the optimistic strategy's compare-and-set column.
    Version,
    /// Highest fencing token that wrote this row (used by the Redis lock).
    FenceToken,
}

/// `applications`: the winners, in allocation order (`id`).
#[derive(DeriveIden)]
pub enum Applications {
    /// Table name.
    Table,
    /// Primary key; allocation order.
    Id,
    /// The event.
    EventId,
    /// The reader.
    UserId,
    /// The request that won (unique), for idempotent replays.
    RequestId,
    /// Always `won` today; later strategies may record other states.
    Status,
    /// When the copy was allocated.
    CreatedAt,
}

/// Creates `event_stock` and `applications`.
#[derive(Debug, Default)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000100_stock_and_applications"
    }
}

// sea-orm-migration's trait elides the lifetime; naming it here would not match.
#[expect(elided_lifetimes_in_paths, reason = "sea-orm-migration's trait elides the lifetime")]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EventStock::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(EventStock::EventId).big_integer().not_null().primary_key())
                    .col(ColumnDef::new(EventStock::Remaining).integer().not_null())
                    .col(ColumnDef::new(EventStock::Version).big_integer().not_null().default(0))
                    .col(ColumnDef::new(EventStock::FenceToken).big_integer().not_null().default(0))
                    .check(Expr::col(EventStock::Remaining).gte(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Applications::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Applications::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Applications::EventId).big_integer().not_null())
                    .col(ColumnDef::new(Applications::UserId).big_integer().not_null())
                    .col(ColumnDef::new(Applications::RequestId).string_len(128).not_null())
                    .col(ColumnDef::new(Applications::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Applications::CreatedAt).date_time().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_applications_event_user")
                    .table(Applications::Table)
                    .col(Applications::EventId)
                    .col(Applications::UserId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_applications_request")
                    .table(Applications::Table)
                    .col(Applications::RequestId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Applications::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(EventStock::Table).to_owned()).await
    }
}

pub(crate) fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}

/// Creates the stock row of a new event (call it in the event's own transaction).
///
/// # Errors
///
/// Any database error, e.g. a duplicate event id.
pub async fn insert_stock<C: ConnectionTrait>(db: &C, event_id: i64, quantity: i32) -> Result<(), DbErr> {
    let sql = "INSERT INTO event_stock (event_id, remaining, version, fence_token) VALUES (?, ?, 0, 0)";
    db.execute_raw(stmt(db.get_database_backend(), sql, vec![event_id.into(), quantity.into()]))
        .await
        .map(|_| ())
}

/// Copies left for an event, or `None` when it has no stock row.
///
/// # Errors
///
/// Any database error.
pub async fn remaining<C: ConnectionTrait>(db: &C, event_id: i64) -> Result<Option<i32>, DbErr> {
    let sql = "SELECT remaining FROM event_stock WHERE event_id = ?";
    let row = db.query_one_raw(stmt(db.get_database_backend(), sql, vec![event_id.into()])).await?;
    row.map(|r| r.try_get_by_index::<i32>(0)).transpose()
}

/// One stored application (a winner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// Application id (allocation order).
    pub id: i64,
    /// The event.
    pub event_id: i64,
    /// The reader.
    pub user_id: i64,
    /// The request that won.
    pub request_id: String,
    /// `won`.
    pub status: String,
    /// When it was allocated.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

const APPLICATION_COLUMNS: &str =
    "SELECT id, event_id, user_id, request_id, status, created_at FROM applications";

fn application_from(row: &sea_orm::QueryResult) -> Result<Application, DbErr> {
    Ok(Application {
        id: row.try_get_by_index(0)?,
        event_id: row.try_get_by_index(1)?,
        user_id: row.try_get_by_index(2)?,
        request_id: row.try_get_by_index(3)?,
        status: row.try_get_by_index(4)?,
        created_at: row.try_get_by_index(5)?,
    })
}

async fn applications_where<C: ConnectionTrait>(
    db: &C,
    filter: &str,
    value: Value,
) -> Result<Vec<Application>, DbErr> {
    let sql = format!("{APPLICATION_COLUMNS} WHERE {filter} ORDER BY id");
    let rows = db.query_all_raw(stmt(db.get_database_backend(), &sql, vec![value])).await?;
    rows.iter().map(application_from).collect()
}

/// All winners of an event, in allocation order.
///
/// # Errors
///
/// Any database error.
pub async fn winners<C: ConnectionTrait>(db: &C, event_id: i64) -> Result<Vec<Application>, DbErr> {
    applications_where(db, "event_id = ?", event_id.into()).await
}

/// One application by id.
///
/// # Errors
///
/// Any database error.
pub async fn application<C: ConnectionTrait>(db: &C, id: i64) -> Result<Option<Application>, DbErr> {
    Ok(applications_where(db, "id = ?", id.into()).await?.pop())
}

/// The application a request produced, if it won (idempotent replays look here first).
///
/// # Errors
///
/// Any database error.
pub async fn application_by_request<C: ConnectionTrait>(
    db: &C,
    request_id: &str,
) -> Result<Option<Application>, DbErr> {
    Ok(applications_where(db, "request_id = ?", request_id.into()).await?.pop())
}

/// The newest fencing token that wrote the event's stock row.
///
/// # Errors
///
/// Any database error.
pub async fn fence_token<C: ConnectionTrait>(db: &C, event_id: i64) -> Result<Option<i64>, DbErr> {
    let sql = "SELECT fence_token FROM event_stock WHERE event_id = ?";
    let row = db.query_one_raw(stmt(db.get_database_backend(), sql, vec![event_id.into()])).await?;
    row.map(|r| r.try_get_by_index::<i64>(0)).transpose()
}
