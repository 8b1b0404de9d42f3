//! `GET /api/v1/books/search`: the index follows book writes within a second, Korean words
//! are found inside compounds, the three engines answer side by side on MariaDB (and what
//! `fulltext` cannot find in Korean is pinned down), and bad queries are 400/422.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use strategies::StrategyName;

use crate::helpers::{TestApp, assert_error, body, spawn_app, spawn_on_mariadb};

/// `GET /api/v1/books/search?{query}` → 200 body.
async fn search(app: &TestApp, query: &str) -> Value {
    let url = reqwest::Url::parse_with_params(&app.url("/api/v1/books/search"), query_pairs(query)).unwrap();
    let r = app.client.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "search {query}");
    body(r).await
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// Polls `search` until `done(body)` holds; panics after `within`.
async fn eventually(app: &TestApp, query: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let b = search(app, query).await;
        if done(&b) {
            return b;
        }
        assert!(
            Instant::now() < deadline,
            "`{query}` did not reach the expected state within {within:?}: {b}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create(app: &TestApp, admin: &str, book: Value) -> i64 {
    let r = app.post("/api/v1/books", Some(admin), &book).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    body(r).await["id"].as_i64().unwrap()
}

fn total(b: &Value) -> u64 {
    b["total"].as_u64().unwrap()
}

fn ids(b: &Value) -> Vec<i64> {
    b["hits"].as_array().unwrap().iter().map(|h| h["book"]["id"].as_i64().unwrap()).collect()
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_new_book_is_found_by_a_korean_word_inside_its_title_and_by_an_english_word_within_a_second() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = create(
        &app,
        &admin,
        json!({ "title": "채식주의자 (The Vegetarian)", "author": "한강", "publisher": "창비" }),
    )
    .await;
    // `주의` sits inside the compound `채식주의자`: only bigrams find it.
    let korean = eventually(&app, "q=주의", SECOND, |b| total(b) == 1).await;
    assert_eq!(korean["engine"], "tantivy");
    assert_eq!(ids(&korean), [id]);
    let hit = &korean["hits"][0];
    assert!(hit["score"].as_f64().unwrap() > 0.0);
    assert_eq!(hit["highlight"]["field"], "title");
    assert!(hit["highlight"]["snippet"].as_str().unwrap().contains("<b>주의</b>"), "{hit}");
    assert!(korean["took_ms"].as_f64().is_some());

    let english = eventually(&app, "q=vegetarian", SECOND, |b| total(b) == 1).await;
    assert_eq!(ids(&english), [id]);
    assert!(english["hits"][0]["highlight"]["snippet"].as_str().unwrap().contains("<b>Vegetarian</b>"));
    assert_eq!(ids(&search(&app, "q=한강").await), [id], "found by author");

    let r =
        app.client.delete(app.url(&format!("/api/v1/books/{id}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    eventually(&app, "q=주의", SECOND, |b| total(b) == 0).await;
    eventually(&app, "q=vegetarian", SECOND, |b| total(b) == 0).await;
}

#[tokio::test]
async fn patching_a_book_replaces_its_document_in_the_index() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = create(&app, &admin, json!({ "title": "Human Acts", "author": "Han Kang" })).await;
    eventually(&app, "q=human", SECOND, |b| total(b) == 1).await;
    let r = app
        .client
        .patch(app.url(&format!("/api/v1/books/{id}")))
        .bearer_auth(&admin)
        .json(&json!({ "title": "소년이 온다" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let found = eventually(&app, "q=소년", SECOND, |b| total(b) == 1).await;
    assert_eq!(found["hits"][0]["book"]["title"], "소년이 온다");
    eventually(&app, "q=human", SECOND, |b| total(b) == 0).await;
}

#[tokio::test]
async fn hits_are_paginated_with_the_total_of_all_pages() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for i in 0..5 {
        create(&app, &admin, json!({ "title": format!("바다 이야기 {i}"), "author": "A" })).await;
    }
    eventually(&app, "q=바다", SECOND, |b| total(b) == 5).await;
    let first = search(&app, "q=바다&page=1&size=2").await;
    let last = search(&app, "q=바다&page=3&size=2").await;
    assert_eq!((total(&first), ids(&first).len(), ids(&last).len()), (5, 2, 1));
    assert_eq!((first["page"].as_u64(), first["size"].as_u64()), (Some(1), Some(2)));
    let mut all: Vec<i64> = Vec::new();
    for page in 1..=3 {
        all.extend(ids(&search(&app, &format!("q=바다&page={page}&size=2")).await));
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 5, "pages overlap or miss hits");
}

#[tokio::test]
async fn the_three_engines_answer_side_by_side_on_mariadb_and_fulltext_misses_korean_words() {
    let Some(app) = spawn_on_mariadb(StrategyName::PessimisticLock).await else { return };
    let admin = app.admin_token().await;
    let boy = create(&app, &admin, json!({ "title": "소년이 온다", "author": "한강" })).await;
    let veg = create(&app, &admin, json!({ "title": "채식주의자", "author": "한강" })).await;
    let eng = create(
        &app,
        &admin,
        json!({ "title": "The Vegetarian", "author": "Han Kang", "description": "A woman stops eating meat." }),
    )
    .await;
    eventually(&app, "q=한강", SECOND, |b| total(b) == 2).await;
    eventually(&app, "q=vegetarian", SECOND, |b| total(b) == 1).await;

    let found = |engine: &'static str, q: &'static str| {
        let app = &app;
        async move {
            let b = search(app, &format!("q={q}&engine={engine}")).await;
            assert_eq!(b["engine"], engine);
            let mut ids = ids(&b);
            ids.sort_unstable();
            assert_eq!(total(&b), ids.len() as u64, "{engine} {q}: {b}");
            ids
        }
    };
    // Substrings: LIKE finds Korean words anywhere (scanning every row to do it).
    assert_eq!(found("like", "소년").await, [boy]);
    assert_eq!(found("like", "주의").await, [veg]);
    assert_eq!(found("like", "vegetarian").await, [eng]);
    assert_eq!(found("like", "한강").await, [boy, veg]);
    // The index: bigrams find the same Korean words, BM25 ranks them.
    assert_eq!(found("tantivy", "소년").await, [boy]);
    assert_eq!(found("tantivy", "주의").await, [veg]);
    assert_eq!(found("tantivy", "vegetarian").await, [eng]);
    assert_eq!(found("tantivy", "meat").await, [eng], "descriptions are searched");
    // MariaDB FULLTEXT: English words are found ...
    assert_eq!(found("fulltext", "vegetarian").await, [eng]);
    assert_eq!(found("fulltext", "meat").await, [eng]);
    // ... a Korean word only whole and at least 3 characters long (innodb_ft_min_token_size):
    assert_eq!(found("fulltext", "소년이").await, [boy]);
    assert_eq!(found("fulltext", "채식주의자").await, [veg]);
    // ... never inside a longer word (`소년` of `소년이`, `주의` of `채식주의자`), and never a
    // two-syllable word even standing alone (`한강`, `온다` are not in the index at all).
    assert!(found("fulltext", "소년").await.is_empty());
    assert!(found("fulltext", "주의").await.is_empty());
    assert!(found("fulltext", "한강").await.is_empty());
    assert!(found("fulltext", "온다").await.is_empty());
}

#[tokio::test]
async fn fulltext_on_sqlite_is_422_engine_unavailable() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/books/search?q=book&engine=fulltext", None).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "engine_unavailable").await;
}

#[tokio::test]
async fn only_an_empty_or_over_long_query_or_bad_paging_is_400_invalid_query() {
    let app = spawn_app().await;
    let long = "가".repeat(10 * 1024 / 3);
    let bad = [
        String::new(),
        "q=".into(),
        "q=%20%20".into(),
        format!("q={long}"),
        format!("q={}", "a".repeat(10 * 1024)),
        "q=a&size=100000".into(),
        "q=a&size=0".into(),
        "q=a&page=-1".into(),
        "q=a&page=0".into(),
        "q=a&page=abc".into(),
        "q=a&page=101&size=100".into(),
        "q=a&engine=solr".into(),
    ];
    let cases = bad.iter().flat_map(|q| ["", "&engine=like", "&engine=tantivy"].map(|e| (q.clone(), e)));
    for (query, engine) in cases {
        {
            let r = app
                .client
                .get(app.url(&format!("/api/v1/books/search?{query}{engine}")))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let b = body(r).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}{engine}: {b}");
            assert_eq!(b["error"], "invalid_query", "{query}{engine}: {b}");
        }
    }
}

#[tokio::test]
async fn readiness_reports_the_search_index_ok() {
    let app = spawn_app().await;
    let r = app.get("/health/ready", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await["search"], "ok");
}

#[tokio::test]
async fn a_readers_text_is_searched_as_words_never_parsed_as_query_syntax() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let stone = create(
        &app,
        &admin,
        json!({ "title": "Harry Potter and the Philosopher's Stone", "author": "J.K. Rowling" }),
    )
    .await;
    let either =
        create(&app, &admin, json!({ "title": "Either/Or (Part I)", "author": "Kierkegaard" })).await;
    eventually(&app, "q=rowling", SECOND, |b| total(b) == 1).await;
    eventually(&app, "q=kierkegaard", SECOND, |b| total(b) == 1).await;
    let found = |q: &'static str| {
        let app = &app;
        async move {
            let url = reqwest::Url::parse_with_params(&app.url("/api/v1/books/search"), [("q", q)]).unwrap();
            let r = app.client.get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{q:?}");
            ids(&body(r).await)
        }
    };
    // Apostrophes, quotes, operators and field names are separators or words.
    assert_eq!(found("philosopher's stone").await, [stone]);
    assert_eq!(found("\"philosopher's").await, [stone], "an unbalanced quote");
    assert_eq!(found("harry AND potter").await, [stone], "AND is a word of the title");
    assert_eq!(found("either OR").await, [either], "OR is a word of the title");
    assert_eq!(found("(part i)").await, [either]);
    assert_eq!(found("potter~ stone^").await, [stone], "no fuzziness, no boost");
    assert_eq!(found("harry -potter").await, [stone], "no exclusion");
    assert_eq!(found("title:stone").await, Vec::<i64>::new(), "`title` is a word no book has");
    for q in [
        "title:*",
        "author:*",
        "isbn:*",
        "*",
        "nosuchfield:word",
        "title:(",
        "title:[a TO",
        "~^:()\"'",
        "AND",
        "OR",
    ] {
        assert!(found(q).await.len() <= 2, "{q:?}");
    }
}
