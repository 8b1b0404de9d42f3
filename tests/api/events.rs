use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, body, spawn_app};

#[tokio::test]
async fn an_admin_creates_an_event_whose_stock_starts_full() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.event(&admin, 7, Utc::now() + Duration::hours(1), None).await;
    let e = body(app.get(&format!("/api/v1/events/{id}"), None).await).await;
    assert_eq!(e["quantity"], 7);
    assert_eq!(e["remaining"], 7);
    assert_eq!(e["status"], "scheduled");
    let open = app.open_event(&admin, 3).await;
    assert_eq!(body(app.get(&format!("/api/v1/events/{open}"), None).await).await["status"], "open");
    let list = body(app.get("/api/v1/events?page=1&size=10", None).await).await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["id"], open);
}

#[tokio::test]
async fn invalid_events_are_422_naming_each_field() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let now = Utc::now();
    let r = app
        .post(
            "/api/v1/events",
            Some(&admin),
            &json!({ "book_id": 424242, "title": "", "quantity": 0, "opens_at": now, "closes_at": now - Duration::hours(1) }),
        )
        .await;
    let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    for field in ["book_id", "title", "quantity", "closes_at"] {
        assert!(b["fields"][field].is_string(), "{field} missing in {b}");
    }
    let list = body(app.get("/api/v1/events", None).await).await;
    assert_eq!(list["total"], 0, "a rejected event must not be stored");
}

#[tokio::test]
async fn a_reader_creating_an_event_is_403_forbidden() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = app.book(&admin).await;
    let (_, reader) = app.reader().await;
    let r = app
        .post(
            "/api/v1/events",
            Some(&reader),
            &json!({ "book_id": book, "title": "x", "quantity": 1, "opens_at": Utc::now() }),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn an_unknown_event_is_404_not_found() {
    let app = spawn_app().await;
    assert_error(app.get("/api/v1/events/31337", None).await, StatusCode::NOT_FOUND, "not_found").await;
    let (_, reader) = app.reader().await;
    assert_error(app.apply(31337, &reader, None).await, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn a_book_given_away_by_an_event_cannot_be_deleted() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let event = app.open_event(&admin, 1).await;
    let book =
        body(app.get(&format!("/api/v1/events/{event}"), None).await).await["book_id"].as_i64().unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/books/{book}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::CONFLICT, "conflict").await;
}
