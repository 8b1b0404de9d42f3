//! Catalogue search: an embedded tantivy index that follows the database, in place of the
//! Elasticsearch + Logstash pair the team ran.
//!
//! - [`SearchIndex`] (this file): the index on disk under `search.index_dir` — schema, the
//!   two analyzers, the single writer, and commits whose payload records the index's
//!   position in the change log, so "indexed" and "remembered as indexed" are one atomic step.
//! - [`korean`]: the Korean analysis (word forms without particles and endings, parts of
//!   compounds), with [`cjk`]'s bigrams for Han and Kana.
//! - [`query`]: BM25 search with total hits, pagination and highlighted snippets.
//! - [`highlight`]: the snippets of the Korean fields.
//! - [`outbox`]: the append-only change log every book write fills in its own transaction,
//!   the sync task that follows it from this index's own position, and the full rebuild
//!   (`nanum search reindex`).
//! - [`engines`]: the same query three ways (`tantivy`, `like`, `fulltext`), one result shape.
//!
//! Every text field is indexed three times: `title` with the Latin analyzer (words,
//! lowercase, ASCII folding: `Café` finds `cafe`), `title_ko` with the Korean word forms
//! (`소년` finds `소년이`, `별` finds `별을`) and `title_kp` with the parts of Korean
//! compounds (`주의` finds `채식주의자`), boosted less (docs/korean-search.md). Each document also stores the book as it was indexed (its JSON), so a page of
//! hits is served from the index alone, without a database round trip; the change log
//! replaces that copy within the sync bound whenever the row changes.

pub mod cjk;
pub mod engines;
pub mod highlight;
pub mod korean;
pub mod outbox;
pub mod query;

use std::{
    path::Path,
    sync::{
        Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tantivy::{
    Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term,
    directory::MmapDirectory,
    schema::{
        FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
        Value,
    },
    tokenizer::{
        AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, TokenizerManager,
    },
};

use crate::entities::book;

/// Name of the Latin analyzer in the index's tokenizer manager.
pub const LATIN: &str = "latin";
/// Name of the Korean word-forms analyzer (and Han/Kana bigrams).
pub const KO_WORDS: &str = "ko_words";
/// Name of the Korean compound-pieces analyzer.
pub const KO_PIECES: &str = "ko_pieces";
/// Boost of a compound piece relative to a word of the same field: a word match ranks first.
pub const PIECE_BOOST: f32 = 0.4;

/// The searchable text fields, in highlight order, with their BM25 boosts.
pub const TEXT_FIELDS: [(&str, f32); 4] =
    [("title", 3.0), ("author", 2.0), ("publisher", 1.0), ("description", 1.0)];

/// Field handles of the schema.
#[derive(Debug, Clone)]
pub struct Fields {
    /// Book id: indexed (delete by id), stored, fast (read ids of hits).
    pub id: Field,
    /// Per entry of [`TEXT_FIELDS`].
    pub text: Vec<TextField>,
    /// ISBN digits, untokenized.
    pub isbn: Field,
    /// The book as indexed, as JSON (stored only): what a hit shows.
    pub book: Field,
}

/// The three indexed forms of one text field.
#[derive(Debug, Clone, Copy)]
pub struct TextField {
    /// `title`, `author`, `publisher` or `description`.
    pub name: &'static str,
    /// BM25 boost.
    pub boost: f32,
    /// Latin analyzer.
    pub latin: Field,
    /// Korean word forms, Han/Kana bigrams (positions kept for Han/Kana phrases).
    pub words: Field,
    /// Korean compound pieces.
    pub pieces: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let id = builder.add_i64_field("id", INDEXED | STORED | FAST);
    let analyzed = |tokenizer: &str, record: IndexRecordOption| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default().set_tokenizer(tokenizer).set_index_option(record),
        )
    };
    let text = TEXT_FIELDS
        .iter()
        .map(|&(name, boost)| TextField {
            name,
            boost,
            latin: builder.add_text_field(name, analyzed(LATIN, IndexRecordOption::WithFreqsAndPositions)),
            words: builder.add_text_field(
                &format!("{name}_ko"),
                analyzed(KO_WORDS, IndexRecordOption::WithFreqsAndPositions),
            ),
            // Pieces are looked up one term at a time: no positions.
            pieces: builder
                .add_text_field(&format!("{name}_kp"), analyzed(KO_PIECES, IndexRecordOption::WithFreqs)),
        })
        .collect();
    let isbn = builder.add_text_field("isbn", STRING);
    let book = builder.add_bytes_field("book", STORED);
    (builder.build(), Fields { id, text, isbn, book })
}

fn tokenizers() -> TokenizerManager {
    let manager = TokenizerManager::default();
    manager.register(
        LATIN,
        TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter)
            .build(),
    );
    for (name, half) in [(KO_WORDS, korean::Half::Words), (KO_PIECES, korean::Half::Pieces)] {
        let analyzer =
            TextAnalyzer::builder(korean::KoreanTokenizer(half)).filter(RemoveLongFilter::limit(40));
        manager.register(name, analyzer.filter(AsciiFoldingFilter).build());
    }
    manager
}

/// Where an index stands in the change log, kept as its commit payload (JSON) so it is
/// durable exactly when the documents are. Each index has its own: nothing is shared
/// between instances but the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    /// Every log row with an id up to this one has been applied, except `gaps`.
    pub through: i64,
    /// Ids at or below `through` that were missing when read past — their transactions may
    /// still commit (auto-increment ids commit out of order) — as `(id, first missed at ms)`.
    /// Re-read every round until found or older than the late-commit window.
    #[serde(default)]
    pub gaps: Vec<(i64, i64)>,
    /// When the log was last read to its end (ms since the epoch). Rows older than
    /// `search.log_retention_s` are pruned, so an index that has not caught up within that
    /// is rebuilt instead of trusted.
    pub caught_up_ms: i64,
}

/// The commit payload. An index committed by an older nanum (no `log`, or another
/// [`korean::ANALYSIS_VERSION`]) is rebuilt.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    log: Option<LogPosition>,
    #[serde(default)]
    analysis: u32,
}

/// Writer resources: the server indexes a few books at a time; a rebuild wants more.
#[derive(Debug, Clone, Copy)]
pub struct WriterBudget {
    /// Indexing threads.
    pub threads: usize,
    /// Memory over all threads, in bytes (at least 15 MB per thread).
    pub memory_bytes: usize,
}

impl WriterBudget {
    /// One thread, 32 MB: enough for incremental sync, light enough for many test servers.
    pub const SERVER: Self = Self { threads: 1, memory_bytes: 32 << 20 };

    /// Every core (at most 4), 128 MB per thread: a full rebuild.
    pub fn bulk() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, usize::from).min(4);
        Self { threads, memory_bytes: threads * (128 << 20) }
    }
}

/// The index, its reader, its only writer, and the sync task's heartbeat.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    created: bool,
    last_beat_ms: AtomicI64,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").field("created", &self.created).finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl SearchIndex {
    /// Opens the index under `dir`, creating it (and the folder) when absent, and takes the
    /// writer lock — one process owns an index folder.
    ///
    /// # Errors
    ///
    /// One line naming `search.index_dir`: the folder cannot be created, another process
    /// holds the index, or it was written with another schema (run `nanum search reindex`).
    pub fn open(dir: &Path, budget: WriterBudget) -> anyhow::Result<Self> {
        let name = dir.display();
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("search.index_dir = \"{name}\": cannot create it: {e}"))?;
        let directory = MmapDirectory::open(dir)
            .map_err(|e| anyhow::anyhow!("search.index_dir = \"{name}\": cannot open it: {e}"))?;
        let (schema, fields) = schema();
        if Index::exists(&directory)? && Index::open(directory.clone())?.schema() != schema {
            // The index is derived data: one written by an older nanum (another schema) is
            // dropped and rebuilt from the database rather than refused.
            tracing::warn!(dir = %name, "search index has an older schema; rebuilding it");
            drop(directory);
            std::fs::remove_dir_all(dir)
                .and_then(|()| std::fs::create_dir_all(dir))
                .map_err(|e| anyhow::anyhow!("search.index_dir = \"{name}\": cannot clear it: {e}"))?;
            return Self::open(dir, budget);
        }
        let created = !Index::exists(&directory)?;
        let index =
            Index::builder().schema(schema).tokenizers(tokenizers()).open_or_create(directory).map_err(|e| {
                anyhow::anyhow!(
                    "search.index_dir = \"{name}\": {e}; `nanum search reindex` rebuilds it (APP__SEARCH__INDEX_DIR)"
                )
            })?;
        let writer = index.writer_with_num_threads(budget.threads, budget.memory_bytes).map_err(|e| {
            anyhow::anyhow!("search.index_dir = \"{name}\" is in use by another nanum process? {e}")
        })?;
        // Reloaded by hand right after each commit: visibility is immediate, no file watcher.
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            created,
            last_beat_ms: AtomicI64::new(now_ms()),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// True when [`open`](Self::open) created an empty index (it must be built from the
    /// database before it can be trusted).
    pub fn was_created(&self) -> bool {
        self.created
    }

    /// Schema field handles.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// The tantivy index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    pub(crate) fn reader(&self) -> &IndexReader {
        &self.reader
    }

    /// Documents visible to searches.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The change-log position of the last commit; `None` for an index never committed, or
    /// committed by an older nanum or with another analysis (it must be rebuilt).
    ///
    /// # Errors
    ///
    /// The index metadata cannot be read.
    pub fn position(&self) -> anyhow::Result<Option<LogPosition>> {
        let payload = self.index.load_metas()?.payload.unwrap_or_default();
        let payload = serde_json::from_str::<Payload>(&payload).ok();
        Ok(payload.filter(|p| p.analysis == korean::ANALYSIS_VERSION).and_then(|p| p.log))
    }

    /// Replaces each book's document (delete by id, then add the current state); a `None`
    /// book was deleted. Invisible until [`commit`](Self::commit).
    ///
    /// # Errors
    ///
    /// The writer failed (its threads died); the index must be reopened.
    pub fn apply(&self, changes: &[(i64, Option<book::Model>)]) -> anyhow::Result<()> {
        let writer = self.writer.lock().map_err(|_| anyhow::anyhow!("search writer poisoned"))?;
        for (id, book) in changes {
            writer.delete_term(Term::from_field_i64(self.fields.id, *id));
            if let Some(book) = book {
                writer.add_document(self.document(book)?)?;
            }
        }
        Ok(())
    }

    /// Removes every document (a rebuild starts here). Invisible until committed.
    ///
    /// # Errors
    ///
    /// See [`apply`](Self::apply).
    pub fn clear(&self) -> anyhow::Result<()> {
        let writer = self.writer.lock().map_err(|_| anyhow::anyhow!("search writer poisoned"))?;
        writer.delete_all_documents()?;
        Ok(())
    }

    /// Commits everything applied so far with `position` as payload, then makes it visible.
    ///
    /// # Errors
    ///
    /// The commit failed; nothing of it is durable and the work will be redone.
    pub fn commit(&self, position: &LogPosition) -> anyhow::Result<()> {
        let mut writer = self.writer.lock().map_err(|_| anyhow::anyhow!("search writer poisoned"))?;
        let mut prepared = writer.prepare_commit()?;
        let payload = Payload { log: Some(position.clone()), analysis: korean::ANALYSIS_VERSION };
        prepared.set_payload(&serde_json::to_string(&payload)?);
        prepared.commit()?;
        drop(writer);
        self.reader.reload()?;
        Ok(())
    }

    fn document(&self, book: &book::Model) -> anyhow::Result<TantivyDocument> {
        let mut doc = TantivyDocument::default();
        doc.add_i64(self.fields.id, book.id);
        doc.add_bytes(self.fields.book, &serde_json::to_vec(book)?);
        let values =
            [Some(&book.title), Some(&book.author), book.publisher.as_ref(), book.description.as_ref()];
        for (field, value) in self.fields.text.iter().zip(values) {
            if let Some(text) = value {
                doc.add_text(field.latin, text);
                doc.add_text(field.words, text);
                doc.add_text(field.pieces, text);
            }
        }
        if let Some(isbn) = &book.isbn {
            doc.add_text(self.fields.isbn, isbn);
        }
        Ok(doc)
    }

    /// The book a document stored (as it was when indexed).
    pub(crate) fn stored_book(&self, doc: &TantivyDocument) -> Option<book::Model> {
        serde_json::from_slice(doc.get_first(self.fields.book)?.as_bytes()?).ok()
    }

    /// Wakes the sync task (a book was written by this process).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken_or(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }

    pub(crate) fn beat(&self) {
        self.last_beat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// True when the sync task went round its loop within `within` (it is alive).
    pub fn sync_alive(&self, within: Duration) -> bool {
        let age = now_ms() - self.last_beat_ms.load(Ordering::Relaxed);
        age <= i64::try_from(within.as_millis()).unwrap_or(i64::MAX)
    }
}
