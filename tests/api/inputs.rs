//! Input the contract refuses with a clear 4xx and no change: lookalike emails, tokens for
//! accounts that do not exist, NUL and line separators in stored text, duplicate JSON keys,
//! times no clock shows; and errors told without Rust's words.

use chrono::{Duration, Utc};
use nanum::auth::TokenService;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{assert_error, body, spawn_app},
    web::Browser,
};

/// Addresses that read like `admin@nanum.local` or another reader's.
const LOOKALIKES: [&str; 6] = [
    "adm\u{200b}in@nanum.local",
    "\u{430}dmin@nanum.local",
    "\u{ff41}dmin@nanum.local",
    "\u{130}nes@example.com",
    "admin\u{0}@nanum.local",
    "admin@nanum.loca\u{2060}l",
];

#[tokio::test]
async fn lookalike_emails_are_refused_at_sign_up_through_the_api_and_the_form() {
    let app = spawn_app().await;
    for email in LOOKALIKES {
        let r = app
            .post("/api/v1/users", None, &json!({"email": email, "password": "correct horse", "name": "x"}))
            .await;
        let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(b["fields"]["email"].is_string(), "{email:?}: {b}");
    }
    let mut browser = Browser::new(&app);
    let csrf = browser.get("/signup").await.field("csrf");
    for email in LOOKALIKES {
        let page = browser
            .post(
                "/signup",
                &[("csrf", &csrf), ("email", email), ("name", "x"), ("password", "correct horse")],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{email:?}");
    }
}

#[tokio::test]
async fn a_validly_signed_token_for_an_account_that_does_not_exist_wins_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let event = app.open_event(&admin, 5).await;
    let tokens =
        TokenService::with_secret(app.settings.auth.jwt_secret.expose(), std::time::Duration::from_secs(600));
    for ghost in [9_999, -1] {
        let token = tokens.issue_for(ghost, "reader").expect("token");
        assert_error(app.apply(event, &token, None).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let winners = body(app.get(&format!("/api/v1/events/{event}/applications"), Some(&admin)).await).await;
    assert_eq!(winners["total"], 0, "{winners}");
    let (_, reader) = app.reader().await;
    assert_eq!(
        app.apply(event, &reader, None).await.status(),
        StatusCode::CREATED,
        "a real reader still wins"
    );
}

#[tokio::test]
async fn nul_and_line_separators_in_stored_text_are_422() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for (field, value) in
        [("title", "a\u{0}b"), ("author", "a\u{2028}b"), ("description", "x\u{2029}"), ("publisher", "\u{7}")]
    {
        let mut book = json!({"title": "t", "author": "a"});
        book[field] = json!(value);
        let b = assert_error(
            app.post("/api/v1/books", Some(&admin), &book).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(b["fields"][field].is_string(), "{field}: {b}");
    }
    let r = app
        .post(
            "/api/v1/users",
            None,
            &json!({"email": "nul@example.com", "password": "correct horse", "name": "a\u{0}"}),
        )
        .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let book = app.book(&admin).await;
    let event = json!({"book_id": book, "title": "a\u{2028}b", "quantity": 1, "opens_at": Utc::now()});
    assert_error(
        app.post("/api/v1/events", Some(&admin), &event).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let kept = json!({"title": "줄\n바꿈\t탭", "author": "a"});
    assert_eq!(
        app.post("/api/v1/books", Some(&admin), &kept).await.status(),
        StatusCode::CREATED,
        "line breaks and tabs are text"
    );
}

#[tokio::test]
async fn wrong_types_are_told_without_rust_type_names_or_parser_positions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = app.book(&admin).await;
    let event = json!({"book_id": book, "title": "t", "quantity": 1.5, "opens_at": Utc::now()});
    let b = assert_error(
        app.post("/api/v1/events", Some(&admin), &event).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let message = b["fields"]["body"].as_str().expect("a message").to_owned();
    for internal in ["i32", "floating point", "line 1", "column"] {
        assert!(!message.contains(internal), "{message}");
    }
    assert!(message.contains("1.5") && message.contains("whole number"), "{message}");
}

#[tokio::test]
async fn a_key_twice_in_a_json_body_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let raw = r#"{"email": "first@example.com", "email": "second@example.com", "password": "correct horse", "name": "x"}"#;
    let r = app
        .client
        .post(app.url("/api/v1/users"))
        .header("Content-Type", "application/json")
        .body(raw)
        .send()
        .await
        .expect("POST");
    let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert!(b["fields"]["body"].as_str().is_some_and(|m| m.contains("email")), "{b}");
    for email in ["first@example.com", "second@example.com"] {
        let login =
            app.post("/api/v1/auth/login", None, &json!({"email": email, "password": "correct horse"})).await;
        assert_eq!(login.status(), StatusCode::UNAUTHORIZED, "no account for {email}");
    }
}

#[tokio::test]
async fn leap_seconds_and_years_outside_1970_to_9998_are_422() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = app.book(&admin).await;
    for opens_at in
        ["2016-12-31T23:59:60Z", "-0001-01-01T00:00:00Z", "9999-12-31T23:00:00Z", "0001-01-01T00:00:00Z"]
    {
        let event = json!({"book_id": book, "title": "t", "quantity": 1, "opens_at": opens_at});
        let r = app.post("/api/v1/events", Some(&admin), &event).await;
        let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(b["fields"].as_object().is_some_and(|f| !f.is_empty()), "{opens_at}: {b}");
    }
    let closes = json!({"book_id": book, "title": "t", "quantity": 1, "opens_at": Utc::now(), "closes_at": "9999-12-31T23:59:59Z"});
    let b = assert_error(
        app.post("/api/v1/events", Some(&admin), &closes).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(b["fields"]["closes_at"].is_string(), "{b}");
    let events: Value = body(app.get("/api/v1/events", None).await).await;
    assert_eq!(events["total"], 0, "nothing was stored: {events}");
    let fine =
        json!({"book_id": book, "title": "t", "quantity": 1, "opens_at": Utc::now() + Duration::days(1)});
    assert_eq!(app.post("/api/v1/events", Some(&admin), &fine).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn the_page_for_a_reused_idempotency_key_explains_it_instead_of_a_server_error() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (first, second) = (app.open_event(&admin, 5).await, app.open_event(&admin, 5).await);
    let mut browser = Browser::new(&app);
    browser.sign_up().await;
    let (won, csrf, key) = browser.apply(first).await;
    assert_eq!(won.status, StatusCode::CREATED, "{}", won.html);
    let reused = browser.post(&format!("/events/{second}/apply"), &[("csrf", &csrf), ("key", &key)]).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reused.html.contains("idempotency_key_reused") && reused.html.contains("다른 나눔"),
        "{}",
        reused.html
    );
    assert!(!reused.html.contains("서버 오류"), "{}", reused.html);
}
