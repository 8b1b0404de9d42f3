//! The race as a reader sees it: `/events/{id}` with the apply form, its answer, and
//! `/requests/{id}`, the queued state (the Kafka strategies' 202) that settles by itself.
//!
//! The form carries an `Idempotency-Key` made when the page was rendered: a double submit
//! or a resubmitted reload replays the first answer instead of applying twice.

use actix_web::{HttpRequest, HttpResponse, get, http::StatusCode, post, web};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use strategies::{ApplyOutcome, schema};

use super::{Visitor, WebError, catalogue::encode, layout};
use crate::{
    error::ApiError,
    limits::per_ip,
    routes::{
        applications::{Applied, apply_as},
        books, events,
        idempotency::{self, Settled, owner_of},
    },
    state::AppState,
};

fn parse_id(raw: &str) -> Result<i64, WebError> {
    raw.parse::<i64>().map_err(|_| WebError(ApiError::NotFound("event")))
}

/// The event: book, copies left (live), opening time with a countdown, the apply form.
#[get("/events/{id}")]
pub(crate) async fn event(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let e = events::find(&state, parse_id(&id)?).await?;
    let b = books::find(&state, e.book_id).await?;
    let remaining = schema::remaining(&state.db, e.id).await.map_err(ApiError::from)?.unwrap_or(0);
    let now = Utc::now();
    let before = e.opens_at > now;
    let closed = e.closes_at.is_some_and(|c| now >= c);
    // Without the script, a page waiting for the opening reloads itself at that moment.
    let head = html! {
        @if before {
            noscript { meta http-equiv="refresh" content=((e.opens_at - now).num_seconds().clamp(1, 3600)); }
        }
    };
    let body = html! {
        article.event data-event=(e.id) {
            h1 { (e.title) }
            p.book { a href={ "/books/" (b.id) } { (b.title) } " · " (b.author) }
            dl {
                dt { "남은 수량" }
                dd { strong.remaining data-live-remaining=(e.id) { (remaining) } " / " (e.quantity) "권" }
                dt { "시작" }
                dd {
                    time datetime=(e.opens_at.to_rfc3339()) { (layout::when(e.opens_at)) }
                    @if before { " " span.countdown data-opens=(e.opens_at.to_rfc3339()) {} }
                }
                @if let Some(c) = e.closes_at { dt { "마감" } dd { time datetime=(c.to_rfc3339()) { (layout::when(c)) } } }
            }
            @if closed {
                p.notice { "신청이 마감되었습니다." }
            } @else if visitor.user.is_some() {
                form #apply method="post" action={ "/events/" (e.id) "/apply" } data-opens=(e.opens_at.to_rfc3339()) {
                    (visitor.csrf_field())
                    input type="hidden" name="key" value=(uuid::Uuid::new_v4().simple().to_string());
                    button #apply-button.primary type="submit" disabled[before] { "신청하기 (apply)" }
                    @if before { p.hint { "시작 시각에 버튼이 켜집니다." } }
                }
            } @else {
                p { a.primary href={ "/login?next=" (encode(&format!("/events/{}", e.id))) } { "로그인하고 신청하기" } }
            }
        }
    };
    Ok(visitor.page(StatusCode::OK, layout::page(Some(&visitor), &e.title, head, body)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ApplyForm {
    csrf: String,
    key: String,
}

/// Applies through the same flow as the API and shows the answer: won (with the
/// application number), queued, or — as an error page with the API's status — sold out,
/// already applied, not open, closed.
#[post("/events/{id}/apply")]
pub(crate) async fn apply(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<String>,
    req: HttpRequest,
    form: web::Form<ApplyForm>,
) -> Result<HttpResponse, WebError> {
    visitor.check_csrf(&form.csrf)?;
    state.breakers.refuse_apply()?;
    // the API's per-address limit (the per-reader one is inside `apply_as`)
    per_ip(&req, &state.settings.server.trusted_proxies, state.limits.apply_per_ip.as_ref())?;
    let user = visitor.user()?;
    let event_id = parse_id(&id)?;
    let answer = match apply_as(&state, user, event_id, Some(&form.key)).await {
        Ok(Applied::Won(app)) => (StatusCode::CREATED, Answer::Won(app.id)),
        Ok(Applied::Pending(request_id)) => (StatusCode::ACCEPTED, Answer::Pending(request_id)),
        Err(ApiError::SoldOut) => (StatusCode::CONFLICT, Answer::SoldOut),
        Err(ApiError::AlreadyApplied) => {
            // A double submit racing its twin lands here: show the copy it already holds.
            let held = held_by(&state, event_id, user.id).await?;
            (StatusCode::CONFLICT, Answer::AlreadyApplied(held))
        }
        Err(other) => return Err(other.into()),
    };
    let (status, answer) = answer;
    Ok(visitor.page(status, result_page(&visitor, event_id, &answer)))
}

/// What the reader is told.
#[derive(Debug)]
enum Answer {
    Won(i64),
    SoldOut,
    AlreadyApplied(Option<i64>),
    Pending(String),
}

fn result_page(visitor: &Visitor, event_id: i64, answer: &Answer) -> Markup {
    let head = html! {
        @if let Answer::Pending(request_id) = answer {
            noscript { meta http-equiv="refresh" content={ "1;url=/requests/" (request_id) }; }
        }
    };
    let body = html! {
        (answer_section(answer))
        p { a href={ "/events/" (event_id) } { "← 나눔으로" } " · " a href="/me/applications" { "내 신청" } }
    };
    layout::page(Some(visitor), "신청 결과", head, body)
}

fn answer_section(answer: &Answer) -> Markup {
    match answer {
        Answer::Won(id) => html! {
            section #result.result.won data-status="won" data-application=(id) {
                h1 { "🎉 당첨! (won)" }
                p { "신청 번호 " strong.application-id { (id) } }
            }
        },
        Answer::SoldOut => html! {
            section #result.result.sold-out data-status="sold_out" {
                h1 { "매진 (sold out)" }
                p { "아쉽게도 모두 나눠졌습니다." }
            }
        },
        Answer::AlreadyApplied(held) => html! {
            section #result.result.already data-status="already_applied" {
                h1 { "이미 신청하셨습니다 (already applied)" }
                @if let Some(id) = held { p { "신청 번호 " strong.application-id { (id) } } }
            }
        },
        Answer::Pending(request_id) => html! {
            section #result.result.pending data-status="pending" data-poll={ "/requests/" (request_id) } {
                h1 { "요청이 대기열에 있습니다 (queued)" }
                p { "곧 결과가 나옵니다. 이 페이지가 스스로 갱신됩니다." }
            }
        },
    }
}

/// The reader's winning application of an event, if any.
async fn held_by(state: &AppState, event_id: i64, user_id: i64) -> Result<Option<i64>, WebError> {
    Ok(idempotency::held_by(&state.db, event_id, user_id).await.map_err(ApiError::from)?)
}

/// A queued request (its owner or an admin): the answer once decided, else a page that
/// refreshes itself (the script swaps the answer in without a reload).
#[get("/requests/{id}")]
pub(crate) async fn request(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let user = visitor.user()?;
    let request_id = id.into_inner();
    let owner = owner_of(&request_id).ok_or(ApiError::NotFound("application"))?;
    if owner != user.id && !user.is_admin() {
        return Err(ApiError::Forbidden("this application belongs to another reader").into());
    }
    let (event_id, answer) =
        match idempotency::settled(&state.db, &request_id).await.map_err(ApiError::from)? {
            Some(Settled::Won(app)) => (Some(app.event_id), Answer::Won(app.id)),
            Some(Settled::Answered(done)) => {
                let answer = match done.outcome {
                    ApplyOutcome::Won { application_id } => Answer::Won(application_id),
                    ApplyOutcome::SoldOut => Answer::SoldOut,
                    ApplyOutcome::AlreadyApplied => {
                        Answer::AlreadyApplied(held_by(&state, done.event_id, done.user_id).await?)
                    }
                    _ => Answer::Pending(request_id.clone()),
                };
                (Some(done.event_id), answer)
            }
            Some(Settled::Queued { .. }) => (None, Answer::Pending(request_id.clone())),
            // Never queued nor answered: 404, as the API answers.
            None => return Err(ApiError::NotFound("application").into()),
        };
    let markup = match event_id {
        Some(event_id) => result_page(&visitor, event_id, &answer),
        None => layout::page(
            Some(&visitor),
            "신청 결과",
            html! { noscript { meta http-equiv="refresh" content="1"; } },
            html! { (answer_section(&answer)) p { a href="/me/applications" { "내 신청" } } },
        ),
    };
    Ok(visitor.page(StatusCode::OK, markup))
}
