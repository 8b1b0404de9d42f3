//! The Logstash replacement: an outbox table written in the same transaction as every book
//! change, and a sync task that applies it to the index.
//!
//! A row only says "book X changed"; the task reads the book's *current* row and replaces
//! its document (or deletes it when the book is gone), so applying a row twice is harmless
//! and rows may be applied in any grouping. It never keeps a cursor across commits: with
//! auto-increment ids, a transaction that took id 10 can commit after one that took id 11,
//! and a cursor at 11 would skip 10 forever. Instead applied rows are deleted — and which
//! rows a commit applied is its payload, durable exactly when its documents are:
//!
//! 1. read pending rows (oldest first), load their books, replace the documents;
//! 2. commit the index with payload "applied ids {ranges}", reload the reader;
//! 3. delete those rows.
//!
//! A crash before 2 loses nothing (the rows are still there); a crash between 2 and 3 is
//! settled at start-up, where the last payload's rows are deleted before anything is read.
//! A rebuild ([`reindex`]) records "everything through outbox id N" the same way.

use std::{collections::HashMap, sync::Arc, time::Duration};

use indicatif::ProgressBar;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};
use tokio::time::Instant;

use super::{Applied, SearchIndex};
use crate::entities::book;

/// The table.
pub const TABLE: &str = "search_outbox";
/// Books loaded per page by a rebuild.
const REBUILD_PAGE: u64 = 5000;
/// Rows deleted per statement when acknowledging.
const ACK_CHUNK: i64 = 10_000;
/// Applied documents after which the sync task commits even if more rows are waiting.
const COMMIT_EVERY: usize = 50_000;
/// Longest the sync task holds applied documents uncommitted while catching up.
const COMMIT_WITHIN: Duration = Duration::from_secs(1);

/// How the sync task runs (`[search]` settings).
#[derive(Debug, Clone, Copy)]
pub struct SyncConfig {
    /// Poll period when nothing woke the task (writes of other processes).
    pub interval: Duration,
    /// Outbox rows read per round.
    pub batch_size: u64,
}

/// Records that `book_ids` changed; call inside the transaction that changes them.
///
/// # Errors
///
/// Any database error (the caller's transaction then rolls back).
pub async fn record(conn: &impl ConnectionTrait, book_ids: &[i64]) -> Result<(), DbErr> {
    if book_ids.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now();
    let placeholders = vec!["(?, ?)"; book_ids.len()].join(", ");
    let values: Vec<Value> = book_ids.iter().flat_map(|&id| [id.into(), now.into()]).collect();
    let sql = format!("INSERT INTO {TABLE} (book_id, created_at) VALUES {placeholders}");
    conn.execute_raw(Statement::from_sql_and_values(conn.get_database_backend(), sql, values)).await?;
    Ok(())
}

/// Rows waiting to be applied.
///
/// # Errors
///
/// Any database error.
pub async fn pending(conn: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let sql = format!("SELECT COUNT(*) AS n FROM {TABLE}");
    let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql)).await?;
    Ok(row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0).try_into().unwrap_or(0))
}

/// `(outbox id, book id)` of up to `limit` rows with id above `after`, oldest first.
async fn read(db: &DatabaseConnection, after: i64, limit: u64) -> Result<Vec<(i64, i64)>, DbErr> {
    let sql = format!("SELECT id, book_id FROM {TABLE} WHERE id > ? ORDER BY id LIMIT ?");
    let stmt = Statement::from_sql_and_values(db.get_database_backend(), sql, [after.into(), limit.into()]);
    db.query_all_raw(stmt)
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<i64>("", "id")?, r.try_get::<i64>("", "book_id")?)))
        .collect()
}

/// Deletes the rows a durable commit applied.
async fn ack(db: &DatabaseConnection, applied: &Applied) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    for chunk in applied.ranges.chunks(200) {
        let clause = vec!["id BETWEEN ? AND ?"; chunk.len()].join(" OR ");
        let values: Vec<Value> = chunk.iter().flat_map(|&(a, b)| [a.into(), b.into()]).collect();
        let sql = format!("DELETE FROM {TABLE} WHERE {clause}");
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
    }
    if let Some(through) = applied.through {
        // In slices, so a rebuild after a million-row seed is not one huge transaction.
        let sql = format!("SELECT MIN(id) AS lo FROM {TABLE}");
        let lo = db.query_one_raw(Statement::from_string(backend, sql)).await?;
        let mut lo =
            lo.and_then(|r| r.try_get::<Option<i64>>("", "lo").ok().flatten()).unwrap_or(through + 1);
        while lo <= through {
            let hi = (lo + ACK_CHUNK - 1).min(through);
            let sql = format!("DELETE FROM {TABLE} WHERE id BETWEEN ? AND ?");
            db.execute_raw(Statement::from_sql_and_values(backend, sql, [lo.into(), hi.into()])).await?;
            lo = hi + 1;
        }
    }
    Ok(())
}

/// Current rows of `ids` (absent ones were deleted).
async fn load_books(db: &DatabaseConnection, ids: &[i64]) -> Result<HashMap<i64, book::Model>, DbErr> {
    let books = book::Entity::find().filter(book::Column::Id.is_in(ids.iter().copied())).all(db).await?;
    Ok(books.into_iter().map(|b| (b.id, b)).collect())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

/// Rebuilds the index from the books table: clear, add every book in id order, commit with
/// "through the newest outbox row", delete those rows. Returns the books indexed.
///
/// # Errors
///
/// Database or index errors; the index keeps its previous commit.
pub async fn reindex(
    db: &DatabaseConnection,
    index: &Arc<SearchIndex>,
    progress: &ProgressBar,
) -> anyhow::Result<u64> {
    let backend = db.get_database_backend();
    // Read first: every outbox row up to here is committed, so the scan below sees its book.
    let sql = format!("SELECT MAX(id) AS hi FROM {TABLE}");
    let through = db.query_one_raw(Statement::from_string(backend, sql)).await?;
    let through = through.and_then(|r| r.try_get::<Option<i64>>("", "hi").ok().flatten());
    progress.set_length(book::Entity::find().count(db).await?);
    let index2 = Arc::clone(index);
    blocking(move || index2.clear()).await?;
    let (mut last, mut done) = (0_i64, 0_u64);
    loop {
        let page = book::Entity::find()
            .filter(book::Column::Id.gt(last))
            .order_by_asc(book::Column::Id)
            .limit(REBUILD_PAGE)
            .all(db)
            .await?;
        let Some(tail) = page.last() else { break };
        last = tail.id;
        let n = page.len() as u64;
        let changes: Vec<_> = page.into_iter().map(|b| (b.id, Some(b))).collect();
        let index2 = Arc::clone(index);
        blocking(move || index2.apply(&changes)).await?;
        done += n;
        progress.inc(n);
        index.beat();
    }
    let applied = Applied { ranges: Vec::new(), through };
    let (index2, applied2) = (Arc::clone(index), applied.clone());
    blocking(move || index2.commit(&applied2)).await?;
    ack(db, &applied).await?;
    Ok(done)
}

/// Starts the sync task.
pub fn spawn(
    db: DatabaseConnection,
    index: Arc<SearchIndex>,
    config: SyncConfig,
) -> tokio::task::JoinHandle<()> {
    let task = Sync {
        db,
        index,
        config,
        started: false,
        cursor: 0,
        pending: Vec::new(),
        since: None,
        unacked: None,
    };
    tokio::spawn(task.run())
}

enum Round {
    /// A full batch was read: go again at once.
    More,
    /// Caught up: wait for a wake-up or the interval.
    Idle,
}

struct Sync {
    db: DatabaseConnection,
    index: Arc<SearchIndex>,
    config: SyncConfig,
    started: bool,
    /// Highest outbox id applied since the last commit (0 right after one).
    cursor: i64,
    /// Outbox ids applied but not committed yet.
    pending: Vec<i64>,
    /// When the oldest of those was applied.
    since: Option<Instant>,
    /// Committed but not yet deleted from the outbox.
    unacked: Option<Applied>,
}

impl Sync {
    async fn run(mut self) {
        let mut backoff = self.config.interval;
        loop {
            self.index.beat();
            match self.round().await {
                Ok(Round::More) => backoff = self.config.interval,
                Ok(Round::Idle) => {
                    backoff = self.config.interval;
                    self.index.woken_or(self.config.interval).await;
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "search sync: retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn round(&mut self) -> anyhow::Result<Round> {
        if !self.started {
            self.start().await?;
        }
        if let Some(applied) = &self.unacked {
            ack(&self.db, applied).await?;
            self.unacked = None;
        }
        let rows = read(&self.db, self.cursor, self.config.batch_size).await?;
        if let Some(&(last, _)) = rows.last() {
            let mut ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
            ids.sort_unstable();
            ids.dedup();
            let mut books = load_books(&self.db, &ids).await?;
            let changes: Vec<_> = ids.into_iter().map(|id| (id, books.remove(&id))).collect();
            let index = Arc::clone(&self.index);
            blocking(move || index.apply(&changes)).await?;
            self.pending.extend(rows.iter().map(|r| r.0));
            self.cursor = last;
            self.since.get_or_insert_with(Instant::now);
        }
        let full = rows.len() as u64 == self.config.batch_size;
        let due = !full
            || self.pending.len() >= COMMIT_EVERY
            || self.since.is_some_and(|t| t.elapsed() >= COMMIT_WITHIN);
        if due && !self.pending.is_empty() {
            let applied = Applied::from_ids(&self.pending);
            let (index, payload) = (Arc::clone(&self.index), applied.clone());
            blocking(move || index.commit(&payload)).await?;
            tracing::debug!(rows = self.pending.len(), "search sync: committed");
            self.pending.clear();
            self.cursor = 0;
            self.since = None;
            self.unacked = Some(applied);
            if let Some(applied) = &self.unacked {
                ack(&self.db, applied).await?;
                self.unacked = None;
            }
        }
        Ok(if full { Round::More } else { Round::Idle })
    }

    /// Settles the last commit (its rows may still be in the outbox) or, for an index that
    /// was never committed (new, or its folder was wiped), builds it from the database.
    async fn start(&mut self) -> anyhow::Result<()> {
        let index = Arc::clone(&self.index);
        match blocking(move || Ok(index.index().load_metas()?.payload)).await? {
            Some(_) => ack(&self.db, &self.index.last_applied()?).await?,
            None => {
                let n = reindex(&self.db, &self.index, &ProgressBar::hidden()).await?;
                tracing::info!(books = n, "search index built from the database");
            }
        }
        self.started = true;
        Ok(())
    }
}
