//! `GET /api/v1/books/search?q=&page=&size=&engine=` — one query on the engine asked for
//! (`tantivy` by default, `like`, `fulltext`), answered as `{engine, total, took_ms, hits}`.

use std::time::Instant;

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::{
    error::ApiError,
    search::engines::{self, Engine, SearchHit, SearchRequest},
    state::AppState,
    telemetry,
};

/// The query string; a value of the wrong type (`page=-1`, `engine=solr`) is 400
/// `invalid_query` through the shared `QueryConfig`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchQuery {
    /// The query: 1–256 characters, not blank; tantivy's syntax for `engine=tantivy`.
    #[serde(default)]
    #[param(required = true)]
    q: String,
    /// 1 or more; `page × size` at most 10,000.
    #[param(minimum = 1)]
    page: Option<u64>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    size: Option<u64>,
    /// `tantivy` (default), `like` or `fulltext`.
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(tantivy|like|fulltext)$")]
    engine: Engine,
}

/// `{engine, total, took_ms, page, size, hits: [{book, score, highlight}]}`.
#[utoipa::path(
    operation_id = "search_books",
    tag = "books",
    responses((status = 200, description = "One page of hits", body = crate::routes::openapi::SearchAnswer)),
)]
#[get("/books/search")]
pub(crate) async fn search(
    state: web::Data<AppState>,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let query = query.into_inner();
    let request = SearchRequest::new(&query.q, query.page.unwrap_or(1), query.size.unwrap_or(20))?;
    let searching = Instant::now();
    let results = engines::run(query.engine, &state.db, &state.search, &request).await;
    telemetry::search_latency(query.engine).record(searching.elapsed().as_secs_f64());
    let results = results?;
    let took_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    Ok(HttpResponse::Ok().json(Answer {
        engine: query.engine.name(),
        total: results.total,
        took_ms,
        page: request.page,
        size: request.size,
        hits: &results.hits,
    }))
}

/// The answer, serialised straight from the hits (no intermediate `serde_json::Value`:
/// twenty books with their descriptions are most of the bytes).
#[derive(Serialize)]
struct Answer<'a> {
    engine: &'static str,
    total: u64,
    took_ms: f64,
    page: u64,
    size: u64,
    hits: &'a [SearchHit],
}
