use jsonwebtoken::{EncodingKey, Header, encode};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_error, body, spawn_app};

fn token_signed_with(secret: &str, sub: i64, role: &str, exp_offset_secs: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({ "sub": sub, "role": role, "iat": now, "exp": now + exp_offset_secs });
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

async fn create(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    app.post("/api/v1/books", token, &json!({ "title": "The Vegetarian", "author": "Han Kang" })).await
}

#[tokio::test]
async fn an_admin_creates_reads_updates_and_deletes_a_book() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/api/v1/books",
            Some(&admin),
            &json!({ "title": "소년이 온다", "author": "한강", "publisher": "창비", "isbn": "978-89-364-3423-8", "published_at": "2014-05-19" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let book = body(r).await;
    let id = book["id"].as_i64().unwrap();
    assert_eq!(book["isbn"], "9788936434238");

    let got = body(app.get(&format!("/api/v1/books/{id}"), None).await).await;
    assert_eq!(got["title"], "소년이 온다");

    let r = app
        .client
        .patch(app.url(&format!("/api/v1/books/{id}")))
        .bearer_auth(&admin)
        .json(&json!({ "title": "Human Acts", "publisher": null }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let patched = body(r).await;
    assert_eq!(patched["title"], "Human Acts");
    assert!(patched["publisher"].is_null());
    assert_eq!(patched["author"], "한강");

    let r =
        app.client.delete(app.url(&format!("/api/v1/books/{id}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_error(app.get(&format!("/api/v1/books/{id}"), None).await, StatusCode::NOT_FOUND, "not_found")
        .await;
}

#[tokio::test]
async fn a_reader_creating_a_book_is_403_forbidden_and_nothing_is_stored() {
    let app = spawn_app().await;
    let (_, reader) = app.reader().await;
    assert_error(create(&app, Some(&reader)).await, StatusCode::FORBIDDEN, "forbidden").await;
    let list = body(app.get("/api/v1/books", None).await).await;
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn a_missing_forged_or_expired_token_is_401_unauthorized() {
    let app = spawn_app().await;
    let secret = app.settings.auth.jwt_secret.expose().to_owned();
    let forged = token_signed_with("not-the-secret", 1, "admin", 600);
    let expired = token_signed_with(&secret, 1, "admin", -600);
    assert_error(create(&app, None).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_error(create(&app, Some("garbage")).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_error(create(&app, Some(&forged)).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_error(create(&app, Some(&expired)).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = app
        .client
        .post(app.url("/api/v1/books"))
        .header("Authorization", "Basic abc")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn invalid_book_fields_are_422_with_each_field_named() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app.post("/api/v1/books", Some(&admin), &json!({ "title": "", "isbn": "12" })).await;
    let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    for field in ["title", "author", "isbn"] {
        assert!(b["fields"][field].is_string(), "{field} missing in {b}");
    }
    let r = app
        .post(
            "/api/v1/books",
            Some(&admin),
            &json!({ "title": "t", "author": "a", "published_at": "yesterday" }),
        )
        .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

#[tokio::test]
async fn listing_books_paginates_newest_first() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for i in 0..3 {
        let r = app
            .post("/api/v1/books", Some(&admin), &json!({ "title": format!("Book {i}"), "author": "A" }))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let page = body(app.get("/api/v1/books?page=1&size=2", None).await).await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["size"], 2);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["title"], "Book 2");
    let last = body(app.get("/api/v1/books?page=2&size=2", None).await).await;
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_paging_is_400_invalid_query() {
    let app = spawn_app().await;
    for query in ["page=0", "page=-1", "size=0", "size=100000", "page=abc"] {
        let r = app.get(&format!("/api/v1/books?{query}"), None).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
}

#[tokio::test]
async fn an_unknown_or_malformed_book_id_is_404_not_found() {
    let app = spawn_app().await;
    assert_error(app.get("/api/v1/books/999999", None).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(app.get("/api/v1/books/abc", None).await, StatusCode::NOT_FOUND, "not_found").await;
    let admin = app.admin_token().await;
    let r = app.client.delete(app.url("/api/v1/books/999999")).bearer_auth(&admin).send().await.unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
}
