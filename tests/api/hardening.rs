//! The hardening list: each test pins one finding from probing the release build by hand
//! (named `itemN_…` after its place in that list), plus the abuse limits.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use nanum::{auth::TokenService, configuration, startup::Application};
use reqwest::StatusCode;
use serde_json::{Value, json};
use strategies::StrategyName;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use crate::helpers::{TestApp, assert_error, body, spawn_app, spawn_configured};

fn sqlite_url() -> String {
    let dir = std::env::temp_dir().join("nanum-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    format!("sqlite://{}?mode=rwc", dir.join(format!("{}.db", uuid::Uuid::new_v4().simple())).display())
}

async fn spawn(configure: impl FnOnce(&mut configuration::Settings)) -> TestApp {
    spawn_configured(&sqlite_url(), StrategyName::PessimisticLock, configure).await
}

/// Sends `request` as raw bytes (reqwest would percent-encode what the test needs raw) and
/// returns (status, headers and body as text).
async fn raw(app: &TestApp, request: &[u8]) -> (u16, String) {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    // The server may answer and close before reading all of an oversized request.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// The JSON body of a raw answer.
fn raw_body(text: &str) -> Value {
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not a JSON body ({e}): {text}"))
}

#[tokio::test]
async fn item1_a_page_past_ten_thousand_rows_is_400_not_a_dropped_connection() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/books?page=9223372036854775809&size=1",
        "/api/v1/events?page=9223372036854775809&size=1",
        "/api/v1/books?page=18446744073709551615&size=100",
        "/api/v1/events?page=101&size=100",
    ] {
        assert_error(app.get(path, None).await, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
    let r = app.get("/api/v1/books?page=100&size=100", None).await;
    assert_eq!(r.status(), StatusCode::OK, "the last allowed page still answers");
}

#[tokio::test]
async fn item2_a_title_whose_lowercase_changes_byte_offsets_is_highlighted() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app
        .post("/api/v1/books", Some(&admin), &json!({ "title": "\u{2126}abc \u{023a}", "author": "X" }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    for _ in 0..3 {
        let r = app.get("/api/v1/books/search?engine=like&q=abc", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        let b = body(r).await;
        assert_eq!(b["hits"][0]["highlight"]["snippet"], "\u{2126}<b>abc</b> \u{023a}", "{b}");
    }
}

#[tokio::test]
async fn item3_login_emails_and_passwords_longer_than_sign_up_allows_are_422_and_not_counted() {
    let app = spawn_app().await;
    let long_email = format!("{}@example.com", "a".repeat(60 * 1024));
    for _ in 0..10 {
        let r = app
            .post("/api/v1/auth/login", None, &json!({ "email": long_email, "password": "whatever1" }))
            .await;
        let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(b["fields"]["email"].is_string(), "{b}");
    }
    let r = app
        .post("/api/v1/auth/login", None, &json!({ "email": "a@example.com", "password": "p".repeat(129) }))
        .await;
    let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert!(b["fields"]["password"].is_string(), "{b}");
}

/// Settings where one hash takes long enough to overlap (production memory cost).
fn slow_hashes(s: &mut configuration::Settings) {
    s.auth.argon2.memory_kib = 19_456;
    s.auth.argon2.iterations = 2;
}

#[tokio::test]
async fn item4_logins_beyond_the_hashing_slots_wait_then_get_503_overloaded() {
    let app = spawn(|s| {
        slow_hashes(s);
        s.auth.hash_concurrency = 1;
        s.auth.hash_max_wait_ms = 1;
        s.auth.login_max_failures = 1000;
    })
    .await;
    let bodies: Vec<_> =
        (0..12).map(|i| json!({ "email": format!("r{i}@example.com"), "password": "wrong-pass" })).collect();
    let logins = bodies.iter().map(|b| app.post("/api/v1/auth/login", None, b));
    let answers = futures::future::join_all(logins).await;
    let mut overloaded = 0;
    for r in answers {
        match r.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(r.headers()["retry-after"], "1");
                assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
                overloaded += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(overloaded > 0, "12 concurrent hashes through one slot with a 1 ms wait: some must be refused");
}

#[tokio::test]
async fn item5_concurrent_wrong_passwords_for_one_email_are_counted_before_checking() {
    let app = spawn(slow_hashes).await;
    app.register("target@example.com", "correct horse").await;
    let bodies: Vec<_> =
        (0..20).map(|i| json!({ "email": "target@example.com", "password": format!("guess-{i}") })).collect();
    let guesses = bodies.iter().map(|b| app.post("/api/v1/auth/login", None, b));
    let answers = futures::future::join_all(guesses).await;
    let statuses: Vec<_> = answers.iter().map(|r| r.status()).collect();
    let unauthorized = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let limited = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    let max = usize::try_from(app.settings.auth.login_max_failures).unwrap();
    assert_eq!(unauthorized, max, "{statuses:?}");
    assert_eq!(limited, 20 - max, "{statuses:?}");
}

#[tokio::test]
async fn item5_an_unknown_email_takes_as_long_as_a_known_one() {
    let app = spawn(|s| {
        slow_hashes(s);
        s.auth.login_max_failures = 1000;
    })
    .await;
    app.register("known@example.com", "correct horse").await;
    // Alternating, so both see the same machine load; the fastest of each is compared.
    let (mut known, mut unknown) = (Duration::MAX, Duration::MAX);
    for _ in 0..6 {
        for (email, best) in [("known@example.com", &mut known), ("nobody@example.com", &mut unknown)] {
            let started = Instant::now();
            let r = app
                .post("/api/v1/auth/login", None, &json!({ "email": email, "password": "wrong-pass" }))
                .await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            *best = (*best).min(started.elapsed());
        }
    }
    println!("fastest wrong login: known email {known:?}, unknown email {unknown:?}");
    assert!(unknown * 2 >= known, "unknown {unknown:?} vs known {known:?}: the email's existence shows");
}

#[tokio::test]
async fn item6_a_reader_who_registered_the_admin_address_is_never_promoted() {
    let url = sqlite_url();
    let first = spawn_configured(&url, StrategyName::PessimisticLock, |_| {}).await;
    first.register("boss@example.com", "readers-own-pass").await;
    let mut settings = configuration::load_for("test", &[]).expect("settings");
    settings.database.url = url;
    settings.search.index_dir = crate::helpers::fresh_index_dir();
    settings.auth.admin_email = "boss@example.com".into();
    let message = match Application::build(settings).await {
        Ok(_) => panic!("the start must be refused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(message.contains("APP__AUTH__ADMIN_EMAIL"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
    let token = first.login("boss@example.com", "readers-own-pass").await;
    let r = first.post("/api/v1/books", Some(&token), &json!({ "title": "t", "author": "a" })).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
}

fn start_check(configure: impl FnOnce(&mut configuration::Settings)) -> Result<(), String> {
    let mut settings = configuration::load_for("test", &[]).expect("settings");
    configure(&mut settings);
    settings.check()
}

#[tokio::test]
async fn item7_off_loopback_weak_secrets_are_refused_whatever_app_env_says() {
    let strong = "k3Jx9-QpL2vN8wRt5yZb1cMfH6dGs4Ae";
    for (env, secret) in
        [("prod", configuration::DEV_JWT_SECRET), ("staging", "short-secret"), ("local", &*"x".repeat(40))]
    {
        let refused = start_check(|s| {
            s.environment = env.into();
            s.server.host = "0.0.0.0".into();
            s.auth.jwt_secret = secret.into();
        });
        let message = refused.expect_err(env);
        assert!(message.contains("APP__AUTH__JWT_SECRET"), "{message}");
    }
    // The development admin password is refused too, and a strong setup starts.
    assert!(
        start_check(|s| {
            s.server.host = "0.0.0.0".into();
            s.auth.jwt_secret = strong.into();
        })
        .is_err_and(|m| m.contains("APP__AUTH__ADMIN_PASSWORD"))
    );
    start_check(|s| {
        s.server.host = "0.0.0.0".into();
        s.auth.jwt_secret = strong.into();
        s.auth.admin_password = "a-real-password".into();
    })
    .expect("a strong secret starts");
    start_check(|s| s.server.host = "127.0.0.1".into()).expect("loopback keeps the development defaults");
}

#[tokio::test]
async fn item7_an_admin_token_for_an_account_that_does_not_exist_is_refused() {
    let app = spawn_app().await;
    let forged = TokenService::new(&app.settings.auth).issue_for(987_654, "admin").expect("token");
    let r = app.post("/api/v1/books", Some(&forged), &json!({ "title": "t", "author": "a" })).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // A reader's id with an admin role in the token is not an admin either.
    let (reader, _) = app.reader().await;
    let forged = TokenService::new(&app.settings.auth).issue_for(reader, "admin").expect("token");
    let r = app.post("/api/v1/books", Some(&forged), &json!({ "title": "t", "author": "a" })).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn item8_an_idempotency_key_used_on_one_event_is_refused_on_another() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (first, second) = (app.open_event(&admin, 5).await, app.open_event(&admin, 5).await);
    let (_, token) = app.reader().await;
    let r = app.apply(first, &token, Some("key-1")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.apply(second, &token, Some("key-1")).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused").await;
    let r = app.apply(first, &token, Some("key-1")).await;
    assert_eq!(r.status(), StatusCode::CREATED, "a replay on its own event still answers");
    let r = app.apply(second, &token, Some("key-2")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(body(r).await["event_id"], second, "entered into the second event");
}

#[tokio::test]
async fn item9_a_request_id_that_was_never_issued_is_404() {
    let app = spawn_app().await;
    let (id, token) = app.reader().await;
    let r = app.get(&format!("/api/v1/applications/u{id}:never-issued"), Some(&token)).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn item10_control_characters_in_a_search_are_400() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.book(&admin).await;
    for engine in ["like", "tantivy"] {
        for q in ["%00", "a%00", "%1b%5b2J", "%7f"] {
            let r = app.get(&format!("/api/v1/books/search?engine={engine}&q={q}"), None).await;
            assert_error(r, StatusCode::BAD_REQUEST, "invalid_query").await;
        }
    }
}

#[tokio::test]
async fn item12_an_oversized_body_is_413_payload_too_large() {
    let app = spawn_app().await;
    let name = "x".repeat(100 * 1024);
    let r = app
        .post("/api/v1/users", None, &json!({ "email": "a@b.co", "password": "s3cret-pass", "name": name }))
        .await;
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[tokio::test]
async fn item13_raw_utf8_in_the_query_string_is_searched_like_its_percent_encoding() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r =
        app.post("/api/v1/books", Some(&admin), &json!({ "title": "소년이 온다", "author": "한강" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let request =
        "GET /api/v1/books/search?q=소년&engine=like HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (status, text) = raw(&app, request.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(raw_body(&text)["total"], 1, "{text}");
}

#[tokio::test]
async fn item13_errors_the_framework_answers_itself_carry_the_json_error_body() {
    let app = spawn_app().await;
    // A malformed request line, and a head larger than the codec's buffer.
    let (status, text) = raw(&app, b"GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(raw_body(&text)["error"], "bad_request");
    let huge = format!("GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200 * 1024));
    let (status, text) = raw(&app, huge.as_bytes()).await;
    assert_eq!(status, 431, "{text}");
    assert_eq!(raw_body(&text)["error"], "headers_too_large");
    // A URI longer than the parser takes (64 KiB) but within the buffer.
    let long =
        format!("GET /api/v1/books?{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "a".repeat(70_000));
    let (status, text) = raw(&app, long.as_bytes()).await;
    assert!(matches!(status, 400 | 414 | 431), "{text}");
    assert!(raw_body(&text)["error"].is_string(), "{text}");
    // A query string or path of the wrong type (actix's extractor errors).
    let r = app.get("/api/v1/books?page=abc", None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_query").await;
    let r = app.get("/api/v1/books/abc", None).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn item14_the_binary_starts_where_no_config_folder_is() {
    let empty = std::env::temp_dir().join(format!("nanum-noconfig-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&empty).expect("dir");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nanum"))
        .arg("serve")
        .current_dir(&empty)
        .env_remove("APP_CONFIG_DIR")
        .env_remove("APP_ENV")
        .env("APP__DATABASE__URL", format!("sqlite://{}?mode=rwc", empty.join("n.db").display()))
        .env("APP__SEARCH__INDEX_DIR", empty.join("index"))
        .env("APP__SERVER__PORT", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn nanum");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
    let _ = child.start_kill();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr).await;
    }
    let _ = std::fs::remove_dir_all(&empty);
    let line = first.ok().and_then(Result::ok).flatten().unwrap_or_default();
    assert!(line.starts_with("nanum listening on "), "stdout {line:?}, stderr {stderr}");
}

#[tokio::test]
async fn an_isbn_with_a_multibyte_character_is_422_not_a_panic() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for isbn in ["1234567가", "123456789가", "가123456789012"] {
        let r = app
            .post("/api/v1/books", Some(&admin), &json!({ "title": "t", "author": "a", "isbn": isbn }))
            .await;
        let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(b["fields"]["isbn"].is_string(), "{b}");
    }
}

/// Rate limits on, at `per_minute` for every limit.
async fn limited(per_minute: u32) -> TestApp {
    spawn(|s| {
        s.rate_limit.enabled = true;
        s.rate_limit.login_per_ip_per_minute = per_minute;
        s.rate_limit.register_per_ip_per_minute = per_minute;
        s.rate_limit.apply_per_ip_per_minute = per_minute * 10;
        s.rate_limit.apply_per_user_per_minute = per_minute;
    })
    .await
}

async fn assert_rate_limited(r: reqwest::Response) {
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn sign_ups_from_one_address_beyond_the_limit_are_429_with_retry_after() {
    let app = limited(3).await;
    for i in 0..3 {
        app.register(&format!("r{i}@example.com"), "correct horse").await;
    }
    let r = app
        .post(
            "/api/v1/users",
            None,
            &json!({ "email": "r9@example.com", "password": "correct horse", "name": "x" }),
        )
        .await;
    assert_rate_limited(r).await;
}

#[tokio::test]
async fn logins_from_one_address_beyond_the_limit_are_429_even_for_different_emails() {
    let app = limited(4).await;
    for i in 0..4 {
        let r = app
            .post(
                "/api/v1/auth/login",
                None,
                &json!({ "email": format!("x{i}@e.co"), "password": "wrong-pass" }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r =
        app.post("/api/v1/auth/login", None, &json!({ "email": "y@e.co", "password": "wrong-pass" })).await;
    assert_rate_limited(r).await;
}

#[tokio::test]
async fn applications_of_one_reader_beyond_the_limit_are_429_and_record_nothing() {
    let app = limited(3).await;
    let admin = app.admin_token().await;
    let event = app.open_event(&admin, 100).await;
    let (_, token) = app.reader().await;
    let first = app.apply(event, &token, None).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    for _ in 0..2 {
        assert_error(app.apply(event, &token, None).await, StatusCode::CONFLICT, "already_applied").await;
    }
    assert_rate_limited(app.apply(event, &token, None).await).await;
    let r = app.get(&format!("/api/v1/events/{event}"), None).await;
    assert_eq!(body(r).await["remaining"], 99);
}

#[tokio::test]
async fn the_test_and_benchmark_presets_switch_rate_limits_off() {
    let settings = configuration::load_for("test", &[]).expect("settings");
    assert!(!settings.rate_limit.enabled, "config/test.toml (the race and cluster tests)");
    let base = configuration::load_for("local", &[]).expect("settings");
    assert!(base.rate_limit.enabled, "on by default");
}

#[tokio::test]
async fn item9_a_queued_request_reads_as_pending_and_its_key_is_bound_to_its_event() {
    // An API-only instance with no worker: every application is queued and answers 202.
    let Some(url) = strategies::contract::fresh_mariadb_url("hardening").await else { return };
    let Some(kafka) = strategies::contract::test_kafka("hardening").await else { return };
    let app = spawn_configured(&url, StrategyName::KafkaSinglePartition, |s| {
        s.kafka = kafka;
        s.kafka.reply_timeout_ms = 200;
        s.instance.role = strategies::kafka::Role::Api;
    })
    .await;
    let admin = app.admin_token().await;
    let (first, second) = (app.open_event(&admin, 5).await, app.open_event(&admin, 5).await);
    let (_, token) = app.reader().await;
    let r = app.apply(first, &token, Some("queued-key")).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let request_id = body(r).await["application_id"].as_str().expect("request id").to_owned();
    let r = app.get(&format!("/api/v1/applications/{request_id}"), Some(&token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await["status"], "pending");
    let r = app.apply(second, &token, Some("queued-key")).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused").await;
}
