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
//! The session is a signed cookie ([`session`]), `HttpOnly`, `SameSite=Strict` (`Secure`
//! over HTTPS), ended on the server at sign-out; it is not an API token. Every POST carries
//! a CSRF token bound to the visitor's nonce cookie and session and passes an `Origin`
//! check ([`csrf`]); every HTML answer carries the security headers of [`secure_headers`].

mod account;
mod admin;
mod catalogue;
mod csrf;
mod layout;
mod race;
pub mod session;

pub use catalogue::encode;

use std::{future::Future, pin::Pin};

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
/// The visitor's random nonce, which its CSRF token is made from.
const CSRF_COOKIE: &str = "nanum_csrf";

/// Registers the pages (after the API, whose `/api/v1` scope and default stay as they are).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::FormConfig::default().limit(64 * 1024).error_handler(|err, _| {
            WebError(ApiError::field("form", crate::routes::plain_error(&err))).into()
        }),
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

/// Who is looking: the signed-in user (if the session cookie is valid and not ended), the
/// CSRF token its forms carry (from the nonce cookie, or a new nonce this response sets),
/// and whether a post came from this site.
#[derive(Debug, Clone)]
pub(crate) struct Visitor {
    user: Option<AuthUser>,
    nonce: String,
    csrf: String,
    new_nonce: bool,
    same_origin: bool,
    secure: bool,
}

impl FromRequest for Visitor {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, WebError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { visitor(&req).await })
    }
}

async fn visitor(req: &HttpRequest) -> Result<Visitor, WebError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| WebError(ApiError::internal(anyhow::anyhow!("AppState missing"))))?;
    let secret = state.settings.auth.jwt_secret.expose();
    let mut session_cookie = cookie(req, SESSION_COOKIE).unwrap_or_default();
    let user = match session_cookie.as_str() {
        "" => None,
        value => session::user_of(&state.db, secret, value).await.map_err(ApiError::from)?,
    };
    if user.is_none() {
        session_cookie.clear();
    }
    let (nonce, new_nonce) = match cookie(req, CSRF_COOKIE).filter(|c| c.len() == 32) {
        Some(c) => (c, false),
        None => (uuid::Uuid::new_v4().simple().to_string(), true),
    };
    let csrf = csrf::token(secret, &nonce, &session_cookie);
    let secure = req.connection_info().scheme() == "https";
    Ok(Visitor { user, nonce, csrf, new_nonce, same_origin: csrf::same_origin(req), secure })
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

    /// 403 unless the post came from this site with the token made for this visitor's
    /// nonce and session (a new visitor has no nonce yet, so no token can match).
    fn check_csrf(&self, submitted: &str) -> Result<(), WebError> {
        if !self.same_origin {
            return Err(WebError(ApiError::Forbidden("this form was sent from another site")));
        }
        let same = submitted.len() == self.csrf.len()
            && submitted.bytes().zip(self.csrf.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if self.new_nonce || !same {
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

    /// A page with `status`, setting the nonce cookie when it is new.
    fn page(&self, status: StatusCode, markup: Markup) -> HttpResponse {
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.new_nonce {
            response.append_header((
                header::SET_COOKIE,
                format!("{CSRF_COOKIE}={}{}", self.nonce, self.cookie_attributes()),
            ));
        }
        let mut response = response.content_type("text/html; charset=utf-8").body(markup.into_string());
        secure_headers(&mut response);
        response
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
        let mut response = response.finish();
        secure_headers(&mut response);
        response
    }

    /// A new session cookie's value for `user` (its current generation), and its lifetime.
    async fn session_for(&self, state: &AppState, user_id: i64) -> Result<(String, u64), WebError> {
        let (_, generation) = session::account(&state.db, user_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::Unauthorized("the account no longer exists"))?;
        let ttl = state.tokens.ttl_secs();
        Ok((session::issue(state.settings.auth.jwt_secret.expose(), user_id, generation, ttl), ttl))
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
        let mut response = response.set_body(BoxBody::new(markup.into_string()));
        secure_headers(&mut response);
        response
    }
}

/// What every HTML answer carries: no framing (clickjacking), scripts, styles and form
/// targets from this site only, no MIME sniffing, no full URL leaked to other sites.
fn secure_headers<B>(response: &mut HttpResponse<B>) {
    const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
}

/// Where to go after signing in: a local path only (never `//host` or a URL), of visible
/// characters only (a control character would make the `Location` header invalid — or split
/// it); anything else goes home.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || c == '\u{2028}' || c == '\u{2029}') =>
        {
            p
        }
        _ => "/",
    }
}
