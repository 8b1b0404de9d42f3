use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, body, spawn_app};

#[tokio::test]
async fn signing_up_returns_201_with_id_email_and_name_but_no_password() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/v1/users",
            None,
            &json!({ "email": "Kim@Example.com", "password": "s3cret-pass", "name": "김" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let b = body(r).await;
    assert!(b["id"].as_i64().is_some());
    assert_eq!(b["email"], "kim@example.com");
    assert_eq!(b["name"], "김");
    assert!(b.get("password").is_none() && b.get("password_hash").is_none());
}

#[tokio::test]
async fn signing_up_twice_with_one_email_is_409_email_taken() {
    let app = spawn_app().await;
    app.register("dup@example.com", "s3cret-pass").await;
    let r = app
        .post(
            "/api/v1/users",
            None,
            &json!({ "email": "DUP@example.com", "password": "other-pass", "name": "x" }),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "email_taken").await;
}

#[tokio::test]
async fn signing_up_with_invalid_fields_is_422_naming_each_field() {
    let app = spawn_app().await;
    let r = app
        .post("/api/v1/users", None, &json!({ "email": "not-an-email", "password": "short", "name": "" }))
        .await;
    let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    for field in ["email", "password", "name"] {
        assert!(b["fields"][field].is_string(), "{field} missing in {b}");
    }
}

#[tokio::test]
async fn a_missing_field_is_422_and_malformed_json_is_400_invalid_json() {
    let app = spawn_app().await;
    let r = app.post("/api/v1/users", None, &json!({ "email": "a@b.co" })).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let r = app
        .client
        .post(app.url("/api/v1/users"))
        .header("Content-Type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_json").await;
}

#[tokio::test]
async fn logging_in_returns_a_bearer_token_with_its_lifetime() {
    let app = spawn_app().await;
    app.register("login@example.com", "s3cret-pass").await;
    let r = app
        .post("/api/v1/auth/login", None, &json!({ "email": "login@example.com", "password": "s3cret-pass" }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b = body(r).await;
    assert_eq!(b["token_type"], "Bearer");
    assert!(b["access_token"].as_str().is_some_and(|t| t.len() > 20));
    assert_eq!(b["expires_in"], 3600);
}

#[tokio::test]
async fn a_wrong_password_or_unknown_email_is_401_unauthorized() {
    let app = spawn_app().await;
    app.register("who@example.com", "s3cret-pass").await;
    for (email, password) in [("who@example.com", "wrong-pass"), ("nobody@example.com", "s3cret-pass")] {
        let r = app.post("/api/v1/auth/login", None, &json!({ "email": email, "password": password })).await;
        assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
}

#[tokio::test]
async fn repeated_wrong_passwords_are_429_rate_limited_even_with_the_right_one() {
    let app = spawn_app().await;
    app.register("brute@example.com", "s3cret-pass").await;
    let limit = app.settings.auth.login_max_failures;
    for _ in 0..limit {
        let r = app
            .post("/api/v1/auth/login", None, &json!({ "email": "brute@example.com", "password": "guess" }))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = app
        .post("/api/v1/auth/login", None, &json!({ "email": "brute@example.com", "password": "s3cret-pass" }))
        .await;
    assert!(r.headers().contains_key("retry-after"));
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn a_body_that_is_an_array_is_422_and_changes_nothing() {
    // serde would fill the fields by position; found by the fuzz test (PATCH `[null, null]`).
    let app = spawn_app().await;
    let r = app.post("/api/v1/users", None, &json!(["pos@example.com", "s3cret-pass", "Pos"])).await;
    let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert!(b["fields"]["body"].as_str().is_some_and(|m| m.contains("a JSON object")), "{b}");
    let r = app.post("/api/v1/auth/login", None, &json!(["pos@example.com", "s3cret-pass"])).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let r = app
        .post("/api/v1/auth/login", None, &json!({ "email": "pos@example.com", "password": "s3cret-pass" }))
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let admin = app.admin_token().await;
    let book = app.book(&admin).await;
    let r = app
        .client
        .patch(app.url(&format!("/api/v1/books/{book}")))
        .bearer_auth(&admin)
        .json(&json!([null, null]))
        .send()
        .await
        .expect("request");
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let r = app.post("/api/v1/events", Some(&admin), &json!([book, "나눔", 1, "2026-01-01T00:00:00Z"])).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body(app.get("/api/v1/events", None).await).await["total"], 0);
}
