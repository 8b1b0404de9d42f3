//! Applying the migrations exactly once, however many processes start at the same moment
//! (an orchestrator starts replicas together; `nanum migrate` may run beside them).
//!
//! Every caller takes one lock per database, looks at what is pending under it, applies
//! that and lets go; whoever comes next finds nothing pending. The lock:
//!
//! - MariaDB/MySQL: `GET_LOCK` on a connection of its own (not the pool's, so a pool of one
//!   connection cannot deadlock against it), named after `DATABASE()`, so deployments on
//!   one server never wait for each other. The server drops it when that connection ends:
//!   a process killed mid-migration leaves no stale lock behind, only a migration half done
//!   (MariaDB cannot roll back DDL), which the next holder re-runs — every table is
//!   `IF NOT EXISTS`.
//! - SQLite: an exclusive advisory lock (`flock`) on `<database file>.migrate-lock` beside
//!   the file; the kernel drops it with the process. An in-memory database belongs to one
//!   process and needs none.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use sea_orm_migration::MigratorTrait;

use crate::{configuration::DatabaseSettings, db, migration::Migrator};

/// How long a process waits for another one's migrations before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(600);

/// What one call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Migrations this call applied (0: another process had, or nothing was new).
    pub applied: usize,
    /// Migrations the binary knows.
    pub known: usize,
}

/// Applies the pending migrations of `db` (opened from `settings`) under the lock, logs
/// what it did and returns it.
///
/// # Errors
///
/// One line: the lock not had within [`LOCK_WAIT`], or a failed migration.
pub async fn apply(db: &DatabaseConnection, settings: &DatabaseSettings) -> anyhow::Result<Applied> {
    let outcome = match db.get_database_backend() {
        DbBackend::MySql => under_server_lock(db, settings).await,
        _ => under_file_lock(db, &settings.url).await,
    }?;
    tracing::info!(
        applied = outcome.applied,
        known = outcome.known,
        "database migrations: applied {} of {}",
        outcome.applied,
        outcome.known
    );
    Ok(outcome)
}

/// The pending migrations, applied; counted first (the caller holds the lock).
async fn up(db: &DatabaseConnection) -> anyhow::Result<Applied> {
    let failed = |e: sea_orm::DbErr| anyhow::anyhow!("database migration failed: {e}");
    let applied = Migrator::get_pending_migrations(db).await.map_err(failed)?.len();
    Migrator::up(db, None).await.map_err(failed)?;
    Ok(Applied { applied, known: Migrator::migrations().len() })
}

async fn under_server_lock(db: &DatabaseConnection, settings: &DatabaseSettings) -> anyhow::Result<Applied> {
    let single = DatabaseSettings { url: settings.url.clone(), max_connections: 1 };
    let lock_db = db::connect(&single).await.map_err(anyhow::Error::msg)?;
    // A transaction pins the pool's one connection: GET_LOCK belongs to a session, and an
    // idle connection could otherwise be closed (and the lock with it) mid-migration.
    let session = lock_db.begin().await?;
    // Lock names are server-wide and at most 64 characters: a digest of the database name.
    let name = "CONCAT('nanum-migrate-', LEFT(SHA1(DATABASE()), 40))";
    let sql = format!("SELECT GET_LOCK({name}, {})", LOCK_WAIT.as_secs());
    let got = session.query_one_raw(Statement::from_string(DbBackend::MySql, sql)).await?;
    if got.and_then(|row| row.try_get_by_index::<Option<i64>>(0).ok().flatten()) != Some(1) {
        anyhow::bail!(
            "database migration: another process held the migration lock for more than {} s",
            LOCK_WAIT.as_secs()
        );
    }
    let outcome = up(db).await;
    let release = format!("SELECT RELEASE_LOCK({name})");
    // Ending the session would release it too; asking keeps the order plain in the log.
    let _ = session.query_one_raw(Statement::from_string(DbBackend::MySql, release)).await;
    let _ = session.commit().await;
    lock_db.close().await.ok();
    outcome
}

async fn under_file_lock(db: &DatabaseConnection, url: &str) -> anyhow::Result<Applied> {
    let Some(path) = lock_file(url) else {
        return up(db).await;
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("database migration: cannot open {}: {e}", path.display()))?;
    // flock blocks its thread: wait on one of the blocking pool's.
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await?
        .map_err(|e| anyhow::anyhow!("database migration: cannot lock {}: {e}", path.display()))?;
    let outcome = up(db).await;
    drop(file);
    outcome
}

/// `<file>.migrate-lock` for a `sqlite://` URL naming a file; `None` for an in-memory one.
pub fn lock_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let (file, query) = rest.split_once('?').unwrap_or((rest, ""));
    if file.is_empty() || file == ":memory:" || query.split('&').any(|kv| kv == "mode=memory") {
        return None;
    }
    Some(std::path::PathBuf::from(format!("{file}.migrate-lock")))
}

#[cfg(test)]
mod tests {
    use super::lock_file;

    #[test]
    fn a_sqlite_file_gets_a_lock_file_beside_it_and_memory_none() {
        assert_eq!(lock_file("sqlite://data/nanum.db?mode=rwc"), Some("data/nanum.db.migrate-lock".into()));
        assert_eq!(lock_file("sqlite:///tmp/x.db"), Some("/tmp/x.db.migrate-lock".into()));
        assert_eq!(lock_file("sqlite::memory:"), None);
        assert_eq!(lock_file("sqlite://file.db?mode=memory&cache=shared"), None);
        assert_eq!(lock_file("mysql://root@127.0.0.1/nanum"), None);
    }
}
