//! Searching the index: BM25 over the three analyzers of every text field (title boosted
//! most), total hit count, an offset page of the books the documents stored, and a
//! highlighted snippet of the field that matched — no database round trip.
//!
//! The reader's text is never query syntax: it is cut into words as the index's text is
//! ([`korean::query_words`]); quotes, `:`, `*`, `(`, `AND` are separators or words. Every
//! word must match in some field: a Hangul word as one of its forms (a word of the text, or
//! a piece of a compound, boosted less), a long one also as two words typed without their
//! space (`소년이온다`); Latin and digit words in the Latin or the Korean field (`82년생`);
//! Han and Kana as a phrase of bigrams.

use std::sync::OnceLock;

use serde::Serialize;
use tantivy::{
    DocAddress, Score, Searcher, TantivyDocument, Term,
    collector::{Count, TopDocs},
    query::{BooleanQuery, BoostQuery, EmptyQuery, Occur, PhraseQuery, Query, TermQuery},
    schema::{Field, IndexRecordOption},
    snippet::SnippetGenerator,
};

use super::{
    PIECE_BOOST, SearchIndex, TextField,
    highlight::KoreanMarks,
    korean::{self, QueryWord},
};
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

/// Per text field: its name, the query's Korean terms in it, and a generator for the Latin
/// analyzer made on first use (most hits match in the title, so most generators are never
/// needed, and making one looks up the document frequency of every query term).
pub struct Highlighter {
    fields: Vec<(&'static str, KoreanMarks, Generator)>,
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
    /// The Korean analyzers are asked first (their offsets are the stem the reader typed,
    /// or the part of a compound); the Latin one catches what only it matched.
    pub fn highlight(&self, book: &book::Model) -> Option<Highlight> {
        let values =
            [Some(&book.title), Some(&book.author), book.publisher.as_ref(), book.description.as_ref()];
        for ((field, korean, latin), value) in self.fields.iter().zip(values) {
            let Some(text) = value else { continue };
            if let Some(snippet) = korean.snippet(text) {
                return Some(Highlight { field, snippet });
            }
            let Some(snippet) = latin.snippet(text) else { continue };
            if !snippet.highlighted().is_empty() {
                return Some(Highlight { field, snippet: snippet.to_html() });
            }
        }
        None
    }
}

/// Why a query could not run.
#[derive(Debug, thiserror::Error)]
pub enum IndexQueryError {
    /// The index failed.
    #[error(transparent)]
    Index(#[from] tantivy::TantivyError),
}

impl SearchIndex {
    /// One page (`offset`, `limit` ≥ 1) of the hits of `q`, best first. Every word must match
    /// in some field (see the module docs); a text without a word matches nothing.
    ///
    /// # Errors
    ///
    /// The index failed.
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
        let fields = self
            .fields()
            .text
            .iter()
            .map(|f| (f.name, KoreanMarks::new(&*query, [f.words, f.pieces]), generator(f.latin)));
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
        let query = self.query(q);
        let searcher = self.reader().searcher();
        let collector = (TopDocs::with_limit(limit.max(1)).and_offset(offset).order_by_score(), Count);
        let (top, total) = searcher.search(&query, &collector)?;
        Ok((searcher, query, total as u64, top))
    }
}

/// A sub-query boosted (a boost of 1 left out).
fn boosted(query: Box<dyn Query>, boost: f32) -> Box<dyn Query> {
    if (boost - 1.0).abs() < f32::EPSILON { query } else { Box::new(BoostQuery::new(query, boost)) }
}

fn term(field: Field, text: &str, boost: f32) -> Box<dyn Query> {
    let query = TermQuery::new(Term::from_field_text(field, text), IndexRecordOption::WithFreqs);
    boosted(Box::new(query), boost)
}

fn any(clauses: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    match clauses.len() {
        0 => Box::new(EmptyQuery),
        1 => clauses.into_iter().next().unwrap_or_else(|| Box::new(EmptyQuery)),
        _ => Box::new(BooleanQuery::new(clauses.into_iter().map(|q| (Occur::Should, q)).collect())),
    }
}

/// Shortest half of a Hangul word tried as two words typed without their space.
const SPLIT_MIN: usize = 2;
/// Boost of that reading: below the word itself.
const SPLIT_BOOST: f32 = 0.5;

impl SearchIndex {
    /// The query of a reader's text: every word required (see the module docs).
    pub(crate) fn query(&self, q: &str) -> Box<dyn Query> {
        let words = korean::query_words(q);
        if words.is_empty() {
            return Box::new(EmptyQuery);
        }
        let mut clauses: Vec<_> = words.iter().map(|w| (Occur::Must, self.word_query(w))).collect();
        if clauses.len() == 1 {
            return clauses.pop().map_or_else(|| Box::new(EmptyQuery) as Box<dyn Query>, |(_, q)| q);
        }
        Box::new(BooleanQuery::new(std::mem::take(&mut clauses)))
    }

    /// One word in any field; a long Hangul word may also be two words.
    fn word_query(&self, word: &QueryWord) -> Box<dyn Query> {
        let text = &self.fields().text;
        let mut clauses: Vec<Box<dyn Query>> = Vec::new();
        if word.run.is_hangul() {
            for field in text {
                clauses.extend(hangul_clauses(word, field));
            }
            if word.len() >= 2 * SPLIT_MIN {
                clauses.extend(split_queries(word, text));
            }
        } else {
            for field in text {
                clauses.extend(self.analyzed(field, &word.forms[0]));
            }
            clauses.push(term(self.fields().isbn, &word.text(0, word.len()), 1.0));
        }
        any(clauses)
    }

    /// A Latin, digit, Han or Kana word in the Latin and the Korean-words field of `field`:
    /// each analyzer's tokens of it, a phrase when there are several (Han bigrams).
    fn analyzed(&self, field: &TextField, word: &str) -> Vec<Box<dyn Query>> {
        let mut out = Vec::new();
        for target in [field.latin, field.words] {
            let Ok(mut analyzer) = self.index().tokenizer_for_field(target) else { continue };
            let mut terms = Vec::new();
            analyzer.token_stream(word).process(&mut |t| {
                terms.push((t.position, Term::from_field_text(target, &t.text)));
            });
            let query: Box<dyn Query> = match terms.len() {
                0 => continue,
                1 => Box::new(TermQuery::new(terms.remove(0).1, IndexRecordOption::WithFreqs)),
                _ => Box::new(PhraseQuery::new_with_offset(terms)),
            };
            out.push(boosted(query, field.boost));
        }
        out
    }
}

/// A Hangul word's forms in the words and the pieces field of `field`.
fn hangul_clauses(word: &QueryWord, field: &TextField) -> Vec<Box<dyn Query>> {
    let mut clauses = Vec::new();
    for (i, form) in word.forms.iter().enumerate() {
        clauses.push(term(field.words, form, field.boost));
        // A one-syllable stem cut from a verb-like word (`물` of `물고`) is looked up as a
        // word only: as a piece it would start every compound.
        if i == 0 || !word.verb || form.chars().nth(1).is_some() {
            clauses.push(term(field.pieces, form, field.boost * PIECE_BOOST));
        }
    }
    clauses
}

/// `소년이온다` as `소년이` + `온다`, …: each cut leaving two syllables or more a side, both
/// halves in one field (a title typed without its spaces, not a word of the title beside one
/// of the author).
fn split_queries(word: &QueryWord, fields: &[TextField]) -> Vec<Box<dyn Query>> {
    let mut out = Vec::new();
    for at in SPLIT_MIN..=word.len() - SPLIT_MIN {
        let halves: Vec<QueryWord> = [word.text(0, at), word.text(at, word.len())]
            .iter()
            .flat_map(|h| korean::query_words(h))
            .collect();
        if halves.len() != 2 {
            continue;
        }
        for field in fields {
            let both = halves.iter().map(|h| (Occur::Must, any(hangul_clauses(h, field)))).collect();
            out.push(boosted(Box::new(BooleanQuery::new(both)), SPLIT_BOOST));
        }
    }
    out
}
