//! HTTP routes of docs/API.md, and the extractor settings that turn malformed input into the
//! contract's 400/404/422 bodies instead of actix's plain-text defaults.

pub(crate) mod applications;
pub(crate) mod books;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod idempotency;
pub mod openapi;
pub(crate) mod prometheus;
pub(crate) mod search;
mod strict;
pub(crate) mod users;

use actix_web::{App, HttpResponse, error::JsonPayloadError, web};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_actix_web::{AppExt, scope, service_config::ServiceConfig};

use crate::error::ApiError;

/// Registers every route, each with its OpenAPI operation (a handler without
/// `#[utoipa::path]` does not compile here).
pub fn configure(cfg: &mut ServiceConfig<'_>) {
    cfg.app_data(web::JsonConfig::default().limit(64 * 1024).error_handler(|err, _| json_error(err).into()))
        .app_data(
            web::QueryConfig::default()
                .error_handler(|err, _| ApiError::InvalidQuery(plain_error(&err)).into()),
        )
        .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::NotFound("resource").into()))
        .service(health::live)
        .service(health::ready)
        .service(prometheus::metrics)
        .service(
            scope("/api/v1")
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

/// The OpenAPI document of exactly the routes [`configure`] registers, with their error
/// answers (see [`openapi`]).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, mut api) = App::new()
        .into_utoipa_app()
        .openapi(openapi::ApiDoc::openapi())
        .configure(configure)
        .split_for_parts();
    openapi::add_error_responses(&mut api);
    api
}

/// The documentation routes: the document at [`openapi::OPENAPI_PATH`] and the Swagger UI
/// page at `/docs/` (its assets are compiled in; `/docs` redirects there).
pub fn docs(cfg: &mut web::ServiceConfig, api: utoipa::openapi::OpenApi) {
    // No online validator badge: the page must work with no network at all.
    let config = utoipa_swagger_ui::Config::from(openapi::OPENAPI_PATH).validator_url("none");
    cfg.service(
        utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").url(openapi::OPENAPI_PATH, api).config(config),
    )
    .route(
        "/docs",
        web::get().to(|| async {
            HttpResponse::PermanentRedirect().insert_header(("Location", "/docs/")).finish()
        }),
    );
}

/// An extractor's error message without Rust's words (forms and query strings too).
pub(crate) fn plain_error(err: &impl std::fmt::Display) -> String {
    strict::plain(&err.to_string())
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge(format!("the request body is larger than {limit} bytes"))
        }
        // Well-formed JSON whose values do not fit (wrong type, missing field): 422.
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::field("body", strict::plain(&e.to_string()))
        }
        other => ApiError::InvalidJson(format!(
            "the request body is not valid JSON: {}",
            strict::plain(&other.to_string())
        )),
    }
}

/// A JSON body that must be an object. serde fills a struct from an array by position too
/// (`["a@b.c", "password", "name"]` would sign up), which the contract does not accept: an
/// array or scalar body is 422 `validation_failed` with `fields.body`, like any value of the
/// wrong type. Found by the fuzz test (`scripts/fuzz`). A key twice in any object is refused
/// the same way ([`strict::Strict`]).
#[derive(Debug)]
pub(crate) struct Object<T>(pub(crate) T);

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        use serde::de::{Error, Unexpected};
        let strict::Strict(value) = strict::Strict::deserialize(de)?;
        let unexpected = match &value {
            serde_json::Value::Object(_) => {
                return T::deserialize(value).map(Object).map_err(D::Error::custom);
            }
            serde_json::Value::Array(_) => Unexpected::Seq,
            serde_json::Value::String(s) => Unexpected::Str(s),
            serde_json::Value::Bool(b) => Unexpected::Bool(*b),
            serde_json::Value::Null => Unexpected::Unit,
            serde_json::Value::Number(_) => Unexpected::Other("a number"),
        };
        Err(D::Error::invalid_type(unexpected, &"a JSON object"))
    }
}

impl ApiError {
    fn into_response(self) -> HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}

/// `?page=&size=` with the contract's bounds.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// 1 or more (default 1).
    #[param(minimum = 1)]
    page: Option<u64>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    size: Option<u64>,
}

/// Largest page size accepted.
pub(crate) const MAX_PAGE_SIZE: u64 = 100;
/// Deepest row a page may reach (page × size), as search bounds it: the offset must fit the
/// database's integer, and deep offsets cost a scan anyway.
pub(crate) const MAX_WINDOW: u64 = 10_000;

impl PageQuery {
    /// (page ≥ 1, 1 ≤ size ≤ 100, page × size ≤ 10,000), or 400 `invalid_query`.
    pub(crate) fn bounds(&self) -> Result<(u64, u64), ApiError> {
        let page = self.page.unwrap_or(1);
        let size = self.size.unwrap_or(20);
        if page == 0 {
            return Err(ApiError::InvalidQuery("page starts at 1".into()));
        }
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(ApiError::InvalidQuery(format!("size must be between 1 and {MAX_PAGE_SIZE}")));
        }
        if page.saturating_mul(size) > MAX_WINDOW {
            return Err(ApiError::InvalidQuery(format!("page × size must not exceed {MAX_WINDOW}")));
        }
        Ok((page, size))
    }
}

/// `{items, page, size, total}`.
#[derive(Debug, serde::Serialize, ToSchema)]
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
