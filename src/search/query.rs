//! Searching the index: BM25 over both analyzers of every text field (title boosted most),
//! total hit count, an offset page of the books the documents stored, and a highlighted
//! snippet of the field that matched — no database round trip.

use std::sync::OnceLock;

use serde::Serialize;
use tantivy::{
    DocAddress, Score, Searcher, TantivyDocument,
    collector::{Count, TopDocs},
    query::Query,
    schema::Field,
    snippet::SnippetGenerator,
};

use super::SearchIndex;
use crate::entities::book;

/// One page of hits, best first, and how to highlight them.
pub struct IndexHits {
    /// All matching documents.
    pub total: u64,
    /// `(book as indexed, BM25 score)` of the page.
    pub hits: Vec<(book::Model, Score)>,
    /// Snippet generators of this query.
    pub highlighter: Highlighter,
}

/// A fragment of one field with the matched words in `<b>…</b>` (the rest HTML-escaped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Highlight {
    /// `title`, `author`, `publisher` or `description`.
    pub field: &'static str,
    /// HTML.
    pub snippet: String,
}

/// Per text field: its name, then generators for the bigram and the Latin analyzer, each
/// made on first use (most hits match in the title, so most generators are never needed,
/// and making one looks up the document frequency of every query term).
pub struct Highlighter {
    fields: Vec<(&'static str, Generator, Generator)>,
}

struct Generator {
    searcher: Searcher,
    query: std::sync::Arc<dyn Query>,
    field: Field,
    made: OnceLock<Option<SnippetGenerator>>,
}

impl Generator {
    fn snippet(&self, text: &str) -> Option<tantivy::snippet::Snippet> {
        let generator = self.made.get_or_init(|| {
            SnippetGenerator::create(&self.searcher, &*self.query, self.field)
                .inspect_err(|e| tracing::warn!(error = %e, "search: no highlighter for a field"))
                .ok()
        });
        Some(generator.as_ref()?.snippet(text))
    }
}

impl std::fmt::Debug for Highlighter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Highlighter").finish_non_exhaustive()
    }
}

impl Highlighter {
    /// The first field of `book` (title, author, publisher, description) holding a match.
    /// The bigram analyzer is asked first (it knows Korean words inside compounds and
    /// lowercased Latin words); the Latin one catches what only ASCII folding matched.
    pub fn highlight(&self, book: &book::Model) -> Option<Highlight> {
        let values =
            [Some(&book.title), Some(&book.author), book.publisher.as_ref(), book.description.as_ref()];
        for ((field, cjk, latin), value) in self.fields.iter().zip(values) {
            let Some(text) = value else { continue };
            for generator in [cjk, latin] {
                let Some(snippet) = generator.snippet(text) else { continue };
                if !snippet.highlighted().is_empty() {
                    return Some(Highlight { field, snippet: snippet.to_html() });
                }
            }
        }
        None
    }
}

/// Why a query could not run.
#[derive(Debug, thiserror::Error)]
pub enum IndexQueryError {
    /// The query does not parse (tantivy's query language).
    #[error("{0}")]
    Invalid(String),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] tantivy::TantivyError),
}

impl SearchIndex {
    /// One page (`offset`, `limit` ≥ 1) of the hits of `q`, best first. Every word must match
    /// in some field; tantivy's query syntax works (`"phrase"`, `title:word`, `-word`).
    ///
    /// # Errors
    ///
    /// [`IndexQueryError::Invalid`] for a query tantivy cannot parse.
    pub fn search(&self, q: &str, offset: usize, limit: usize) -> Result<IndexHits, IndexQueryError> {
        let (searcher, query, total, top) = self.top(q, offset, limit)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let Some(book) = self.stored_book(&doc) {
                hits.push((book, score));
            }
        }
        let query: std::sync::Arc<dyn Query> = query.into();
        let generator = |field| Generator {
            searcher: searcher.clone(),
            query: std::sync::Arc::clone(&query),
            field,
            made: OnceLock::new(),
        };
        let fields =
            self.fields().text.iter().map(|&(name, latin, cjk)| (name, generator(cjk), generator(latin)));
        Ok(IndexHits { total, hits, highlighter: Highlighter { fields: fields.collect() } })
    }

    /// The engine alone: the total and the book ids of one page of hits of `q`, nothing
    /// loaded or highlighted (what the bench compares the whole search against).
    ///
    /// # Errors
    ///
    /// As [`search`](Self::search).
    pub fn search_ids(
        &self,
        q: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<i64>), IndexQueryError> {
        let (searcher, _, total, top) = self.top(q, offset, limit)?;
        let mut ids = Vec::with_capacity(top.len());
        for (_, DocAddress { segment_ord, doc_id }) in top {
            let column = searcher.segment_reader(segment_ord).fast_fields().i64("id")?;
            ids.extend(column.first(doc_id));
        }
        Ok((total, ids))
    }

    #[expect(clippy::type_complexity, reason = "a private four-part answer: searcher, query, total, hits")]
    fn top(
        &self,
        q: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Searcher, Box<dyn Query>, u64, Vec<(Score, DocAddress)>), IndexQueryError> {
        let query = self.parser().parse_query(q).map_err(|e| IndexQueryError::Invalid(e.to_string()))?;
        let searcher = self.reader().searcher();
        let collector = (TopDocs::with_limit(limit.max(1)).and_offset(offset).order_by_score(), Count);
        let (top, total) = searcher.search(&query, &collector)?;
        Ok((searcher, query, total as u64, top))
    }
}
