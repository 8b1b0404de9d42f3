//! The readers' web pages: server-rendered HTML in Korean (maud templates compiled into the
//! binary), one stylesheet and a few lines of plain JavaScript served from here, no CDN.
//! Every page calls the same functions as the API handlers (`routes::*::sign_up`,
//! `apply_as`, `create_event`, …), so nothing the API refuses gets through a form.
//!
//! # Layout
//!
//! - this file: the routes, the visitor (session and CSRF cookies), errors as pages.
//! - [`layout`]: the page skeleton, times in KST, the static assets.
//! - [`catalogue`]: `/` (open and upcoming events), `/search`, `/books/{id}`.
//! - [`race`]: `/events/{id}`, its apply form, and `/requests/{id}` (the queued state).
//! - [`account`]: sign up, sign in, sign out, "my applications".
//! - [`admin`]: add a book, create an event, the winners in allocation order.
//!
//! The session is the API's own access token in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` over HTTPS). The API never reads that cookie (it wants `Authorization`), so
//! the cookie can only drive these pages, whose every POST carries a double-submit CSRF
//! token: a random value in a second cookie that the form must repeat.

mod account;
mod admin;
mod catalogue;
mod layout;
mod race;

pub use catalogue::encode;

use std::future::{Ready, ready};

use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError,
    body::BoxBody,
    dev::Payload,
    http::{StatusCode, header},
    web,
};
use maud::{Markup, html};

use crate::{auth::AuthUser, error::ApiError, state::AppState};

/// The session cookie (the access token).
const SESSION_COOKIE: &str = "nanum_session";
/// The double-submit CSRF cookie.
const CSRF_COOKIE: &str = "nanum_csrf";

/// Registers the pages (after the API, whose `/api/v1` scope and default stay as they are).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::FormConfig::default()
            .limit(64 * 1024)
            .error_handler(|err, _| WebError(ApiError::field("form", err.to_string())).into()),
    )
    .service(layout::stylesheet)
    .service(layout::script)
    .service(catalogue::home)
    .service(catalogue::search)
    .service(catalogue::book_page)
    .service(race::event)
    .service(race::apply)
    .service(race::request)
    .service(account::signup_form)
    .service(account::signup)
    .service(account::login_form)
    .service(account::login)
    .service(account::logout)
    .service(account::mine)
    .service(admin::dashboard)
    .service(admin::add_book)
    .service(admin::add_event)
    .service(admin::winners);
}

/// Who is looking: the signed-in user (if the session cookie holds a valid token) and the
/// CSRF token (from its cookie, or a new one this response sets).
#[derive(Debug, Clone)]
pub(crate) struct Visitor {
    user: Option<AuthUser>,
    csrf: String,
    new_csrf: bool,
    secure: bool,
}

impl FromRequest for Visitor {
    type Error = WebError;
    type Future = Ready<Result<Self, WebError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(visitor(req))
    }
}

fn visitor(req: &HttpRequest) -> Result<Visitor, WebError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| WebError(ApiError::internal(anyhow::anyhow!("AppState missing"))))?;
    let user = cookie(req, SESSION_COOKIE)
        .and_then(|token| state.tokens.check(&token).ok())
        .map(|claims| AuthUser { id: claims.sub, role: claims.role });
    let (csrf, new_csrf) = match cookie(req, CSRF_COOKIE).filter(|c| c.len() == 32) {
        Some(c) => (c, false),
        None => (uuid::Uuid::new_v4().simple().to_string(), true),
    };
    let secure = req.connection_info().scheme() == "https";
    Ok(Visitor { user, csrf, new_csrf, secure })
}

/// One cookie's value from the `Cookie` header.
fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers().get_all(header::COOKIE).filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
        |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name && !v.is_empty()).then(|| v.to_owned())
        },
    )
}

impl Visitor {
    /// The signed-in user, or 401 as a page.
    fn user(&self) -> Result<&AuthUser, WebError> {
        self.user.as_ref().ok_or(WebError(ApiError::Unauthorized("sign in first")))
    }

    /// 403 unless the form repeated the CSRF cookie (a new visitor has none to repeat).
    fn check_csrf(&self, submitted: &str) -> Result<(), WebError> {
        let same = submitted.len() == self.csrf.len()
            && submitted.bytes().zip(self.csrf.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if self.new_csrf || !same {
            return Err(WebError(ApiError::Forbidden(
                "the form's CSRF token does not match; reload the page",
            )));
        }
        Ok(())
    }

    fn cookie_attributes(&self) -> &'static str {
        if self.secure {
            "; Path=/; HttpOnly; SameSite=Strict; Secure"
        } else {
            "; Path=/; HttpOnly; SameSite=Strict"
        }
    }

    /// A page with `status`, setting the CSRF cookie when it is new.
    fn page(&self, status: StatusCode, markup: Markup) -> HttpResponse {
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.new_csrf {
            response.append_header((
                header::SET_COOKIE,
                format!("{CSRF_COOKIE}={}{}", self.csrf, self.cookie_attributes()),
            ));
        }
        response.content_type("text/html; charset=utf-8").body(markup.into_string())
    }

    /// 303 to `location`, optionally setting (`Some`) or clearing (`Some("")`) the session.
    fn redirect(&self, location: &str, session: Option<(&str, u64)>) -> HttpResponse {
        let mut response = HttpResponse::SeeOther();
        response.insert_header((header::LOCATION, location));
        if let Some((token, max_age)) = session {
            response.append_header((
                header::SET_COOKIE,
                format!("{SESSION_COOKIE}={token}{}; Max-Age={max_age}", self.cookie_attributes()),
            ));
        }
        response.finish()
    }

    /// The hidden CSRF field every form carries.
    fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }
}

/// An [`ApiError`] answered as a page: same status and headers (`Retry-After`, the breaker's
/// outage mark), a Korean explanation and the API's code and message for the technical part.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct WebError(#[from] ApiError);

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        // The API's response first: it logs the cause and carries the headers.
        let mut response = self.0.error_response();
        let markup = layout::error_page(&self.0);
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/html; charset=utf-8"));
        response.set_body(BoxBody::new(markup.into_string()))
    }
}

/// Where to go after signing in: a local path only (never `//host` or a URL).
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/",
    }
}
