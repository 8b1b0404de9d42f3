//! HTTP routes of docs/API.md, and the extractor settings that turn malformed input into the
//! contract's 400/404/422 bodies instead of actix's plain-text defaults.

pub(crate) mod applications;
pub(crate) mod books;
pub(crate) mod events;
mod health;
pub(crate) mod search;
pub(crate) mod users;

use actix_web::{HttpResponse, error::JsonPayloadError, web};
use serde::Deserialize;

use crate::error::ApiError;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().limit(64 * 1024).error_handler(|err, _| json_error(err).into()))
        .app_data(
            web::QueryConfig::default()
                .error_handler(|err, _| ApiError::InvalidQuery(err.to_string()).into()),
        )
        .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::NotFound("resource").into()))
        .service(health::live)
        .service(health::ready)
        .service(
            web::scope("/api/v1")
                .service(health::strategy)
                .service(users::register)
                .service(users::login)
                .service(books::create)
                // Before `/books/{id}`, which would otherwise take "search" as an id.
                .service(search::search)
                .service(books::list)
                .service(books::get)
                .service(books::update)
                .service(books::delete)
                .service(events::create)
                .service(events::list)
                .service(events::get)
                .service(applications::apply)
                .service(applications::list_for_event)
                .service(applications::get),
        )
        .default_service(web::to(|| async { ApiError::NotFound("route").into_response() }));
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        // Well-formed JSON whose values do not fit (wrong type, missing field): 422.
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::field("body", e.to_string()),
        other => ApiError::InvalidJson(format!("the request body is not valid JSON: {other}")),
    }
}

impl ApiError {
    fn into_response(self) -> HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}

/// `?page=&size=` with the contract's bounds.
#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    page: Option<u64>,
    size: Option<u64>,
}

/// Largest page size accepted.
pub(crate) const MAX_PAGE_SIZE: u64 = 100;

impl PageQuery {
    /// (page ≥ 1, 1 ≤ size ≤ 100), or 400 `invalid_query`.
    pub(crate) fn bounds(&self) -> Result<(u64, u64), ApiError> {
        let page = self.page.unwrap_or(1);
        let size = self.size.unwrap_or(20);
        if page == 0 {
            return Err(ApiError::InvalidQuery("page starts at 1".into()));
        }
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(ApiError::InvalidQuery(format!("size must be between 1 and {MAX_PAGE_SIZE}")));
        }
        Ok((page, size))
    }
}

/// `{items, page, size, total}`.
#[derive(Debug, serde::Serialize)]
pub(crate) struct PageBody<T> {
    items: Vec<T>,
    page: u64,
    size: u64,
    total: u64,
}

impl<T> PageBody<T> {
    pub(crate) fn new(items: Vec<T>, page: u64, size: u64, total: u64) -> Self {
        Self { items, page, size, total }
    }
}
