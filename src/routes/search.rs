//! `GET /api/v1/books/search?q=&page=&size=&engine=` — one query on the engine asked for
//! (`tantivy` by default, `like`, `fulltext`), answered as `{engine, total, took_ms, hits}`.

use std::time::Instant;

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use serde_json::json;

use crate::{
    error::ApiError,
    search::engines::{self, Engine, SearchRequest},
    state::AppState,
    telemetry,
};

/// The query string; a value of the wrong type (`page=-1`, `engine=solr`) is 400
/// `invalid_query` through the shared `QueryConfig`.
#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
    page: Option<u64>,
    size: Option<u64>,
    #[serde(default)]
    engine: Engine,
}

/// `{engine, total, took_ms, page, size, hits: [{book, score, highlight}]}`.
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
    Ok(HttpResponse::Ok().json(json!({
        "engine": query.engine.name(),
        "total": results.total,
        "took_ms": took_ms,
        "page": request.page,
        "size": request.size,
        "hits": results.hits,
    })))
}
