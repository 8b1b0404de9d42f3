//! The readers' pages as a browser without JavaScript sees them: plain GETs and form POSTs
//! with the cookies kept by hand (the client follows no redirect, so every `Set-Cookie` is
//! seen), against the real server.

use std::collections::HashMap;

use nanum::web::encode;
use reqwest::{StatusCode, header};
use strategies::{StrategyName, contract};

use crate::helpers::{TestApp, body, spawn_app, spawn_configured};

/// `fields` as an `application/x-www-form-urlencoded` body.
pub(crate) fn form_body(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
}

/// A browser session: its own cookies, no redirects followed.
pub(crate) struct Browser {
    base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) cookies: HashMap<String, String>,
}

/// One answer: status, the `Set-Cookie` lines, `Location`, the HTML.
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) set_cookies: Vec<String>,
    pub(crate) location: Option<String>,
    pub(crate) content_type: String,
    pub(crate) html: String,
}

impl Page {
    /// The value of the first `name="{name}" value="…"` in the HTML.
    pub(crate) fn field(&self, name: &str) -> String {
        let needle = format!("name=\"{name}\" value=\"");
        let start = self.html.find(&needle).unwrap_or_else(|| panic!("no field {name} in {}", self.html))
            + needle.len();
        self.html[start..].split('"').next().unwrap_or_default().to_owned()
    }

    /// The text of the first `class="{class}"…>` element's content (up to the next `<`).
    fn text_of(&self, class: &str) -> Option<String> {
        let at = self.html.find(&format!("class=\"{class}\""))?;
        let rest = &self.html[at..];
        let open = rest.find('>')? + 1;
        Some(rest[open..].split('<').next().unwrap_or_default().to_owned())
    }
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("client");
        Self { base: app.address.clone(), client, cookies: HashMap::new() }
    }

    pub(crate) fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub(crate) async fn read(&mut self, response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        let set_cookies: Vec<String> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        for line in &set_cookies {
            let pair = line.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || line.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        let location = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let content_type =
            headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let html = response.text().await.expect("body");
        Page { status, set_cookies, location, content_type, html }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.read(response).await
    }

    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let form = form_body(fields);
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("POST");
        self.read(response).await
    }

    /// Signs up a new reader through the form; returns the email.
    pub(crate) async fn sign_up(&mut self) -> String {
        let email = format!("web-{}@example.com", uuid::Uuid::new_v4().simple());
        let form = self.get("/signup").await;
        let csrf = form.field("csrf");
        let done = self
            .post(
                "/signup",
                &[
                    ("csrf", &csrf),
                    ("email", &email),
                    ("name", "독자"),
                    ("password", "correct horse"),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
        email
    }

    /// Signs in through the form.
    pub(crate) async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let csrf = self.get("/login").await.field("csrf");
        self.post("/login", &[("csrf", &csrf), ("email", email), ("password", password)]).await
    }

    /// Opens the event page and presses apply; returns (the answer, the key sent).
    pub(crate) async fn apply(&mut self, event: i64) -> (Page, String, String) {
        let page = self.get(&format!("/events/{event}")).await;
        let (csrf, key) = (page.field("csrf"), page.field("key"));
        (self.post(&format!("/events/{event}/apply"), &[("csrf", &csrf), ("key", &key)]).await, csrf, key)
    }
}

#[tokio::test]
async fn the_pages_are_korean_html_with_their_stylesheet_and_script_served_by_the_binary() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let home = browser.get("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.content_type.starts_with("text/html"), "{}", home.content_type);
    assert!(home.html.contains("lang=\"ko\"") && home.html.contains("지금 나누는 책"));
    for (path, kind) in [("/static/nanum.css", "text/css"), ("/static/nanum.js", "text/javascript")] {
        let asset = browser.get(path).await;
        assert_eq!(asset.status, StatusCode::OK, "{path}");
        assert!(asset.content_type.starts_with(kind), "{path}: {}", asset.content_type);
    }
    assert!(!home.html.contains("http://") && !home.html.contains("https://"), "no CDN");
}

#[tokio::test]
async fn sign_up_sets_an_httponly_strict_session_cookie_and_sign_out_clears_it() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let form = browser.get("/signup").await;
    let csrf_cookie = form.set_cookies.iter().find(|c| c.starts_with("nanum_csrf=")).expect("a CSRF cookie");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"));
    browser.sign_up().await;
    assert!(browser.cookies.contains_key("nanum_session"));
    let mine = browser.get("/me/applications").await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.html);
    assert!(mine.html.contains("내 신청") && mine.html.contains("로그아웃"));

    let csrf = mine.field("csrf");
    let out = browser.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let cleared = out.set_cookies.iter().find(|c| c.starts_with("nanum_session=")).expect("cleared");
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("HttpOnly") && cleared.contains("SameSite=Strict")
    );
    assert!(!cleared.contains("Secure"), "plain HTTP here: no Secure flag");
    assert_eq!(browser.get("/me/applications").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_served_over_https() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let form = browser.get("/login").await;
    let csrf = form.field("csrf");
    // behind a TLS-terminating proxy, which says so
    let response = browser
        .client
        .get(format!("{}/login", app.address))
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .expect("GET");
    let fresh = browser.read(response).await;
    assert!(fresh.set_cookies.iter().any(|c| c.starts_with("nanum_csrf=") && c.contains("; Secure")));
    assert!(!csrf.is_empty());
}

#[tokio::test]
async fn a_form_post_without_the_matching_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    browser.get("/signup").await;
    let email = "forged@example.com";
    let fields =
        |csrf: &'static str| [("csrf", csrf), ("email", email), ("name", "x"), ("password", "correct horse")];
    let forged = browser.post("/signup", &fields("00000000000000000000000000000000")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.content_type.starts_with("text/html") && forged.html.contains("CSRF"));
    // a visitor with no CSRF cookie at all has nothing to repeat
    let mut stranger = Browser::new(&app);
    assert_eq!(stranger.post("/signup", &fields("")).await.status, StatusCode::FORBIDDEN);
    let login = app
        .post("/api/v1/auth/login", None, &serde_json::json!({"email": email, "password": "correct horse"}))
        .await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED, "no account was created");
}

#[tokio::test]
async fn errors_are_pages_with_the_api_status() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let missing = browser.get("/events/999999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.content_type.starts_with("text/html") && missing.html.contains("찾는 페이지"));
    assert_eq!(browser.get("/events/abc").await.status, StatusCode::NOT_FOUND);
    assert_eq!(browser.get("/admin").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(browser.get("/search?q=a&page=0").await.status, StatusCode::BAD_REQUEST);
    browser.sign_up().await;
    let forbidden = browser.get("/admin").await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert!(forbidden.html.contains("권한"));
    let wrong = browser.sign_in("nobody@example.com", "wrong password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    // the API's validation, through the form
    let csrf = browser.get("/signup").await.field("csrf");
    let invalid = browser
        .post("/signup", &[("csrf", &csrf), ("email", "not-an-email"), ("name", "x"), ("password", "short")])
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid.html.contains("email") && invalid.html.contains("password"));
}

/// Polls the search page until `q` finds something (the index follows the database).
async fn search_until_found(browser: &mut Browser, q: &str) -> Page {
    for _ in 0..100 {
        let page = browser.get(&format!("/search?q={}", encode(q))).await;
        assert_eq!(page.status, StatusCode::OK);
        if page.html.contains("class=\"hit\"") {
            return page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the index never found {q}");
}

// Long on purpose: one scenario told top to bottom (set up, act, check), as a reader of
// the test expects it.
#[tokio::test]
async fn the_admin_adds_a_book_and_an_event_through_the_forms_and_readers_find_it_by_a_korean_word() {
    let app = spawn_app().await;
    let mut admin = Browser::new(&app);
    let signed = admin
        .sign_in(&app.settings.auth.admin_email.clone(), app.settings.auth.admin_password.expose())
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.html);
    let dashboard = admin.get("/admin").await;
    assert_eq!(dashboard.status, StatusCode::OK);
    let csrf = dashboard.field("csrf");
    let added = admin
        .post(
            "/admin/books",
            &[("csrf", &csrf), ("title", "소년이 온다"), ("author", "한강"), ("publisher", "")],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
    let book_id: i64 = added
        .location
        .as_deref()
        .and_then(|l| l.strip_prefix("/books/"))
        .and_then(|i| i.parse().ok())
        .expect("book id");

    let mut reader = Browser::new(&app);
    let found = search_until_found(&mut reader, "소년").await;
    assert!(found.html.contains(&format!("href=\"/books/{book_id}\"")));
    assert!(found.html.contains("<b>소년</b>"), "highlighted: {}", found.html);

    // KST: 09:00 on 1 Jan 2030 is 00:00 UTC
    let created = admin
        .post(
            "/admin/events",
            &[
                ("csrf", &csrf),
                ("book_id", &book_id.to_string()),
                ("title", "저녁 나눔"),
                ("quantity", "3"),
                ("opens_at", "2030-01-01T09:00:00"),
                ("closes_at", ""),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    let event_id: i64 = created
        .location
        .as_deref()
        .and_then(|l| l.strip_prefix("/admin/events/"))
        .and_then(|i| i.parse().ok())
        .expect("event id");
    let api = body(app.get(&format!("/api/v1/events/{event_id}"), None).await).await;
    assert_eq!(api["opens_at"], "2030-01-01T00:00:00Z");
    assert_eq!(api["quantity"], 3);

    let home = reader.get("/").await;
    assert!(home.html.contains(&format!("/events/{event_id}")) && home.html.contains("곧 시작"));
    let book_page = reader.get(&format!("/books/{book_id}")).await;
    assert!(book_page.html.contains("저녁 나눔"));
    // before the opening the button is disabled, and a forced post is the API's 422
    reader.sign_up().await;
    let event_page = reader.get(&format!("/events/{event_id}")).await;
    assert!(event_page.html.contains("disabled"), "{}", event_page.html);
    let (early, _, _) = reader.apply(event_id).await;
    assert_eq!(early.status, StatusCode::UNPROCESSABLE_ENTITY);
    // a reader cannot use the admin forms
    let reader_csrf = event_page.field("csrf");
    let refused =
        reader.post("/admin/books", &[("csrf", &reader_csrf), ("title", "x"), ("author", "y")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let winners = admin.get(&format!("/admin/events/{event_id}")).await;
    assert_eq!(
        winners
            .text_of("winner-count")
            .or_else(|| {
                winners
                    .html
                    .split("id=\"winner-count\">")
                    .nth(1)
                    .map(|s| s.split('<').next().unwrap_or_default().to_owned())
            })
            .as_deref(),
        Some("0")
    );
}

fn application_number(page: &Page) -> Option<i64> {
    page.text_of("application-id").and_then(|t| t.trim().parse().ok())
}

#[tokio::test]
async fn the_apply_form_wins_once_and_a_double_submit_or_a_reload_replays_the_same_application() {
    let app = spawn_app().await;
    let admin_token = app.admin_token().await;
    let event = app.open_event(&admin_token, 2).await;
    let mut reader = Browser::new(&app);
    reader.sign_up().await;
    let page = reader.get(&format!("/events/{event}")).await;
    assert!(!page.html.contains("disabled"), "open: the button is enabled");
    let (csrf, key) = (page.field("csrf"), page.field("key"));
    let path = format!("/events/{event}/apply");
    let fields = [("csrf", csrf.as_str()), ("key", key.as_str())];
    // the double click: two submits of one form at once
    let mut twin =
        Browser { base: reader.base.clone(), client: reader.client.clone(), cookies: reader.cookies.clone() };
    let (a, b) = tokio::join!(reader.post(&path, &fields), twin.post(&path, &fields));
    let mut numbers = Vec::new();
    for answer in [&a, &b] {
        assert!(
            answer.status == StatusCode::CREATED || answer.status == StatusCode::CONFLICT,
            "{}: {}",
            answer.status,
            answer.html
        );
        numbers.push(application_number(answer).expect("the application number is shown"));
    }
    assert!(a.status == StatusCode::CREATED || b.status == StatusCode::CREATED);
    assert_eq!(numbers[0], numbers[1], "both show the one application");
    // the reload: the browser resubmits the same form
    let reload = reader.post(&path, &fields).await;
    assert_eq!(reload.status, StatusCode::CREATED, "a replay answers like the first");
    assert_eq!(application_number(&reload), Some(numbers[0]));
    assert!(reload.html.contains("당첨"));
    let winners =
        body(app.get(&format!("/api/v1/events/{event}/applications"), Some(&admin_token)).await).await;
    assert_eq!(winners["total"], 1, "one application: {winners}");
    // a new page (new key) is told it already applied
    let (again, _, _) = reader.apply(event).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.html.contains("이미 신청") && application_number(&again) == Some(numbers[0]));
    let mine = reader.get("/me/applications").await;
    assert!(mine.html.contains(&format!("<td>{}</td>", numbers[0])), "{}", mine.html);
}

#[tokio::test]
async fn the_last_copy_goes_to_one_reader_and_the_next_sees_sold_out() {
    let app = spawn_app().await;
    let admin_token = app.admin_token().await;
    let event = app.open_event(&admin_token, 1).await;
    let (mut first, mut second) = (Browser::new(&app), Browser::new(&app));
    first.sign_up().await;
    second.sign_up().await;
    let (won, _, _) = first.apply(event).await;
    assert_eq!(won.status, StatusCode::CREATED, "{}", won.html);
    let (lost, _, _) = second.apply(event).await;
    assert_eq!(lost.status, StatusCode::CONFLICT);
    assert!(lost.html.contains("data-status=\"sold_out\"") && lost.html.contains("매진"));
    let event_page = second.get(&format!("/events/{event}")).await;
    assert!(event_page.html.contains("0</strong> / 1"), "copies left shown");
}

#[tokio::test]
async fn a_post_to_apply_without_a_session_is_401_and_applies_nothing() {
    let app = spawn_app().await;
    let admin_token = app.admin_token().await;
    let event = app.open_event(&admin_token, 1).await;
    let mut stranger = Browser::new(&app);
    let page = stranger.get(&format!("/events/{event}")).await;
    assert!(page.html.contains("로그인하고 신청하기"));
    let csrf = stranger.get("/login").await.field("csrf");
    let answer = stranger.post(&format!("/events/{event}/apply"), &[("csrf", &csrf), ("key", "k1")]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let winners =
        body(app.get(&format!("/api/v1/events/{event}/applications"), Some(&admin_token)).await).await;
    assert_eq!(winners["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queued_answer_of_kafka_single_partition_settles_in_the_page() {
    queued_answer_settles(StrategyName::KafkaSinglePartition).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queued_answer_of_kafka_redis_lock_settles_in_the_page() {
    queued_answer_settles(StrategyName::KafkaRedisLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queued_answer_of_kafka_keyed_settles_in_the_page() {
    queued_answer_settles(StrategyName::KafkaKeyed).await;
}

/// With a Kafka strategy whose reply bound is zero every apply answers 202; the queued
/// page settles to the answer the consumer decided.
async fn queued_answer_settles(strategy: StrategyName) {
    let Some(url) = contract::fresh_mariadb_url("web").await else { return };
    let Some(mut kafka) = contract::test_kafka("web").await else { return };
    kafka.reply_timeout_ms = 0;
    let app = spawn_configured(&url, strategy, |s| s.kafka = kafka).await;
    let admin_token = app.admin_token().await;
    // A zero reply bound still lets a fast worker's answer in before the wait is polled
    // (a 201): try a fresh event and reader until the request is really queued (bounded).
    let mut attempt = 0;
    let (mut reader, queued) = loop {
        let event = app.open_event(&admin_token, 1).await;
        let mut reader = Browser::new(&app);
        reader.sign_up().await;
        let (answer, _, _) = reader.apply(event).await;
        attempt += 1;
        if answer.status != StatusCode::CREATED || attempt == 10 {
            break (reader, answer);
        }
    };
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.html);
    assert!(queued.html.contains("data-status=\"pending\"") && queued.html.contains("대기열"));
    let poll = queued
        .html
        .split("data-poll=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("poll url")
        .to_owned();
    assert!(queued.html.contains(&format!("url={poll}")), "the page refreshes itself without the script");
    let mut settled = None;
    for _ in 0..300 {
        let page = reader.get(&poll).await;
        assert_eq!(page.status, StatusCode::OK);
        if !page.html.contains("data-status=\"pending\"") {
            settled = Some(page);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let settled = settled.expect("the request settled");
    assert!(settled.html.contains("data-status=\"won\""), "{}", settled.html);
    // another reader cannot read it
    let mut other = Browser::new(&app);
    other.sign_up().await;
    assert_eq!(other.get(&poll).await.status, StatusCode::FORBIDDEN);
}
