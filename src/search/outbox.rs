//! The Logstash replacement: an append-only change log (the `search_outbox` table) written
//! in the same transaction as every book change, and a sync task that follows it into this
//! instance's own index — every instance runs one, and none coordinates the others.
//!
//! A row only says "book X changed"; the task reads the book's *current* row and replaces
//! its document (or deletes it when the book is gone), so applying a row twice is harmless
//! and rows may be applied in any grouping. Rows are never deleted on apply (another
//! instance may not have read them yet): each index keeps its own position, and the log is
//! pruned by age.
//!
//! 1. read the rows after the position (oldest first) and the ids missed earlier (`gaps`);
//!    load their books, replace the documents;
//! 2. commit the index with the new [`LogPosition`] as payload, reload the reader.
//!
//! A crash before 2 loses nothing (the position was not moved; the rows are re-read). With
//! auto-increment ids a transaction that took id 10 can commit after one that took id 11,
//! so a plain cursor at 11 would skip 10 forever: ids skipped over are kept as gaps and
//! re-read every round until they appear or are older than [`LATE_COMMIT`] (a rolled-back
//! transaction leaves a gap that never fills). Rows older than `search.log_retention_s` are
//! deleted by every instance (idempotent); an index whose position is older than that is
//! rebuilt from the books table (as a new or wiped one is).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use indicatif::ProgressBar;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};
use tokio::time::Instant;

use super::{LogPosition, SearchIndex};
use crate::entities::book;

/// The table.
pub const TABLE: &str = "search_outbox";
/// Books loaded per page by a rebuild.
const REBUILD_PAGE: u64 = 5000;
/// Rows deleted per statement when pruning.
const PRUNE_CHUNK: i64 = 10_000;
/// How often an instance prunes the log.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Applied documents after which the sync task commits even if more rows are waiting.
const COMMIT_EVERY: usize = 50_000;
/// Longest the sync task holds applied documents uncommitted while catching up.
const COMMIT_WITHIN: Duration = Duration::from_secs(1);
/// How long a skipped id is waited for: longer than any book-write transaction takes
/// between inserting its log row and committing.
pub const LATE_COMMIT: Duration = Duration::from_secs(10);
/// Most gaps kept (a rolled-back bulk insert leaves up to 1000); beyond, the oldest go.
const MAX_GAPS: usize = 20_000;
/// Ids below the top looked at for gaps after a rebuild (transactions still open then).
const REBUILD_GAP_WINDOW: i64 = 1000;

/// How the sync task runs (`[search]` settings).
#[derive(Debug, Clone, Copy)]
pub struct SyncConfig {
    /// Poll period when nothing woke the task (writes of other processes).
    pub interval: Duration,
    /// Log rows read per round.
    pub batch_size: u64,
    /// Age after which log rows are pruned.
    pub retention: Duration,
}

impl SyncConfig {
    /// An index whose last catch-up is older than this may have missed pruned rows. Two
    /// late-commit windows of margin: one for slow transactions, one for clock skew
    /// between the writer (who stamps a row) and the pruner.
    fn trust_for(&self) -> i64 {
        ms(self.retention.saturating_sub(LATE_COMMIT * 2))
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
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

/// Rows in the log (not yet pruned).
///
/// # Errors
///
/// Any database error.
pub async fn pending(conn: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let sql = format!("SELECT COUNT(*) AS n FROM {TABLE}");
    let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql)).await?;
    Ok(row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0).try_into().unwrap_or(0))
}

fn rows(found: &[sea_orm::QueryResult]) -> Result<Vec<(i64, i64)>, DbErr> {
    found.iter().map(|r| Ok((r.try_get::<i64>("", "id")?, r.try_get::<i64>("", "book_id")?))).collect()
}

/// `(log id, book id)` of up to `limit` rows with id above `after`, oldest first.
async fn read(db: &DatabaseConnection, after: i64, limit: u64) -> Result<Vec<(i64, i64)>, DbErr> {
    let sql = format!("SELECT id, book_id FROM {TABLE} WHERE id > ? ORDER BY id LIMIT ?");
    let stmt = Statement::from_sql_and_values(db.get_database_backend(), sql, [after.into(), limit.into()]);
    rows(&db.query_all_raw(stmt).await?)
}

/// `(log id, book id)` of those of `ids` that are in the log now.
async fn read_ids(db: &DatabaseConnection, ids: &[i64]) -> Result<Vec<(i64, i64)>, DbErr> {
    let mut found = Vec::new();
    for chunk in ids.chunks(500) {
        let sql =
            format!("SELECT id, book_id FROM {TABLE} WHERE id IN ({})", vec!["?"; chunk.len()].join(", "));
        let values: Vec<Value> = chunk.iter().map(|&id| id.into()).collect();
        let stmt = Statement::from_sql_and_values(db.get_database_backend(), sql, values);
        found.extend(rows(&db.query_all_raw(stmt).await?)?);
    }
    Ok(found)
}

async fn max_id(db: &DatabaseConnection) -> Result<i64, DbErr> {
    let sql = format!("SELECT MAX(id) AS hi FROM {TABLE}");
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    Ok(row.and_then(|r| r.try_get::<Option<i64>>("", "hi").ok().flatten()).unwrap_or(0))
}

/// Deletes the rows stamped before `cutoff`, in slices so a pruned million-row seed is
/// not one huge transaction. Every instance does it; deleting twice is harmless.
async fn prune(db: &DatabaseConnection, cutoff: chrono::DateTime<chrono::Utc>) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!("SELECT MIN(id) AS lo, MAX(id) AS hi FROM {TABLE} WHERE created_at < ?");
    let row = db.query_one_raw(Statement::from_sql_and_values(backend, sql, [cutoff.into()])).await?;
    let bound = |name: &str| row.as_ref().and_then(|r| r.try_get::<Option<i64>>("", name).ok().flatten());
    let (Some(mut lo), Some(hi)) = (bound("lo"), bound("hi")) else { return Ok(0) };
    let mut deleted = 0;
    while lo <= hi {
        let top = (lo + PRUNE_CHUNK - 1).min(hi);
        let sql = format!("DELETE FROM {TABLE} WHERE id BETWEEN ? AND ? AND created_at < ?");
        let stmt = Statement::from_sql_and_values(backend, sql, [lo.into(), top.into(), cutoff.into()]);
        deleted += db.execute_raw(stmt).await?.rows_affected();
        lo = top + 1;
    }
    Ok(deleted)
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

/// Rebuilds the index from the books table: clear, add every book in id order, commit
/// with the log position read before the scan. Returns the books indexed.
///
/// # Errors
///
/// Database or index errors; the index keeps its previous commit.
pub async fn reindex(
    db: &DatabaseConnection,
    index: &Arc<SearchIndex>,
    progress: &ProgressBar,
) -> anyhow::Result<u64> {
    // Read first: every log row up to here is committed, so the scan below sees its book.
    // Ids below the top still missing may belong to transactions open now, whose books the
    // scan may miss: they start as gaps, waited for like any other.
    let caught_up_ms = now_ms();
    let through = max_id(db).await?;
    let low = (through - REBUILD_GAP_WINDOW).max(0);
    let sql = format!("SELECT id FROM {TABLE} WHERE id > ? AND id <= ?");
    let stmt = Statement::from_sql_and_values(db.get_database_backend(), sql, [low.into(), through.into()]);
    let present: HashSet<i64> =
        db.query_all_raw(stmt).await?.iter().map(|r| r.try_get::<i64>("", "id")).collect::<Result<_, _>>()?;
    let gaps = (low + 1..=through).filter(|id| !present.contains(id)).map(|id| (id, caught_up_ms)).collect();
    let position = LogPosition { through, gaps, caught_up_ms };

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
    let index2 = Arc::clone(index);
    blocking(move || index2.commit(&position)).await?;
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
        position: LogPosition::default(),
        dirty: 0,
        since: None,
        committed_at: Instant::now(),
        pruned_at: None,
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
    /// Where the index stands, counting documents applied but not committed yet.
    position: LogPosition,
    /// Documents applied since the last commit.
    dirty: usize,
    /// When the oldest of those was applied.
    since: Option<Instant>,
    /// The last commit (an idle index commits now and then so its position stays fresh).
    committed_at: Instant,
    /// The last prune of the log.
    pruned_at: Option<Instant>,
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
        if now_ms() - self.position.caught_up_ms > self.config.trust_for() {
            // Behind for longer than the log keeps rows (e.g. a long outage): rows it still
            // needs may be pruned, so start over from the books table.
            tracing::warn!("search index fell behind the change log's retention; rebuilding it");
            self.rebuild().await?;
        }
        self.prune_now_and_then().await?;

        let read_at = now_ms();
        let fresh = read(&self.db, self.position.through, self.config.batch_size).await?;
        let gap_ids: Vec<i64> = self.position.gaps.iter().map(|g| g.0).collect();
        let late = if gap_ids.is_empty() { Vec::new() } else { read_ids(&self.db, &gap_ids).await? };
        let full = fresh.len() as u64 == self.config.batch_size;

        let mut ids: Vec<i64> = fresh.iter().chain(&late).map(|r| r.1).collect();
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            let mut books = load_books(&self.db, &ids).await?;
            let changes: Vec<_> = ids.iter().map(|&id| (id, books.remove(&id))).collect();
            let index = Arc::clone(&self.index);
            blocking(move || index.apply(&changes)).await?;
            self.dirty += ids.len();
            self.since.get_or_insert_with(Instant::now);
        }
        self.advance(&fresh, &late, read_at, full);

        let due =
            !full || self.dirty >= COMMIT_EVERY || self.since.is_some_and(|t| t.elapsed() >= COMMIT_WITHIN);
        let refresh = self.committed_at.elapsed() >= self.config.retention / 4;
        if (due && self.dirty > 0) || (!full && refresh) {
            let (index, position) = (Arc::clone(&self.index), self.position.clone());
            blocking(move || index.commit(&position)).await?;
            tracing::debug!(
                documents = self.dirty,
                through = self.position.through,
                "search sync: committed"
            );
            self.dirty = 0;
            self.since = None;
            self.committed_at = Instant::now();
        }
        Ok(if full { Round::More } else { Round::Idle })
    }

    /// Moves the position past `fresh` (ids jumped over become gaps), drops the gaps that
    /// turned up in `late`, and — once the log was read to its end — gives up on gaps older
    /// than [`LATE_COMMIT`].
    fn advance(&mut self, fresh: &[(i64, i64)], late: &[(i64, i64)], read_at: i64, full: bool) {
        let position = &mut self.position;
        let found: HashSet<i64> = late.iter().map(|r| r.0).collect();
        position.gaps.retain(|g| !found.contains(&g.0));
        for &(id, _) in fresh {
            let skipped = (position.through + 1).max(id - i64::try_from(MAX_GAPS).unwrap_or(i64::MAX));
            position.gaps.extend((skipped..id).map(|missing| (missing, read_at)));
            position.through = position.through.max(id);
        }
        if position.gaps.len() > MAX_GAPS {
            tracing::warn!(
                gaps = position.gaps.len(),
                "search sync: too many change-log gaps; dropping the oldest"
            );
            let excess = position.gaps.len() - MAX_GAPS;
            position.gaps.drain(..excess);
        }
        if !full {
            let window = ms(LATE_COMMIT);
            position.gaps.retain(|&(_, missed)| read_at - missed < window);
            position.caught_up_ms = read_at;
        }
    }

    async fn prune_now_and_then(&mut self) -> anyhow::Result<()> {
        if self.pruned_at.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return Ok(());
        }
        let retention = chrono::Duration::from_std(self.config.retention)?;
        let deleted = prune(&self.db, chrono::Utc::now() - retention).await?;
        if deleted > 0 {
            tracing::debug!(rows = deleted, "search sync: pruned the change log");
        }
        self.pruned_at = Some(Instant::now());
        Ok(())
    }

    async fn rebuild(&mut self) -> anyhow::Result<()> {
        let n = reindex(&self.db, &self.index, &ProgressBar::hidden()).await?;
        tracing::info!(books = n, "search index built from the database");
        self.position = self.index.position()?.unwrap_or_default();
        self.dirty = 0;
        self.since = None;
        self.committed_at = Instant::now();
        Ok(())
    }

    /// Resumes from the last commit's position, or builds the index from the database when
    /// it has none (new, wiped, older nanum) or one older than the log's retention.
    async fn start(&mut self) -> anyhow::Result<()> {
        let index = Arc::clone(&self.index);
        match blocking(move || index.position()).await? {
            Some(position) if now_ms() - position.caught_up_ms <= self.config.trust_for() => {
                self.position = position;
            }
            _ => self.rebuild().await?,
        }
        self.started = true;
        Ok(())
    }
}
