use chrono::{Duration, Utc};
use reqwest::StatusCode;

use crate::helpers::{assert_error, body, spawn_app};

#[tokio::test]
async fn a_reader_wins_once_then_is_told_409_already_applied() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let event = app.open_event(&admin, 5).await;
    let (user, reader) = app.reader().await;
    let r = app.apply(event, &reader, None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().get("location").is_some());
    let won = body(r).await;
    assert_eq!(won["status"], "won");
    assert_eq!(won["user_id"], user);
    assert_eq!(won["event_id"], event);
    assert_eq!(won["strategy"], "pessimistic-lock");
    assert_error(app.apply(event, &reader, None).await, StatusCode::CONFLICT, "already_applied").await;
    assert_eq!(body(app.get(&format!("/api/v1/events/{event}"), None).await).await["remaining"], 4);
}

#[tokio::test]
async fn the_reader_after_the_last_copy_is_told_409_sold_out() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let event = app.open_event(&admin, 1).await;
    let (_, first) = app.reader().await;
    let (_, second) = app.reader().await;
    assert_eq!(app.apply(event, &first, None).await.status(), StatusCode::CREATED);
    assert_error(app.apply(event, &second, None).await, StatusCode::CONFLICT, "sold_out").await;
    let e = body(app.get(&format!("/api/v1/events/{event}"), None).await).await;
    assert_eq!((e["remaining"].as_i64(), e["status"].as_str()), (Some(0), Some("sold_out")));
}

#[tokio::test]
async fn applying_before_opens_at_is_422_event_not_open_and_takes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let event = app.event(&admin, 3, Utc::now() + Duration::hours(1), None).await;
    let (_, reader) = app.reader().await;
    assert_error(app.apply(event, &reader, None).await, StatusCode::UNPROCESSABLE_ENTITY, "event_not_open")
        .await;
    assert_eq!(body(app.get(&format!("/api/v1/events/{event}"), None).await).await["remaining"], 3);
}

#[tokio::test]
async fn applying_after_closes_at_is_422_event_closed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let now = Utc::now();
    let event = app.event(&admin, 3, now - Duration::hours(2), Some(now - Duration::hours(1))).await;
    let (_, reader) = app.reader().await;
    assert_error(app.apply(event, &reader, None).await, StatusCode::UNPROCESSABLE_ENTITY, "event_closed")
        .await;
    assert_eq!(body(app.get(&format!("/api/v1/events/{event}"), None).await).await["status"], "closed");
}

#[tokio::test]
async fn applying_without_a_token_is_401_unauthorized() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let event = app.open_event(&admin, 1).await;
    let r = app.client.post(app.url(&format!("/api/v1/events/{event}/applications"))).send().await.unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn the_same_idempotency_key_replays_the_first_answer() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let event = app.open_event(&admin, 2).await;
    let (_, reader) = app.reader().await;
    let first = body(app.apply(event, &reader, Some("tap-1")).await).await;
    let r = app.apply(event, &reader, Some("tap-1")).await;
    assert_eq!(r.status(), StatusCode::CREATED, "a replay answers like the original");
    assert_eq!(body(r).await["application_id"], first["application_id"]);
    assert_error(app.apply(event, &reader, Some("tap-2")).await, StatusCode::CONFLICT, "already_applied")
        .await;
    assert_eq!(body(app.get(&format!("/api/v1/events/{event}"), None).await).await["remaining"], 1);
    let bad_key = "x".repeat(65);
    assert_error(
        app.apply(event, &reader, Some(&bad_key)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn an_application_is_visible_to_its_owner_and_admins_only() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let event = app.open_event(&admin, 2).await;
    let (owner_id, owner) = app.reader().await;
    let (_, other) = app.reader().await;
    let id = body(app.apply(event, &owner, None).await).await["application_id"].as_i64().unwrap();
    let path = format!("/api/v1/applications/{id}");
    let mine = body(app.get(&path, Some(&owner)).await).await;
    assert_eq!((mine["user_id"].as_i64(), mine["status"].as_str()), (Some(owner_id), Some("won")));
    assert_eq!(app.get(&path, Some(&admin)).await.status(), StatusCode::OK);
    assert_error(app.get(&path, Some(&other)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_error(
        app.get("/api/v1/applications/999999", Some(&owner)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn admins_list_the_winners_in_allocation_order_and_readers_cannot() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let event = app.open_event(&admin, 3).await;
    let mut users = Vec::new();
    for _ in 0..3 {
        let (id, token) = app.reader().await;
        assert_eq!(app.apply(event, &token, None).await.status(), StatusCode::CREATED);
        users.push(id);
    }
    let path = format!("/api/v1/events/{event}/applications");
    let list = body(app.get(&path, Some(&admin)).await).await;
    let order: Vec<i64> =
        list["items"].as_array().unwrap().iter().map(|a| a["user_id"].as_i64().unwrap()).collect();
    assert_eq!(order, users);
    let (_, reader) = app.reader().await;
    assert_error(app.get(&path, Some(&reader)).await, StatusCode::FORBIDDEN, "forbidden").await;
}
