//! What the Kafka consumers keep in the database, in the same transaction as each
//! allocation: the next offset per (topic, partition), and the final answer per request.
//!
//! Keeping the offset beside the allocation is what makes the effect exactly-once without
//! consumer groups: either both the allocation and "this record is done" commit, or neither
//! does and the record is processed again after a restart. The per-request answer makes a
//! duplicated record (producer retry, replayed Idempotency-Key) a no-op, and lets
//! `GET /applications/{request id}` settle a request that answered 202 `pending`.

use sea_orm::{ConnectionTrait, DbErr};
use sea_orm_migration::prelude::*;

use crate::{ApplyOutcome, schema::stmt};

#[derive(DeriveIden)]
enum ConsumerOffsets {
    Table,
    Topic,
    PartitionId,
    NextOffset,
}

#[derive(DeriveIden)]
enum RequestResults {
    Table,
    RequestId,
    EventId,
    UserId,
    Outcome,
    ApplicationId,
}

/// Creates `consumer_offsets` and `request_results`.
#[derive(Debug, Default)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000200_consumer_offsets_and_request_results"
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
                    .table(ConsumerOffsets::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(ConsumerOffsets::Topic).string_len(200).not_null())
                    .col(ColumnDef::new(ConsumerOffsets::PartitionId).integer().not_null())
                    .col(ColumnDef::new(ConsumerOffsets::NextOffset).big_integer().not_null())
                    .primary_key(
                        Index::create().col(ConsumerOffsets::Topic).col(ConsumerOffsets::PartitionId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RequestResults::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(RequestResults::RequestId).string_len(128).not_null().primary_key())
                    .col(ColumnDef::new(RequestResults::EventId).big_integer().not_null())
                    .col(ColumnDef::new(RequestResults::UserId).big_integer().not_null())
                    .col(ColumnDef::new(RequestResults::Outcome).string_len(16).not_null())
                    .col(ColumnDef::new(RequestResults::ApplicationId).big_integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RequestResults::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(ConsumerOffsets::Table).to_owned()).await
    }
}

/// The offset a consumer of (topic, partition) resumes from (0 when it never committed).
///
/// # Errors
///
/// Any database error.
pub async fn next_offset<C: ConnectionTrait>(db: &C, topic: &str, partition: i32) -> Result<i64, DbErr> {
    let sql = "SELECT next_offset FROM consumer_offsets WHERE topic = ? AND partition_id = ?";
    let row =
        db.query_one_raw(stmt(db.get_database_backend(), sql, vec![topic.into(), partition.into()])).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}

/// Records that everything before `next` is done (one consumer per partition, so a plain
/// update-or-insert cannot race).
///
/// # Errors
///
/// Any database error.
pub async fn store_offset<C: ConnectionTrait>(
    db: &C,
    topic: &str,
    partition: i32,
    next: i64,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let sql = "UPDATE consumer_offsets SET next_offset = ? WHERE topic = ? AND partition_id = ?";
    let updated =
        db.execute_raw(stmt(backend, sql, vec![next.into(), topic.into(), partition.into()])).await?;
    if updated.rows_affected() == 0 {
        let sql = "INSERT INTO consumer_offsets (topic, partition_id, next_offset) VALUES (?, ?, ?)";
        db.execute_raw(stmt(backend, sql, vec![topic.into(), partition.into(), next.into()])).await?;
    }
    Ok(())
}

/// A request's final answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestResult {
    /// The event.
    pub event_id: i64,
    /// The reader.
    pub user_id: i64,
    /// How it ended.
    pub outcome: ApplyOutcome,
}

/// Records a request's final answer.
///
/// # Errors
///
/// Any database error (a duplicate request id is a bug: callers look it up first).
pub async fn store_result<C: ConnectionTrait>(
    db: &C,
    request_id: &str,
    result: RequestResult,
) -> Result<(), DbErr> {
    let (name, application_id) = (result.outcome.as_str(), result.outcome.application_id());
    let sql = "INSERT INTO request_results (request_id, event_id, user_id, outcome, application_id) \
               VALUES (?, ?, ?, ?, ?)";
    let values = vec![
        request_id.into(),
        result.event_id.into(),
        result.user_id.into(),
        name.into(),
        application_id.into(),
    ];
    db.execute_raw(stmt(db.get_database_backend(), sql, values)).await.map(|_| ())
}

/// A request's final answer, if it has one.
///
/// # Errors
///
/// Any database error.
pub async fn result_of<C: ConnectionTrait>(db: &C, request_id: &str) -> Result<Option<RequestResult>, DbErr> {
    let sql = "SELECT event_id, user_id, outcome, application_id FROM request_results WHERE request_id = ?";
    let Some(row) = db.query_one_raw(stmt(db.get_database_backend(), sql, vec![request_id.into()])).await?
    else {
        return Ok(None);
    };
    let name: String = row.try_get_by_index(2)?;
    let application_id: Option<i64> = row.try_get_by_index(3)?;
    Ok(ApplyOutcome::from_stored(&name, application_id).map(|outcome| RequestResult {
        event_id: row.try_get_by_index(0).unwrap_or_default(),
        user_id: row.try_get_by_index(1).unwrap_or_default(),
        outcome,
    }))
}

/// The final answers of several requests at once (absent ids have none yet).
///
/// # Errors
///
/// Any database error.
pub async fn results_of<C: ConnectionTrait>(
    db: &C,
    request_ids: &[&str],
) -> Result<std::collections::HashMap<String, ApplyOutcome>, DbErr> {
    let mut found = std::collections::HashMap::new();
    if request_ids.is_empty() {
        return Ok(found);
    }
    let sql = format!(
        "SELECT request_id, outcome, application_id FROM request_results WHERE request_id IN ({})",
        placeholders(request_ids.len())
    );
    let values = request_ids.iter().map(|id| (*id).into()).collect();
    for row in db.query_all_raw(stmt(db.get_database_backend(), &sql, values)).await? {
        let id: String = row.try_get_by_index(0)?;
        let name: String = row.try_get_by_index(1)?;
        if let Some(outcome) = ApplyOutcome::from_stored(&name, row.try_get_by_index(2)?) {
            found.insert(id, outcome);
        }
    }
    Ok(found)
}

/// Records several final answers in one statement.
///
/// # Errors
///
/// Any database error (a duplicate request id is a bug: callers look them up first).
pub async fn store_results<C: ConnectionTrait>(
    db: &C,
    results: &[(&str, RequestResult)],
) -> Result<(), DbErr> {
    if results.is_empty() {
        return Ok(());
    }
    let rows = vec!["(?, ?, ?, ?, ?)"; results.len()].join(", ");
    let sql = format!(
        "INSERT INTO request_results (request_id, event_id, user_id, outcome, application_id) VALUES {rows}"
    );
    let mut values = Vec::with_capacity(results.len() * 5);
    for (request_id, result) in results {
        let (name, application_id) = (result.outcome.as_str(), result.outcome.application_id());
        values.extend([
            (*request_id).into(),
            result.event_id.into(),
            result.user_id.into(),
            name.into(),
            application_id.into(),
        ]);
    }
    db.execute_raw(stmt(db.get_database_backend(), &sql, values)).await.map(|_| ())
}

/// `?, ?, …` for an `IN (…)` list of `n` values.
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// How many requests have a final answer (for tests and the load command).
///
/// # Errors
///
/// Any database error.
pub async fn answered<C: ConnectionTrait>(db: &C) -> Result<i64, DbErr> {
    let sql = "SELECT COUNT(*) FROM request_results";
    let row = db.query_one_raw(stmt(db.get_database_backend(), sql, vec![])).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}
