//! Classifying database errors: which are a duplicate, which are worth retrying, and which
//! mean the database is unreachable (HTTP 503) rather than broken (HTTP 500).

use std::ops::Deref;

use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx};

/// A unique index rejected the write (e.g. the same reader twice in one event).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

fn sqlx_error(err: &DbErr) -> Option<&sqlx::Error> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e.deref()),
        DbErr::Conn(RuntimeErr::SqlxError(e)) => Some(e.deref()),
        _ => None,
    }
}

/// The transaction was chosen as a deadlock victim, timed out on a lock, or (SQLite) found
/// the database busy. The whole transaction was rolled back, so running it again is safe.
pub fn is_transient(err: &DbErr) -> bool {
    let Some(sqlx::Error::Database(db)) = sqlx_error(err) else {
        return false;
    };
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        // 1213 deadlock, 1205 lock wait timeout
        return matches!(my.number(), 1213 | 1205);
    }
    // SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_BUSY_SNAPSHOT (517)
    matches!(db.code().as_deref(), Some("5" | "6" | "517"))
}

/// MariaDB gave up waiting for a row lock (1205): with a zero wait, "someone else holds it".
pub fn is_lock_wait_timeout(err: &DbErr) -> bool {
    let Some(sqlx::Error::Database(db)) = sqlx_error(err) else {
        return false;
    };
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|my| my.number() == 1205)
}

/// The database could not be reached (refused, reset, pool exhausted or closed): the
/// request had no effect and the answer is 503, not 500.
pub fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(_) => true,
        _ => matches!(
            sqlx_error(err),
            Some(
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Protocol(_)
                    | sqlx::Error::Tls(_)
            )
        ),
    }
}

/// A foreign key rejected the write or delete. SQLite reports `ON DELETE RESTRICT` as
/// extended code 1811 (`SQLITE_CONSTRAINT_TRIGGER`), which sea-orm does not map.
pub fn is_foreign_key_violation(err: &DbErr) -> bool {
    if matches!(err.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_))) {
        return true;
    }
    matches!(sqlx_error(err), Some(sqlx::Error::Database(db)) if db.code().as_deref() == Some("1811"))
}
