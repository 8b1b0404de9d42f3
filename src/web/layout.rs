//! The page skeleton (header, navigation, footer), times shown in KST, error pages, and the
//! two static assets compiled into the binary.

use actix_web::{HttpResponse, get, http::header};
use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone, Utc};
use maud::{DOCTYPE, Markup, html};

use super::Visitor;
use crate::error::ApiError;

/// Korea Standard Time (no daylight saving), what readers' clocks show.
pub(crate) fn kst() -> FixedOffset {
    // 9 h is always in range; the fallback only satisfies the type.
    FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| Utc.fix())
}

/// `2026-11-26 20:00:00 KST`.
pub(crate) fn when(t: DateTime<Utc>) -> String {
    t.with_timezone(&kst()).format("%Y-%m-%d %H:%M:%S KST").to_string()
}

/// A time typed in a form: `YYYY-MM-DDTHH:MM[:SS]` (a `datetime-local` field, read as KST)
/// or RFC 3339 with its own offset.
pub(crate) fn parse_when(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .and_then(|naive| kst().from_local_datetime(&naive).single())
        .map(|t| t.with_timezone(&Utc))
}

/// A whole page for `visitor`.
pub(crate) fn page(visitor: Option<&Visitor>, title: &str, head: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="ko" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · 나눔" }
                link rel="stylesheet" href="/static/nanum.css";
                script src="/static/nanum.js" defer {}
                (head)
            }
            body {
                header {
                    a.brand href="/" { "📚 나눔" }
                    nav {
                        a href="/search" { "검색" }
                        @match visitor.and_then(|v| v.user.as_ref().map(|u| (v, u))) {
                            Some((v, user)) => {
                                a href="/me/applications" { "내 신청" }
                                @if user.is_admin() { a href="/admin" { "관리" } }
                                form.inline method="post" action="/logout" {
                                    (v.csrf_field())
                                    button.link type="submit" { "로그아웃" }
                                }
                            }
                            None => {
                                a href="/login" { "로그인" }
                                a href="/signup" { "가입" }
                            }
                        }
                    }
                }
                main { (body) }
                footer { "nanum — 책 나눔 (book giveaways)" }
            }
        }
    }
}

/// The Korean explanation of an API error code.
fn explain(err: &ApiError) -> &'static str {
    match err.code() {
        "unauthorized" => "로그인이 필요하거나 이메일·비밀번호가 맞지 않습니다.",
        "forbidden" => "이 작업을 할 권한이 없습니다.",
        "not_found" => "찾는 페이지나 항목이 없습니다.",
        "sold_out" => "아쉽게도 모두 나눠졌습니다 (매진).",
        "already_applied" => "이미 신청하셨습니다.",
        "email_taken" => "이미 가입된 이메일입니다.",
        "validation_failed" => "입력한 값을 확인해 주세요.",
        "event_not_open" => "아직 신청 시간이 아닙니다.",
        "event_closed" => "신청이 마감되었습니다.",
        "rate_limited" => "시도가 너무 많습니다. 잠시 후 다시 해 주세요.",
        "backend_unavailable" | "contention" => {
            "지금은 처리할 수 없습니다. 아무것도 기록되지 않았으니 다시 시도해 주세요."
        }
        "invalid_query" | "invalid_json" => "요청이 올바르지 않습니다.",
        "idempotency_key_reused" => {
            "이 신청 양식은 이미 다른 나눔에 쓰였습니다. 페이지를 새로 고친 뒤 다시 신청해 주세요."
        }
        "payload_too_large" => "보낸 내용이 너무 큽니다.",
        "conflict" => "다른 항목이 이것을 쓰고 있어 바꿀 수 없습니다.",
        "engine_unavailable" => "이 검색 방식은 지금 쓸 수 없습니다.",
        "overloaded" => "지금 요청이 많습니다. 아무것도 기록되지 않았으니 잠시 후 다시 시도해 주세요.",
        _ => "서버 오류가 났습니다. 잠시 후 다시 시도해 주세요.",
    }
}

/// An error as a page a person understands; the API's code and message stay visible.
pub(crate) fn error_page(err: &ApiError) -> Markup {
    let status = actix_web::ResponseError::status_code(err);
    page(
        None,
        "오류",
        html! {},
        html! {
            section.error data-code=(err.code()) {
                h1 { (explain(err)) }
                @if let ApiError::Validation(fields) = err {
                    ul { @for (field, problem) in fields { li { code { (field) } ": " (problem) } } }
                }
                p.technical { (status.as_u16()) " · " code { (err.code()) } " · " (err.to_string()) }
                @if err.code() == "unauthorized" { p { a href="/login" { "로그인하기" } } }
                p { a href="javascript:history.back()" { "← 돌아가기" } " · " a href="/" { "처음으로" } }
            }
        },
    )
}

/// The stylesheet.
#[actix_web::get("/static/nanum.css")]
pub(crate) async fn stylesheet() -> HttpResponse {
    asset("text/css; charset=utf-8", include_str!("static/nanum.css"))
}

/// The script (progressive enhancement only: every form works without it).
#[get("/static/nanum.js")]
pub(crate) async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", include_str!("static/nanum.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(body)
}
