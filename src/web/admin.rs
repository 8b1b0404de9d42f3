//! Admin pages: add a book, create an event, see an event's winners in allocation order.
//! The writes are the API's own (`create_book`, `create_event`, which check the role).

use actix_web::{HttpResponse, get, http::StatusCode, post, web};
use maud::html;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;

use super::{Visitor, WebError, catalogue::event_row, layout};
use crate::{
    entities::{book, event, user},
    error::ApiError,
    routes::{
        books::{BookFields, create_book},
        events::{self, NewEvent, create_event},
    },
    state::AppState,
};

/// Books offered in the event form, and events listed.
const RECENT: u64 = 50;

/// The forms and the recent events.
// Long on purpose: one page: its forms, its queries and its template in the order the page shows
// them.
#[get("/admin")]
pub(crate) async fn dashboard(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, WebError> {
    visitor.user()?.require_admin(&state.db).await?;
    let books = book::Entity::find()
        .order_by_desc(book::Column::Id)
        .limit(RECENT)
        .all(&state.db)
        .await
        .map_err(ApiError::from)?;
    let recent = event::Entity::find()
        .order_by_desc(event::Column::Id)
        .limit(RECENT)
        .all(&state.db)
        .await
        .map_err(ApiError::from)?;
    let mut rows = Vec::with_capacity(recent.len());
    for e in &recent {
        let remaining =
            strategies::schema::remaining(&state.db, e.id).await.map_err(ApiError::from)?.unwrap_or(0);
        rows.push(html! {
            (event_row(e, None, remaining))
            p.admin-link { a href={ "/admin/events/" (e.id) } { "당첨자 보기 (winners)" } }
        });
    }
    let body = html! {
        h1 { "관리 (admin)" }
        section {
            h2 { "책 추가" }
            form #add-book.stack method="post" action="/admin/books" {
                (visitor.csrf_field())
                label { "제목" input type="text" name="title" required; }
                label { "저자" input type="text" name="author" required; }
                label { "출판사" input type="text" name="publisher"; }
                label { "ISBN" input type="text" name="isbn"; }
                label { "소개" textarea name="description" {} }
                button.primary type="submit" { "책 추가" }
            }
        }
        section {
            h2 { "나눔 만들기" }
            form #add-event.stack method="post" action="/admin/events" {
                (visitor.csrf_field())
                label { "책" select name="book_id" required {
                    @for b in &books { option value=(b.id) { "#" (b.id) " " (b.title) " — " (b.author) } }
                } }
                label { "제목" input type="text" name="title" required; }
                label { "수량 (copies)" input type="number" name="quantity" min="1" value="10" required; }
                label { "시작 (KST)" input type="datetime-local" name="opens_at" step="1" required; }
                label { "마감 (KST, 선택)" input type="datetime-local" name="closes_at" step="1"; }
                button.primary type="submit" { "나눔 만들기" }
            }
        }
        section {
            h2 { "최근 나눔" }
            ul.events { @for row in rows { (row) } }
        }
    };
    Ok(visitor.page(StatusCode::OK, layout::page(Some(&visitor), "관리", html! {}, body)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct BookForm {
    csrf: String,
    title: String,
    author: String,
    #[serde(default)]
    publisher: String,
    #[serde(default)]
    isbn: String,
    #[serde(default)]
    description: String,
}

/// An empty optional field is left out, as the API's `null`.
fn optional(value: String) -> Option<Option<String>> {
    Some(Some(value).filter(|v| !v.trim().is_empty()))
}

/// Adds a book, then shows the book's page.
#[post("/admin/books")]
pub(crate) async fn add_book(
    state: web::Data<AppState>,
    visitor: Visitor,
    form: web::Form<BookForm>,
) -> Result<HttpResponse, WebError> {
    visitor.check_csrf(&form.csrf)?;
    let user = visitor.user()?;
    let f = form.into_inner();
    let fields = BookFields {
        title: Some(f.title),
        author: Some(f.author),
        publisher: optional(f.publisher),
        isbn: optional(f.isbn),
        description: optional(f.description),
        published_at: None,
    };
    let saved = create_book(&state, user, fields).await?;
    Ok(visitor.redirect(&format!("/books/{}", saved.id), None))
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventForm {
    csrf: String,
    book_id: i64,
    title: String,
    quantity: i32,
    opens_at: String,
    #[serde(default)]
    closes_at: String,
}

/// Creates an event (times typed in KST), then shows its winners page.
#[post("/admin/events")]
pub(crate) async fn add_event(
    state: web::Data<AppState>,
    visitor: Visitor,
    form: web::Form<EventForm>,
) -> Result<HttpResponse, WebError> {
    visitor.check_csrf(&form.csrf)?;
    let user = visitor.user()?;
    let f = form.into_inner();
    let opens_at = layout::parse_when(&f.opens_at)
        .ok_or_else(|| ApiError::field("opens_at", "must be a date and time (YYYY-MM-DDTHH:MM:SS, KST)"))?;
    let closes_at = match f.closes_at.trim() {
        "" => None,
        raw => Some(layout::parse_when(raw).ok_or_else(|| {
            ApiError::field("closes_at", "must be a date and time (YYYY-MM-DDTHH:MM:SS, KST)")
        })?),
    };
    let new = NewEvent { book_id: f.book_id, title: f.title, quantity: f.quantity, opens_at, closes_at };
    let saved = create_event(&state, user, new).await?;
    Ok(visitor.redirect(&format!("/admin/events/{}", saved.id), None))
}

/// An event's winners in allocation order.
#[get("/admin/events/{id}")]
pub(crate) async fn winners(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    visitor.user()?.require_admin(&state.db).await?;
    let id = id.parse::<i64>().map_err(|_| ApiError::NotFound("event"))?;
    let e = events::find(&state, id).await?;
    let winners = strategies::schema::winners(&state.db, e.id).await.map_err(ApiError::from)?;
    let emails: std::collections::HashMap<i64, String> = user::Entity::find()
        .filter(user::Column::Id.is_in(winners.iter().map(|w| w.user_id)))
        .all(&state.db)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect();
    let remaining =
        strategies::schema::remaining(&state.db, e.id).await.map_err(ApiError::from)?.unwrap_or(0);
    let body = html! {
        h1 { (e.title) " — 당첨자 (winners)" }
        ul.events { (event_row(&e, None, remaining)) }
        p { "당첨 " strong #winner-count { (winners.len()) } "명 · 할당 순서 (allocation order)" }
        table #winners {
            thead { tr { th { "신청 번호" } th { "독자" } th { "시각" } } }
            tbody {
                @for w in &winners {
                    tr.winner { td { (w.id) } td { (emails.get(&w.user_id).map_or("?", String::as_str)) } td { (layout::when(w.created_at)) } }
                }
            }
        }
        p { a href={ "/events/" (e.id) } { "나눔 페이지" } " · " a href="/admin" { "← 관리" } }
    };
    Ok(visitor.page(StatusCode::OK, layout::page(Some(&visitor), "당첨자", html! {}, body)))
}
