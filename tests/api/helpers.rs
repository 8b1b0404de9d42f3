//! `spawn_app()` and friends (after zero-to-production): a running server on a free port,
//! a client, and shortcuts for the accounts and records most tests need.

use std::time::Duration;

use chrono::{DateTime, Utc};
use nanum::{configuration, startup::Application};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use strategies::{StrategyName, contract};

/// A running server and what a test needs to talk to it.
pub(crate) struct TestApp {
    pub(crate) address: String,
    pub(crate) client: reqwest::Client,
    pub(crate) settings: configuration::Settings,
}

/// A server on a fresh SQLite file with the default strategy (no service needed).
pub(crate) async fn spawn_app() -> TestApp {
    let dir = std::env::temp_dir().join("nanum-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()));
    spawn_with(&format!("sqlite://{}?mode=rwc", file.display()), StrategyName::PessimisticLock).await
}

/// A server on a fresh MariaDB database, or `None` (skipped, or failing under CI) when
/// MariaDB is absent.
pub(crate) async fn spawn_on_mariadb(strategy: StrategyName) -> Option<TestApp> {
    let url = contract::fresh_mariadb_url("api").await?;
    Some(spawn_with(&url, strategy).await)
}

/// A server with the given database URL and strategy, `config/test.toml` for the rest
/// (and the test Redis for the Redis strategies).
pub(crate) async fn spawn_with(database_url: &str, strategy: StrategyName) -> TestApp {
    spawn_configured(database_url, strategy, |_| {}).await
}

/// As [`spawn_with`], with a last say on the settings.
pub(crate) async fn spawn_configured(
    database_url: &str,
    strategy: StrategyName,
    configure: impl FnOnce(&mut configuration::Settings),
) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt().with_env_filter("info,sqlx=warn").with_test_writer().try_init();
    }
    let mut settings = configuration::load_for("test", &[]).expect("load test configuration");
    settings.database.url = database_url.to_owned();
    settings.concurrency.strategy = strategy;
    settings.server.port = 0;
    // Each server owns its index folder (tantivy allows one writer per folder).
    settings.search.index_dir = fresh_index_dir();
    if strategy.needs().redis {
        settings.redis.url = contract::test_redis_url();
        settings.redis.key_prefix = contract::unique_prefix("api");
        // The contract is about correctness; a busy CI machine must not turn into 503s.
        settings.concurrency.redis_lock.max_wait_ms = 60_000;
    }
    configure(&mut settings);
    let app = Application::build(settings.clone()).await.expect("build the app");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    TestApp { address, client, settings }
}

/// `count` real `nanum serve` processes on `env` (`per_instance` adds settings for one of
/// them), a client, and an admin token from the first.
pub(crate) async fn start_processes(
    count: usize,
    env: &[(String, String)],
    per_instance: nanum_load::cluster::PerInstance<'_>,
) -> (nanum_load::Cluster, reqwest::Client, String) {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_nanum"));
    let cluster = nanum_load::Cluster::start(binary, count, env, per_instance).await.expect("start nanum");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let settings = configuration::load_for("test", &[]).unwrap();
    let (base, email) = (&cluster.instances[0].address, &settings.auth.admin_email);
    let admin = nanum_load::api::login(&client, base, email, settings.auth.admin_password.expose())
        .await
        .expect("admin login");
    (cluster, client, admin)
}

/// A new, empty folder name for a search index.
pub(crate) fn fresh_index_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("nanum-tests").join(format!("{}.index", uuid::Uuid::new_v4().simple()))
}

/// Parses a response body as JSON (the contract says every body is JSON).
pub(crate) async fn body(response: Response) -> Value {
    response.json().await.expect("a JSON body")
}

/// Asserts status and `error` code of an error answer, returning the body.
pub(crate) async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "expected {status} {code}");
    let body = body(response).await;
    assert_eq!(body["error"], code, "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "message missing: {body}");
    body
}

impl TestApp {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub(crate) async fn post(&self, path: &str, token: Option<&str>, json: &Value) -> Response {
        let mut req = self.client.post(self.url(path)).json(json);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// Signs up; returns the new user's id.
    pub(crate) async fn register(&self, email: &str, password: &str) -> i64 {
        let r = self
            .post("/api/v1/users", None, &json!({ "email": email, "password": password, "name": "Reader" }))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "sign-up of {email}");
        body(r).await["id"].as_i64().expect("id")
    }

    /// Logs in; returns the access token.
    pub(crate) async fn login(&self, email: &str, password: &str) -> String {
        let r = self.post("/api/v1/auth/login", None, &json!({ "email": email, "password": password })).await;
        assert_eq!(r.status(), StatusCode::OK, "login of {email}");
        body(r).await["access_token"].as_str().expect("token").to_owned()
    }

    /// A new reader: (id, token).
    pub(crate) async fn reader(&self) -> (i64, String) {
        let email = format!("reader-{}@example.com", uuid::Uuid::new_v4().simple());
        let id = self.register(&email, "correct horse").await;
        (id, self.login(&email, "correct horse").await)
    }

    /// The bootstrap admin's token.
    pub(crate) async fn admin_token(&self) -> String {
        self.login(&self.settings.auth.admin_email.clone(), self.settings.auth.admin_password.expose()).await
    }

    /// A book created by the admin; returns its id.
    pub(crate) async fn book(&self, admin: &str) -> i64 {
        let r = self
            .post("/api/v1/books", Some(admin), &json!({ "title": "채식주의자", "author": "한강" }))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        body(r).await["id"].as_i64().expect("book id")
    }

    /// An event of `quantity` copies opening at `opens_at`; returns its id.
    pub(crate) async fn event(
        &self,
        admin: &str,
        quantity: i32,
        opens_at: DateTime<Utc>,
        closes_at: Option<DateTime<Utc>>,
    ) -> i64 {
        let book = self.book(admin).await;
        let r = self
            .post(
                "/api/v1/events",
                Some(admin),
                &json!({ "book_id": book, "title": "나눔", "quantity": quantity, "opens_at": opens_at, "closes_at": closes_at }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        body(r).await["id"].as_i64().expect("event id")
    }

    /// An event open since a minute ago.
    pub(crate) async fn open_event(&self, admin: &str, quantity: i32) -> i64 {
        self.event(admin, quantity, Utc::now() - chrono::Duration::minutes(1), None).await
    }

    /// `POST /events/{id}/applications` with an optional Idempotency-Key.
    pub(crate) async fn apply(&self, event: i64, token: &str, key: Option<&str>) -> Response {
        let mut req =
            self.client.post(self.url(&format!("/api/v1/events/{event}/applications"))).bearer_auth(token);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.expect("request")
    }
}
