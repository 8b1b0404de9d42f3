//! Logs: one tracing span per request carrying its request id (so every line the request
//! causes names it), the id echoed in `X-Request-Id`, one access line per request, and the
//! output format — JSON lines in production (`log.format = "json"`), human-readable
//! otherwise.
//!
//! Nothing here logs a header, a body or a query string: the access line has the matched
//! route *pattern* (`/api/v1/books/{id}`), never the raw URL, and the user id, never the
//! token.

use std::{io::IsTerminal, time::Instant};

use actix_web::{
    HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::auth::AuthUser;
pub use crate::configuration::LogFormat;

/// The header a client may send its own request id in, and the one every answer carries.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest request id taken from a client; a longer one is replaced by a generated one.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Installs the global subscriber on stderr with `filter` (`RUST_LOG` wins when set).
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => {
            builder.json().with_current_span(true).with_span_list(false).init();
            // A panic is a log line like any other (and names its request), not a
            // multi-line text among the JSON.
            std::panic::set_hook(Box::new(|info| {
                let backtrace = std::backtrace::Backtrace::capture();
                tracing::error!(target: "nanum::panic", panic = %info, %backtrace, "panic");
            }));
        }
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// The client's request id when it is sane (1–64 characters of `A-Z a-z 0-9 - _ . :`),
/// else a new one: a client cannot put arbitrary text (or a secret) into our logs this way.
pub fn request_id(header: Option<&HeaderValue>) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    match header.and_then(|h| h.to_str().ok()) {
        Some(id) if !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.chars().all(allowed) => {
            id.to_owned()
        }
        _ => uuid::Uuid::new_v4().simple().to_string(),
    }
}

/// The middleware (`App::wrap(from_fn(log_request))`): wraps one request in its span,
/// writes its access line and answers its id in `X-Request-Id`.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id(req.headers().get(REQUEST_ID_HEADER));
    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    let method = crate::bounded::method(req.method());
    let mut res = next.call(req).instrument(span.clone()).await?;
    let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    let route = res.request().match_pattern().unwrap_or_else(|| "(no route)".to_owned());
    let user_id = res.request().extensions().get::<AuthUser>().map(|u| u.id);
    let status = res.status().as_u16();
    span.in_scope(|| match user_id {
        Some(user_id) => {
            tracing::info!(target: "nanum::access", %method, %route, status, latency_ms, user_id, "access")
        }
        None => tracing::info!(target: "nanum::access", %method, %route, status, latency_ms, "access"),
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::request_id;

    #[test]
    fn a_sane_client_request_id_is_kept_and_anything_else_replaced() {
        assert_eq!(request_id(Some(&HeaderValue::from_static("abc-123_x.y:z"))), "abc-123_x.y:z");
        for bad in ["", "has space", "semi;colon", "quote\"", &"a".repeat(65)] {
            let id = request_id(Some(&HeaderValue::from_str(bad).expect("header")));
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32, "a generated id: {id}");
        }
        assert_eq!(request_id(None).len(), 32);
    }
}
