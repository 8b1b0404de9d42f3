//! The OpenAPI 3 document, generated from the code: each handler's `#[utoipa::path]`
//! (success answers, parameters, bodies), collected as [`super::configure`] registers it
//! (utoipa-actix-web), so a registered route is a documented one. The error answers of
//! every operation come from one table, [`ERRORS`], turned into responses from
//! [`ApiError`] itself (status and code), so the document cannot disagree with
//! `src/error.rs`.
//!
//! # Layout
//!
//! - [`ERRORS`]: operation id → the error codes it can answer. A new error code or a new
//!   route is one line here.
//! - [`every_error`]: one value of each [`ApiError`] variant (its match stops compiling when a
//!   variant is added, until the variant is listed).
//! - [`ApiDoc`]: title, bearer scheme, the shared schemas; [`ErrorResponses`] adds the table.
//! - Answer shapes that the handlers build with `json!` are described here (`UserCreated`,
//!   `Token`, `SearchAnswer`, …); the fuzz step (`scripts/fuzz`) checks real answers
//!   against them.

use std::collections::BTreeMap;

use actix_web::ResponseError;
use serde_json::json;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::{
        self, ContentBuilder, HeaderBuilder, Ref, ResponseBuilder,
        example::ExampleBuilder,
        path::Operation,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use crate::error::ApiError;

/// Where the binary serves the document.
pub const OPENAPI_PATH: &str = "/api-docs/openapi.json";
/// Where the binary serves the documentation page (Swagger UI, compiled in).
pub const DOCS_PATH: &str = "/docs/";

/// The errors of an admin's `POST` that creates a resource (a book, an event).
const ADMIN_CREATE: &[&str] = &[
    "invalid_json",
    "payload_too_large",
    "unauthorized",
    "forbidden",
    "validation_failed",
    "backend_unavailable",
    "internal",
];

/// Operation id → the error codes it can answer (besides 404 for an unknown path, which
/// every URL can). Codes are `ApiError::code` values; statuses come from `ApiError` too.
pub const ERRORS: &[(&str, &[&str])] = &[
    ("live", &[]),
    ("ready", &[]),
    ("strategy", &[]),
    ("metrics", &["not_found"]),
    (
        "register",
        &[
            "invalid_json",
            "payload_too_large",
            "validation_failed",
            "email_taken",
            "rate_limited",
            "overloaded",
            "backend_unavailable",
            "internal",
        ],
    ),
    (
        "login",
        &[
            "invalid_json",
            "payload_too_large",
            "validation_failed",
            "unauthorized",
            "rate_limited",
            "overloaded",
            "backend_unavailable",
            "internal",
        ],
    ),
    ("create_book", ADMIN_CREATE),
    ("list_books", &["invalid_query", "backend_unavailable", "internal"]),
    ("get_book", &["not_found", "backend_unavailable", "internal"]),
    (
        "update_book",
        &[
            "invalid_json",
            "payload_too_large",
            "unauthorized",
            "forbidden",
            "not_found",
            "validation_failed",
            "backend_unavailable",
            "internal",
        ],
    ),
    (
        "delete_book",
        &["unauthorized", "forbidden", "not_found", "conflict", "backend_unavailable", "internal"],
    ),
    ("search_books", &["invalid_query", "engine_unavailable", "backend_unavailable", "internal"]),
    ("create_event", ADMIN_CREATE),
    ("list_events", &["invalid_query", "backend_unavailable", "internal"]),
    ("get_event", &["not_found", "backend_unavailable", "internal"]),
    (
        "apply",
        &[
            "unauthorized",
            "not_found",
            "event_not_open",
            "event_closed",
            "validation_failed",
            "idempotency_key_reused",
            "sold_out",
            "already_applied",
            "rate_limited",
            "backend_unavailable",
            "contention",
            "internal",
        ],
    ),
    ("get_application", &["unauthorized", "forbidden", "not_found", "backend_unavailable", "internal"]),
    ("list_applications", &["unauthorized", "forbidden", "not_found", "backend_unavailable", "internal"]),
];

/// One value of every [`ApiError`] variant, for its status, code and a sample message.
pub fn every_error() -> Vec<ApiError> {
    let all = vec![
        ApiError::InvalidJson("the request body is not valid JSON".into()),
        ApiError::InvalidQuery("size must be between 1 and 100".into()),
        ApiError::Unauthorized("missing bearer token"),
        ApiError::Forbidden("admin only"),
        ApiError::NotFound("resource"),
        ApiError::SoldOut,
        ApiError::AlreadyApplied,
        ApiError::EmailTaken,
        ApiError::Conflict("an event gives this book away; delete is refused"),
        ApiError::field("title", "must be 1 to 500 characters"),
        ApiError::EventNotOpen("2026-01-01T00:00:00+00:00".into()),
        ApiError::EventClosed("2026-01-01T00:00:00+00:00".into()),
        ApiError::EngineUnavailable("engine fulltext needs MariaDB".into()),
        ApiError::RateLimited(60),
        ApiError::IdempotencyKeyReused,
        ApiError::PayloadTooLarge("the body is larger than 64 KiB".into()),
        ApiError::Overloaded,
        ApiError::BackendUnavailable(None, String::new()),
        ApiError::Contention,
        ApiError::Internal(anyhow::anyhow!("a bug")),
    ];
    // A new variant stops this match compiling until it is listed above (and in ERRORS).
    for e in &all {
        match e {
            ApiError::InvalidJson(_)
            | ApiError::InvalidQuery(_)
            | ApiError::Unauthorized(_)
            | ApiError::Forbidden(_)
            | ApiError::NotFound(_)
            | ApiError::SoldOut
            | ApiError::AlreadyApplied
            | ApiError::EmailTaken
            | ApiError::Conflict(_)
            | ApiError::Validation(_)
            | ApiError::EventNotOpen(_)
            | ApiError::EventClosed(_)
            | ApiError::EngineUnavailable(_)
            | ApiError::RateLimited(_)
            | ApiError::IdempotencyKeyReused
            | ApiError::PayloadTooLarge(_)
            | ApiError::Overloaded
            | ApiError::BackendUnavailable(..)
            | ApiError::Contention
            | ApiError::Internal(_) => {}
        }
    }
    all
}

/// The body of every error answer.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes the `json!` body of `ApiError::error_response`; never built")]
pub(crate) struct ErrorBody {
    /// The error code (`ApiError::code`).
    error: String,
    /// A sentence for people.
    message: String,
    /// `validation_failed` only: field name → what is wrong with it.
    #[schema(required = false)]
    fields: Option<BTreeMap<String, String>>,
}

/// `POST /api/v1/users` → 201.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes a `json!` body for the OpenAPI document; never built")]
pub(crate) struct UserCreated {
    id: i64,
    email: String,
    name: String,
}

/// `POST /api/v1/auth/login` → 200.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes a `json!` body for the OpenAPI document; never built")]
pub(crate) struct Token {
    /// HS256 JWT for `Authorization: Bearer …`.
    access_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Seconds until it expires (`auth.token_ttl_secs`).
    expires_in: u64,
}

/// `{field, snippet}`: the snippet is HTML with the matches in `<b>…</b>`.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes a `json!` body for the OpenAPI document; never built")]
pub(crate) struct Highlight {
    field: String,
    snippet: String,
}

/// One search hit.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes a `json!` body for the OpenAPI document; never built")]
pub(crate) struct SearchHit {
    book: crate::entities::book::Model,
    /// BM25 (`tantivy`), relevance (`fulltext`), `null` (`like`).
    score: Option<f64>,
    highlight: Option<Highlight>,
}

/// `GET /api/v1/books/search` → 200.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes a `json!` body for the OpenAPI document; never built")]
pub(crate) struct SearchAnswer {
    /// `tantivy`, `like` or `fulltext`.
    engine: String,
    total: u64,
    took_ms: f64,
    page: u64,
    size: u64,
    hits: Vec<SearchHit>,
}

/// `GET /api/v1/events/{id}/applications` → 200.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes a `json!` body for the OpenAPI document; never built")]
pub(crate) struct EventApplications {
    event_id: i64,
    total: u64,
    items: Vec<super::applications::ApplicationBody<'static>>,
}

/// `GET /health/live` → 200.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes a `json!` body for the OpenAPI document; never built")]
pub(crate) struct Live {
    /// Always `ok`.
    status: String,
}

/// `GET /health/ready`: each entry `ok` or `unavailable`.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes a `json!` body for the OpenAPI document; never built")]
pub(crate) struct Readiness {
    database: String,
    /// When `redis.url` is set.
    #[schema(required = false)]
    redis: Option<String>,
    /// For the Kafka strategies.
    #[schema(required = false)]
    kafka: Option<String>,
    search: String,
    /// This binary's version (`nanum --version`).
    version: String,
    /// The commit it was built from, `unknown` when the build could not tell.
    commit: String,
}

/// This instance's index among `count`.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes a `json!` body for the OpenAPI document; never built")]
pub(crate) struct InstanceInfo {
    index: u32,
    count: u32,
}

/// Which backends are configured (not whether they answer).
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes a `json!` body for the OpenAPI document; never built")]
pub(crate) struct BackendsInfo {
    /// `sqlite` or `mysql`.
    database: String,
    redis: bool,
    kafka: bool,
}

/// `GET /api/v1/strategy` → 200.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes a `json!` body for the OpenAPI document; never built")]
pub(crate) struct StrategyInfo {
    strategy: String,
    instance: InstanceInfo,
    backends: BackendsInfo,
    /// `api`, `worker` or `all`.
    role: String,
}

/// The parts of the document that are not a route: title, security scheme, error schema.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "nanum",
        description = "Book-giveaway races. Generated from the code; docs/API.md is the prose contract.",
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerScheme),
)]
pub struct ApiDoc;

/// Adds the bearer scheme (the routes' `security` names it).
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, api: &mut openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

/// Adds the error answers of [`ERRORS`] to every operation of `api`; run it once the routes
/// are in. Returns the operation ids that have no entry in the table (a test keeps it empty).
pub fn add_error_responses(api: &mut openapi::OpenApi) -> Vec<String> {
    let errors = every_error();
    let mut missing = Vec::new();
    for item in api.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
        for operation in operations.into_iter().flatten() {
            let id = operation.operation_id.clone().unwrap_or_default();
            match ERRORS.iter().find(|(op, _)| *op == id) {
                Some((_, codes)) => add_errors(operation, codes, &errors),
                None => missing.push(id),
            }
        }
    }
    missing
}

fn add_errors(operation: &mut Operation, codes: &[&str], errors: &[ApiError]) {
    let mut by_status: BTreeMap<u16, Vec<&ApiError>> = BTreeMap::new();
    for code in codes {
        if let Some(e) = errors.iter().find(|e| e.code() == *code) {
            by_status.entry(e.status_code().as_u16()).or_default().push(e);
        }
    }
    for (status, errs) in by_status {
        let listed: Vec<_> = errs.iter().map(|e| format!("`{}`", e.code())).collect();
        let examples = errs.iter().map(|e| {
            let mut body = json!({ "error": e.code(), "message": e.to_string() });
            if let ApiError::Validation(fields) = e {
                body["fields"] = json!(fields);
            }
            (e.code(), ExampleBuilder::new().value(Some(body)).build())
        });
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .examples_from_iter(examples);
        let mut response = ResponseBuilder::new()
            .description(listed.join(", "))
            .content("application/json", content.build());
        if matches!(status, 429 | 503) {
            response = response.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(openapi::ObjectBuilder::new().schema_type(openapi::Type::Integer))
                    .description(Some("seconds"))
                    .build(),
            );
        }
        operation.responses.responses.insert(status.to_string(), response.build().into());
    }
}
