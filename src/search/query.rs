//! Searching the index: BM25 over both analyzers of every text field (title boosted most),
//! total hit count, an offset page, and a highlighted snippet of the field that matched.

use serde::Serialize;
use tantivy::{
    DocAddress, Score,
    collector::{Count, TopDocs},
    snippet::SnippetGenerator,
};

use super::SearchIndex;
use crate::entities::book;

/// The ids (and scores) of one page of hits, best first, and how to highlight them.
pub struct IndexHits {
    /// All matching documents.
    pub total: u64,
    /// `(book id, BM25 score)` of the page.
    pub hits: Vec<(i64, Score)>,
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

/// Per text field: its name, then generators for the bigram and the Latin analyzer.
pub struct Highlighter {
    fields: Vec<(&'static str, SnippetGenerator, SnippetGenerator)>,
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
                let snippet = generator.snippet(text);
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
        let query = self.parser().parse_query(q).map_err(|e| IndexQueryError::Invalid(e.to_string()))?;
        let searcher = self.reader().searcher();
        let collector = (TopDocs::with_limit(limit.max(1)).and_offset(offset).order_by_score(), Count);
        let (top, total) = searcher.search(&query, &collector)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, DocAddress { segment_ord, doc_id }) in top {
            let ids = searcher.segment_reader(segment_ord).fast_fields().i64("id")?;
            if let Some(id) = ids.first(doc_id) {
                hits.push((id, score));
            }
        }
        let mut fields = Vec::with_capacity(self.fields().text.len());
        for &(name, latin, cjk) in &self.fields().text {
            let cjk = SnippetGenerator::create(&searcher, &*query, cjk)?;
            let latin = SnippetGenerator::create(&searcher, &*query, latin)?;
            fields.push((name, cjk, latin));
        }
        Ok(IndexHits { total: total as u64, hits, highlighter: Highlighter { fields } })
    }
}
