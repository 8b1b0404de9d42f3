//! Catalogue search: an embedded tantivy index that follows the database, in place of the
//! Elasticsearch + Logstash pair the team ran.
//!
//! - [`SearchIndex`] (this file): the index on disk under `search.index_dir` — schema, the
//!   two analyzers, the single writer, and commits whose payload records which outbox rows
//!   they applied, so "indexed" and "remembered as indexed" are one atomic step.
//! - [`cjk`]: the Korean/CJK bigram tokenizer.
//! - [`query`]: BM25 search with total hits, pagination and highlighted snippets.
//! - [`outbox`]: the outbox table every book write fills in its own transaction, the sync
//!   task that applies it to the index, and the full rebuild (`nanum search reindex`).
//! - [`engines`]: the same query three ways (`tantivy`, `like`, `fulltext`), one result shape.
//!
//! Every text field is indexed twice: `title` with the Latin analyzer (words, lowercase,
//! ASCII folding: `Café` finds `cafe`) and `title_cjk` with the bigram one (`소년` finds
//! `소년이`). Nothing but the book id is stored: hits are loaded from the database, which stays
//! the source of truth.

pub mod cjk;
pub mod engines;
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
    query::QueryParser,
    schema::{
        FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
    },
    tokenizer::{
        AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, TokenizerManager,
    },
};

use crate::entities::book;

/// Name of the Latin analyzer in the index's tokenizer manager.
pub const LATIN: &str = "latin";
/// Name of the Korean/CJK bigram analyzer.
pub const CJK: &str = "cjk";

/// The searchable text fields, in highlight order, with their BM25 boosts.
pub const TEXT_FIELDS: [(&str, f32); 4] =
    [("title", 3.0), ("author", 2.0), ("publisher", 1.0), ("description", 1.0)];

/// Field handles of the schema.
#[derive(Debug, Clone)]
pub struct Fields {
    /// Book id: indexed (delete by id), stored, fast (read ids of hits).
    pub id: Field,
    /// `(name, latin field, cjk field)` per entry of [`TEXT_FIELDS`].
    pub text: Vec<(&'static str, Field, Field)>,
    /// ISBN digits, untokenized.
    pub isbn: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let id = builder.add_i64_field("id", INDEXED | STORED | FAST);
    let analyzed = |tokenizer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
    };
    let text = TEXT_FIELDS
        .iter()
        .map(|&(name, _)| {
            let latin = builder.add_text_field(name, analyzed(LATIN));
            let cjk = builder.add_text_field(&format!("{name}_cjk"), analyzed(CJK));
            (name, latin, cjk)
        })
        .collect();
    let isbn = builder.add_text_field("isbn", STRING);
    (builder.build(), Fields { id, text, isbn })
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
    manager.register(CJK, TextAnalyzer::builder(cjk::CjkBigramTokenizer).filter(AsciiFoldingFilter).build());
    manager
}

/// What a commit applied, kept as the commit's payload (JSON) so it is durable exactly when
/// the documents are. On start-up those outbox rows are deleted if they are still there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Inclusive ranges of outbox ids applied by incremental sync (exact: gaps stay gaps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<(i64, i64)>,
    /// A full rebuild covered every outbox row up to this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<i64>,
}

impl Applied {
    /// Exact ranges of a set of ids.
    pub fn from_ids(ids: &[i64]) -> Self {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        for id in sorted {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == id => *end = id,
                _ => ranges.push((id, id)),
            }
        }
        Self { ranges, through: None }
    }

    /// Nothing applied.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.through.is_none()
    }
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
    parser: QueryParser,
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
        let created = !Index::exists(&directory)?;
        let (schema, fields) = schema();
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
        let mut default_fields: Vec<Field> = fields.text.iter().flat_map(|t| [t.1, t.2]).collect();
        default_fields.push(fields.isbn);
        let mut parser = QueryParser::for_index(&index, default_fields);
        for ((_, boost), (_, latin, cjk)) in TEXT_FIELDS.iter().zip(&fields.text) {
            parser.set_field_boost(*latin, *boost);
            parser.set_field_boost(*cjk, *boost);
        }
        // Every word must match (in some field), as a catalogue search box is expected to.
        parser.set_conjunction_by_default();
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            parser,
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

    pub(crate) fn parser(&self) -> &QueryParser {
        &self.parser
    }

    /// Documents visible to searches.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// What the last commit applied (its payload).
    ///
    /// # Errors
    ///
    /// The index metadata cannot be read or the payload is not ours.
    pub fn last_applied(&self) -> anyhow::Result<Applied> {
        match self.index.load_metas()?.payload {
            Some(payload) if !payload.is_empty() => Ok(serde_json::from_str(&payload)?),
            _ => Ok(Applied::default()),
        }
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
                writer.add_document(self.document(book))?;
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

    /// Commits everything applied so far with `applied` as payload, then makes it visible.
    ///
    /// # Errors
    ///
    /// The commit failed; nothing of it is durable and the work will be redone.
    pub fn commit(&self, applied: &Applied) -> anyhow::Result<()> {
        let mut writer = self.writer.lock().map_err(|_| anyhow::anyhow!("search writer poisoned"))?;
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&serde_json::to_string(applied)?);
        prepared.commit()?;
        drop(writer);
        self.reader.reload()?;
        Ok(())
    }

    fn document(&self, book: &book::Model) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_i64(self.fields.id, book.id);
        let values =
            [Some(&book.title), Some(&book.author), book.publisher.as_ref(), book.description.as_ref()];
        for ((_, latin, cjk), value) in self.fields.text.iter().zip(values) {
            if let Some(text) = value {
                doc.add_text(*latin, text);
                doc.add_text(*cjk, text);
            }
        }
        if let Some(isbn) = &book.isbn {
            doc.add_text(self.fields.isbn, isbn);
        }
        doc
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
