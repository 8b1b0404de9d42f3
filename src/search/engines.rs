//! One query, three engines — the team's story as a switch: `like` (`LIKE '%q%'` on title
//! and author), `fulltext` (MariaDB `MATCH … AGAINST` on a FULLTEXT index) and `tantivy`
//! (the index). All answer the same shape, so they can be compared side by side.
//!
//! MariaDB's full-text parser splits on spaces and punctuation and, for InnoDB, ignores
//! words shorter than `innodb_ft_min_token_size` (3): the two-syllable Korean words most
//! titles are made of (`소년`, `한강`, `온다`) are never indexed, and a word is found only
//! whole (`소년이`, never `소년` inside it). It is measured as it is; SQLite has no such
//! index here, so `fulltext` there is 422 `engine_unavailable`.

use std::{collections::HashMap, sync::Arc};

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Statement, sea_query::LikeExpr,
};
use serde::{Deserialize, Serialize};

use super::{
    SearchIndex,
    query::{Highlight, IndexQueryError},
};
use crate::entities::book;

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// Deepest hit reachable by paging (page × size), as Elasticsearch's `max_result_window`.
pub const MAX_WINDOW: u64 = 10_000;
/// Largest page.
pub const MAX_SIZE: u64 = 100;
/// The columns of the FULLTEXT index (and of every `MATCH`).
pub const FULLTEXT_COLUMNS: &str = "title, author, publisher, description";

/// Which engine answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The tantivy index (BM25, highlights).
    #[default]
    Tantivy,
    /// `LIKE '%q%'` on title and author, newest first.
    Like,
    /// MariaDB `MATCH … AGAINST` (boolean mode, every word required).
    Fulltext,
}

impl Engine {
    /// All three, in the order of the story.
    pub const ALL: [Engine; 3] = [Engine::Like, Engine::Fulltext, Engine::Tantivy];

    /// The query-string name.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Tantivy => "tantivy",
            Engine::Like => "like",
            Engine::Fulltext => "fulltext",
        }
    }
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// 400: an empty or over-long `q` (or one with a control character), a bad `page` or
    /// `size`.
    #[error("{0}")]
    InvalidQuery(String),
    /// 422: this engine does not run on this database.
    #[error("{0}")]
    EngineUnavailable(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbErr),
    /// The index failed.
    #[error(transparent)]
    Index(anyhow::Error),
}

/// A checked request.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The query, trimmed, non-empty, at most [`MAX_QUERY_CHARS`], no control character.
    pub q: String,
    /// From 1.
    pub page: u64,
    /// 1 to [`MAX_SIZE`].
    pub size: u64,
}

impl SearchRequest {
    /// Checks the bounds.
    ///
    /// # Errors
    ///
    /// [`SearchError::InvalidQuery`] naming the parameter.
    pub fn new(q: &str, page: u64, size: u64) -> Result<Self, SearchError> {
        let q = q.trim();
        let invalid = |m: String| Err(SearchError::InvalidQuery(m));
        if q.is_empty() {
            return invalid("q is required".into());
        }
        if q.chars().count() > MAX_QUERY_CHARS {
            return invalid(format!("q is longer than {MAX_QUERY_CHARS} characters"));
        }
        // SQLite cuts a LIKE pattern at NUL (matching every book); no control character
        // belongs in a search. Any other text is searched as it is: nothing a reader types
        // is query syntax, so nothing else is refused.
        if q.chars().any(char::is_control) {
            return invalid("q must not contain control characters".into());
        }
        if page == 0 {
            return invalid("page starts at 1".into());
        }
        if size == 0 || size > MAX_SIZE {
            return invalid(format!("size must be between 1 and {MAX_SIZE}"));
        }
        if page.saturating_mul(size) > MAX_WINDOW {
            return invalid(format!("page × size must not exceed {MAX_WINDOW}"));
        }
        Ok(Self { q: q.to_owned(), page, size })
    }

    fn offset(&self) -> u64 {
        (self.page - 1) * self.size
    }
}

/// One hit.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    /// The book: as stored now (`like`, `fulltext`), as last indexed (`tantivy`; the change
    /// log replaces it within the sync bound).
    pub book: book::Model,
    /// BM25 (`tantivy`), MariaDB relevance (`fulltext`), none (`like`).
    pub score: Option<f32>,
    /// The matching field's snippet, when one could be cut.
    pub highlight: Option<Highlight>,
}

/// One page of hits and the total.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    /// Matching books in all pages.
    pub total: u64,
    /// This page.
    pub hits: Vec<SearchHit>,
}

/// Runs `request` on `engine`.
///
/// # Errors
///
/// See [`SearchError`].
pub async fn run(
    engine: Engine,
    db: &DatabaseConnection,
    index: &Arc<SearchIndex>,
    request: &SearchRequest,
) -> Result<SearchResults, SearchError> {
    match engine {
        Engine::Tantivy => tantivy(index, request),
        Engine::Like => like(db, request).await,
        Engine::Fulltext => fulltext(db, request).await,
    }
}

/// Answered from the index alone: the documents store the books as indexed. Run on the
/// calling thread — a query takes tens to hundreds of µs, less than a hop to the blocking
/// pool and back would add.
fn tantivy(index: &SearchIndex, request: &SearchRequest) -> Result<SearchResults, SearchError> {
    let (offset, limit) = (request.offset() as usize, request.size as usize);
    let found = index
        .search(&request.q, offset, limit)
        .map_err(|IndexQueryError::Index(e)| SearchError::Index(e.into()))?;
    let hits = found
        .hits
        .into_iter()
        .map(|(book, score)| {
            let highlight = found.highlighter.highlight(&book);
            SearchHit { book, score: Some(score), highlight }
        })
        .collect();
    Ok(SearchResults { total: found.total, hits })
}

async fn load(db: &DatabaseConnection, ids: &[i64]) -> Result<HashMap<i64, book::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let books = book::Entity::find().filter(book::Column::Id.is_in(ids.iter().copied())).all(db).await?;
    Ok(books.into_iter().map(|b| (b.id, b)).collect())
}

/// `%`, `_` and the escape character itself taken literally.
fn like_pattern(q: &str) -> LikeExpr {
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    LikeExpr::new(pattern).escape('\\')
}

async fn like(db: &DatabaseConnection, request: &SearchRequest) -> Result<SearchResults, SearchError> {
    let matches = Condition::any()
        .add(book::Column::Title.like(like_pattern(&request.q)))
        .add(book::Column::Author.like(like_pattern(&request.q)));
    let query = book::Entity::find().filter(matches).order_by_desc(book::Column::Id);
    let paginator = query.paginate(db, request.size);
    let total = paginator.num_items().await?;
    let books = paginator.fetch_page(request.page - 1).await?;
    let words = [request.q.as_str()];
    let hits = books
        .into_iter()
        .map(|book| {
            let highlight = mark(&book, &words, false);
            SearchHit { book, score: None, highlight }
        })
        .collect();
    Ok(SearchResults { total, hits })
}

/// The boolean-mode query: every word required, MariaDB's operators removed so user input
/// cannot make it malformed.
fn boolean_query(q: &str) -> (String, Vec<String>) {
    let words: Vec<String> =
        q.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect();
    (words.iter().map(|w| format!("+{w}")).collect::<Vec<_>>().join(" "), words)
}

async fn fulltext(db: &DatabaseConnection, request: &SearchRequest) -> Result<SearchResults, SearchError> {
    if db.get_database_backend() != DbBackend::MySql {
        return Err(SearchError::EngineUnavailable(
            "engine=fulltext needs MariaDB/MySQL (a FULLTEXT index); this server runs on SQLite — use \
             engine=tantivy or engine=like"
                .into(),
        ));
    }
    let (against, words) = boolean_query(&request.q);
    if words.is_empty() {
        return Ok(SearchResults { total: 0, hits: Vec::new() });
    }
    let matching = format!("MATCH({FULLTEXT_COLUMNS}) AGAINST (? IN BOOLEAN MODE)");
    let count = Statement::from_sql_and_values(
        DbBackend::MySql,
        format!("SELECT COUNT(*) AS n FROM books WHERE {matching}"),
        [against.clone().into()],
    );
    let total = match db.query_one_raw(count).await? {
        Some(row) => row.try_get::<i64>("", "n")?.try_into().unwrap_or(0),
        None => 0,
    };
    let page = Statement::from_sql_and_values(
        DbBackend::MySql,
        format!(
            "SELECT id, {matching} AS score FROM books WHERE {matching} ORDER BY score DESC, id DESC LIMIT ? OFFSET ?"
        ),
        [against.clone().into(), against.into(), request.size.into(), request.offset().into()],
    );
    let mut ranked = Vec::new();
    for row in db.query_all_raw(page).await? {
        ranked.push((row.try_get::<i64>("", "id")?, row.try_get::<f64>("", "score")?));
    }
    let mut books = load(db, &ranked.iter().map(|r| r.0).collect::<Vec<_>>()).await?;
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let hits = ranked
        .into_iter()
        .filter_map(|(id, score)| {
            let book = books.remove(&id)?;
            let highlight = mark(&book, &words, true);
            Some(SearchHit { book, score: Some(score as f32), highlight })
        })
        .collect();
    Ok(SearchResults { total, hits })
}

/// For the SQL engines: the first field holding one of `words` (case-insensitively), that
/// occurrence in `<b>…</b>`, HTML-escaped. `description` is looked at only when `all_fields`.
fn mark(book: &book::Model, words: &[&str], all_fields: bool) -> Option<Highlight> {
    let mut fields = vec![("title", Some(&book.title)), ("author", Some(&book.author))];
    if all_fields {
        fields.extend([("publisher", book.publisher.as_ref()), ("description", book.description.as_ref())]);
    }
    for (field, text) in fields {
        let Some(text) = text else { continue };
        for word in words {
            if let Some((start, end)) = find_caseless(text, word) {
                let snippet = format!(
                    "{}<b>{}</b>{}",
                    escape(&text[..start]),
                    escape(&text[start..end]),
                    escape(&text[end..])
                );
                return Some(Highlight { field, snippet });
            }
        }
    }
    None
}

/// Byte range in `text` of the first case-insensitive occurrence of `word`. Lowercasing may
/// change a character's length (Ω 3 → ω 2 bytes, Ⱥ 2 → ⱥ 3, İ → i̇ two characters), so
/// the match is found in the lowercased text and mapped back, character by character, to
/// the original's boundaries; no byte offset crosses the case mapping.
fn find_caseless(text: &str, word: &str) -> Option<(usize, usize)> {
    let needle = word.to_lowercase();
    if needle.is_empty() {
        return None;
    }
    let mut lower = String::with_capacity(text.len());
    // For each byte of `lower`: the original character's (start, end).
    let mut origin = Vec::with_capacity(text.len());
    for (start, c) in text.char_indices() {
        let before = lower.len();
        lower.extend(c.to_lowercase());
        origin.extend(std::iter::repeat_n((start, start + c.len_utf8()), lower.len() - before));
    }
    let at = lower.find(&needle)?;
    let (start, _) = *origin.get(at)?;
    let (_, end) = *origin.get(at + needle.len() - 1)?;
    Some((start, end))
}

/// HTML-escaped as the pages escape (maud: `&`, `<`, `>`, `"`).
fn escape(text: &str) -> String {
    maud::html! { (text) }.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_out_of_bounds_are_refused() {
        assert!(SearchRequest::new("소년", 1, 20).is_ok());
        for (q, page, size) in [
            ("", 1, 20),
            ("   ", 1, 20),
            ("\u{0}\t", 1, 20),
            ("a", 0, 20),
            ("a", 1, 0),
            ("a", 1, 101),
            ("a", 101, 100),
        ] {
            assert!(SearchRequest::new(q, page, size).is_err(), "{q:?} {page} {size}");
        }
        assert!(SearchRequest::new(&"가".repeat(MAX_QUERY_CHARS + 1), 1, 20).is_err());
        for q in ["\"open", "philosopher's stone", "title:*", "(a OR b) AND ~c^2"] {
            assert!(SearchRequest::new(q, 1, 20).is_ok(), "{q:?}");
        }
    }

    #[test]
    fn highlights_survive_case_mappings_that_change_length() {
        // Ω (3 bytes) lowercases to ω (2), Ⱥ (2) to ⱥ (3), İ (2) to i̇ (3, two characters).
        for (text, word, hit) in [
            ("\u{2126}abc \u{023a}", "abc", "abc"),
            ("\u{023a}\u{023a}abc", "ABC", "abc"),
            ("İx Ⱥbc", "ⱥB", "Ⱥb"),
        ] {
            let (start, end) = find_caseless(text, word).expect("found");
            assert_eq!(&text[start..end], hit, "{text:?} {word:?}");
        }
        assert_eq!(find_caseless("İ", "i"), Some((0, 2)), "a match inside one character takes all of it");
        assert!(find_caseless("abc", "x").is_none());
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        use sea_orm::sea_query::ExprTrait;
        let expr = like_pattern("50%_off\\");
        let sql = sea_orm::sea_query::Query::select()
            .expr(sea_orm::sea_query::Expr::val("x").like(expr))
            .to_string(sea_orm::sea_query::MysqlQueryBuilder);
        assert!(sql.contains(r"%50\\%\\_off\\\\%"), "{sql}");
    }

    #[test]
    fn the_boolean_query_requires_every_word_and_drops_operators() {
        assert_eq!(boolean_query("소년이 -온다 (Human*)").0, "+소년이 +온다 +Human");
        assert!(boolean_query("+-*").1.is_empty());
    }
}
