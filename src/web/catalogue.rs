//! `/` (open and upcoming events), `/search` (the tantivy engine, highlights, paging) and
//! `/books/{id}`.

use actix_web::{HttpResponse, get, http::StatusCode, web};
use chrono::Utc;
use maud::{Markup, PreEscaped, html};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;

use super::{Visitor, WebError, layout};
use crate::{
    entities::{book, event},
    error::ApiError,
    routes::books,
    search::engines::{self, Engine, SearchRequest},
    state::AppState,
};

/// Events listed on `/`.
const HOME_EVENTS: u64 = 50;
/// Hits per search page.
const PAGE_SIZE: u64 = 10;

/// One event as the lists show it: state, copies left (live through the script), opening.
pub(crate) fn event_row(e: &event::Model, book_title: Option<&str>, remaining: i32) -> Markup {
    let now = Utc::now();
    let (label, class) = if now < e.opens_at {
        ("곧 시작", "scheduled")
    } else if e.closes_at.is_some_and(|c| now >= c) {
        ("마감", "closed")
    } else if remaining <= 0 {
        ("매진", "sold-out")
    } else {
        ("신청 중", "open")
    };
    html! {
        li.event data-event=(e.id) {
            a href={ "/events/" (e.id) } { strong { (e.title) } }
            @if let Some(t) = book_title { " — " (t) }
            div.meta {
                span.badge.(class) { (label) }
                " 남은 수량 "
                span.remaining data-live-remaining=(e.id) { (remaining) } " / " (e.quantity)
                " · 시작 " time datetime=(e.opens_at.to_rfc3339()) { (layout::when(e.opens_at)) }
                @if now < e.opens_at {
                    " · " span.countdown data-opens=(e.opens_at.to_rfc3339()) {}
                }
            }
        }
    }
}

/// Open and upcoming events, the soonest first.
#[get("/")]
pub(crate) async fn home(state: web::Data<AppState>, visitor: Visitor) -> Result<HttpResponse, WebError> {
    let now = Utc::now();
    let events = event::Entity::find()
        .filter(Condition::any().add(event::Column::ClosesAt.is_null()).add(event::Column::ClosesAt.gt(now)))
        .order_by_asc(event::Column::OpensAt)
        .limit(HOME_EVENTS)
        .all(&state.db)
        .await
        .map_err(ApiError::from)?;
    let book_ids: Vec<i64> = events.iter().map(|e| e.book_id).collect();
    let titles: std::collections::HashMap<i64, String> = book::Entity::find()
        .filter(book::Column::Id.is_in(book_ids))
        .all(&state.db)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|b| (b.id, b.title))
        .collect();
    let mut rows = Vec::with_capacity(events.len());
    for e in &events {
        let remaining =
            strategies::schema::remaining(&state.db, e.id).await.map_err(ApiError::from)?.unwrap_or(0);
        rows.push(event_row(e, titles.get(&e.book_id).map(String::as_str), remaining));
    }
    let body = html! {
        h1 { "지금 나누는 책" }
        (search_form(""))
        @if rows.is_empty() {
            p { "진행 중이거나 예정된 나눔이 없습니다." }
        } @else {
            ul.events { @for row in rows { (row) } }
        }
    };
    Ok(visitor.page(StatusCode::OK, layout::page(Some(&visitor), "나눔", html! {}, body)))
}

fn search_form(q: &str) -> Markup {
    html! {
        form.search method="get" action="/search" role="search" {
            input type="search" name="q" value=(q) placeholder="책 제목, 저자 (예: 소년)" aria-label="검색어";
            button type="submit" { "검색" }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SearchParams {
    #[serde(default)]
    q: String,
    // parsed here, so a bad value is a page, not the API's JSON 400
    #[serde(default)]
    page: String,
}

/// The catalogue search (tantivy), with highlighted snippets and paging.
#[get("/search")]
pub(crate) async fn search(
    state: web::Data<AppState>,
    visitor: Visitor,
    params: web::Query<SearchParams>,
) -> Result<HttpResponse, WebError> {
    let q = params.q.trim();
    let page = match params.page.trim() {
        "" => 1,
        raw => {
            raw.parse::<u64>().map_err(|_| ApiError::InvalidQuery("page must be a number from 1".into()))?
        }
    };
    if q.is_empty() {
        let body = html! { h1 { "책 검색" } (search_form("")) };
        return Ok(visitor.page(StatusCode::OK, layout::page(Some(&visitor), "검색", html! {}, body)));
    }
    let request = SearchRequest::new(q, page, PAGE_SIZE).map_err(ApiError::from)?;
    let results =
        engines::run(Engine::Tantivy, &state.db, &state.search, &request).await.map_err(ApiError::from)?;
    let pages = results.total.div_ceil(PAGE_SIZE);
    let link = |p: u64| format!("/search?q={}&page={p}", encode(q));
    let body = html! {
        h1 { "책 검색" }
        (search_form(q))
        p.total { "“" (q) "” 검색 결과 " strong { (results.total) } "권" }
        ol.hits start=((page - 1) * PAGE_SIZE + 1) {
            @for hit in &results.hits {
                li.hit {
                    a href={ "/books/" (hit.book.id) } { strong { (hit.book.title) } }
                    " · " (hit.book.author)
                    @if let Some(h) = &hit.highlight {
                        // tantivy's snippet: the text HTML-escaped, matches in <b>.
                        p.snippet { small { (h.field) } " " (PreEscaped(&h.snippet)) }
                    }
                }
            }
        }
        @if pages > 1 {
            nav.pages {
                @if page > 1 { a rel="prev" href=(link(page - 1)) { "← 이전" } }
                " " (page) " / " (pages) " "
                @if page < pages { a rel="next" href=(link(page + 1)) { "다음 →" } }
            }
        }
    };
    Ok(visitor.page(StatusCode::OK, layout::page(Some(&visitor), "검색", html! {}, body)))
}

/// RFC 3986's unreserved characters, the only ones a query value keeps as they are.
const UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes a query-string or form value (RFC 3986 unreserved characters stay).
pub fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, UNRESERVED).to_string()
}

/// A book and the events that give it away.
#[get("/books/{id}")]
pub(crate) async fn book_page(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let id = id.parse::<i64>().map_err(|_| ApiError::NotFound("book"))?;
    let b = books::find(&state, id).await?;
    let events = event::Entity::find()
        .filter(event::Column::BookId.eq(b.id))
        .order_by_desc(event::Column::OpensAt)
        .all(&state.db)
        .await
        .map_err(ApiError::from)?;
    let mut rows = Vec::with_capacity(events.len());
    for e in &events {
        let remaining =
            strategies::schema::remaining(&state.db, e.id).await.map_err(ApiError::from)?.unwrap_or(0);
        rows.push(event_row(e, None, remaining));
    }
    let body = html! {
        article.book {
            h1 { (b.title) }
            p { "저자 " (b.author) @if let Some(p) = &b.publisher { " · " (p) } }
            @if let Some(isbn) = &b.isbn { p { small { "ISBN " (isbn) } } }
            @if let Some(d) = &b.description { p { (d) } }
        }
        h2 { "나눔" }
        @if rows.is_empty() { p { "이 책의 나눔은 아직 없습니다." } } @else { ul.events { @for row in rows { (row) } } }
    };
    Ok(visitor.page(StatusCode::OK, layout::page(Some(&visitor), &b.title, html! {}, body)))
}
