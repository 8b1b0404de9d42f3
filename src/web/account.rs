//! Sign up, sign in, sign out, and "my applications". The session cookie holds the token
//! the API's login would have answered; the checks (validation, throttle) are the API's.

use actix_web::{HttpRequest, HttpResponse, get, http::StatusCode, post, web};
use maud::{Markup, html};
use sea_orm::{ConnectionTrait, Statement};
use serde::Deserialize;

use super::{Visitor, WebError, layout, local_path};
use crate::{
    error::ApiError,
    limits::per_ip,
    routes::{
        events,
        users::{NewUser, client_of, sign_in, sign_up},
    },
    state::AppState,
};

#[derive(Debug, Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

fn form_page(
    visitor: &Visitor,
    title: &str,
    action: &str,
    next: &str,
    fields: Markup,
    submit: &str,
) -> HttpResponse {
    let body = html! {
        h1 { (title) }
        form.stack method="post" action=(action) {
            (visitor.csrf_field())
            input type="hidden" name="next" value=(next);
            (fields)
            button.primary type="submit" { (submit) }
        }
    };
    visitor.page(StatusCode::OK, layout::page(Some(visitor), title, html! {}, body))
}

/// The sign-up form.
#[get("/signup")]
pub(crate) async fn signup_form(visitor: Visitor, q: web::Query<Next>) -> HttpResponse {
    let fields = html! {
        label { "이메일 (email)" input type="email" name="email" required autocomplete="email"; }
        label { "이름" input type="text" name="name" required maxlength="100"; }
        label { "비밀번호 (8자 이상)" input type="password" name="password" required minlength="8" autocomplete="new-password"; }
    };
    form_page(&visitor, "가입", "/signup", local_path(q.next.as_deref()), fields, "가입하기")
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignUp {
    csrf: String,
    email: String,
    name: String,
    password: String,
    next: Option<String>,
}

/// Signs up (the API's validation) and signs in at once.
#[post("/signup")]
pub(crate) async fn signup(
    state: web::Data<AppState>,
    visitor: Visitor,
    req: HttpRequest,
    form: web::Form<SignUp>,
) -> Result<HttpResponse, WebError> {
    visitor.check_csrf(&form.csrf)?;
    // the API's per-address limit, so the pages are no way around it
    per_ip(&req, &state.settings.server.trusted_proxies, state.limits.register_per_ip.as_ref())?;
    let SignUp { email, name, password, next, .. } = form.into_inner();
    let user = sign_up(&state, NewUser { email, password, name }).await?;
    let (cookie, ttl) = visitor.session_for(&state, user.id).await?;
    Ok(visitor.redirect(local_path(next.as_deref()), Some((&cookie, ttl))))
}

/// The sign-in form.
#[get("/login")]
pub(crate) async fn login_form(visitor: Visitor, q: web::Query<Next>) -> HttpResponse {
    let fields = html! {
        label { "이메일 (email)" input type="email" name="email" required autocomplete="email"; }
        label { "비밀번호" input type="password" name="password" required autocomplete="current-password"; }
    };
    form_page(&visitor, "로그인", "/login", local_path(q.next.as_deref()), fields, "로그인")
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignIn {
    csrf: String,
    email: String,
    password: String,
    next: Option<String>,
}

/// Signs in (the API's throttle and checks); the token goes into the session cookie.
#[post("/login")]
pub(crate) async fn login(
    state: web::Data<AppState>,
    visitor: Visitor,
    req: HttpRequest,
    form: web::Form<SignIn>,
) -> Result<HttpResponse, WebError> {
    visitor.check_csrf(&form.csrf)?;
    per_ip(&req, &state.settings.server.trusted_proxies, state.limits.login_per_ip.as_ref())?;
    let SignIn { email, password, next, .. } = form.into_inner();
    let user = sign_in(&state, &email, password, client_of(&req, &state)).await?;
    let (cookie, ttl) = visitor.session_for(&state, user.id).await?;
    Ok(visitor.redirect(local_path(next.as_deref()), Some((&cookie, ttl))))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Plain {
    csrf: String,
}

/// Signs out: the account's sessions end on the server (every browser's), and the cookie
/// is cleared.
#[post("/logout")]
pub(crate) async fn logout(
    state: web::Data<AppState>,
    visitor: Visitor,
    form: web::Form<Plain>,
) -> Result<HttpResponse, WebError> {
    visitor.check_csrf(&form.csrf)?;
    if let Some(user) = &visitor.user {
        super::session::end_all(&state.db, user.id).await.map_err(ApiError::from)?;
    }
    Ok(visitor.redirect("/", Some(("", 0))))
}

/// The reader's copies, newest first.
#[get("/me/applications")]
pub(crate) async fn mine(state: web::Data<AppState>, visitor: Visitor) -> Result<HttpResponse, WebError> {
    let user = visitor.user()?;
    let backend = state.db.get_database_backend();
    let sql = "SELECT id, event_id, created_at FROM applications WHERE user_id = ? ORDER BY id DESC";
    let rows = state
        .db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, [user.id.into()]))
        .await
        .map_err(ApiError::from)?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get_by_index(0).map_err(ApiError::from)?;
        let event_id: i64 = row.try_get_by_index(1).map_err(ApiError::from)?;
        let at: chrono::DateTime<chrono::Utc> = row.try_get_by_index(2).map_err(ApiError::from)?;
        let title = events::find(&state, event_id).await.map(|e| e.title).unwrap_or_default();
        items.push((id, event_id, title, at));
    }
    let body = html! {
        h1 { "내 신청" }
        @if items.is_empty() {
            p { "아직 당첨된 나눔이 없습니다." }
        } @else {
            table {
                thead { tr { th { "신청 번호" } th { "나눔" } th { "시각" } } }
                tbody {
                    @for (id, event_id, title, at) in &items {
                        tr.application { td { (id) } td { a href={ "/events/" (event_id) } { (title) } } td { (layout::when(*at)) } }
                    }
                }
            }
        }
    };
    Ok(visitor.page(StatusCode::OK, layout::page(Some(&visitor), "내 신청", html! {}, body)))
}
