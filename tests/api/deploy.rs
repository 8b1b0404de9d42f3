//! What an orchestrator relies on (docs/deploy.md): replicas started together on an empty
//! database apply the schema once and all come up; `nanum migrate` is a no-op the second
//! time; a StatefulSet pod's host name gives its index; the management port serves
//! `/metrics` and the probes while the public port stops serving `/metrics`; every answer
//! of `/health/ready`, `nanum --version` and `nanum_build_info` name the build.

use std::{path::PathBuf, process::Stdio, time::Duration};

use nanum::{build_info, configuration, startup::Application};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, Statement};
use strategies::contract;

use crate::helpers::{body, fresh_index_dir, spawn_app};

/// A `nanum` process with its output in files (read after it printed or exited).
struct Process {
    child: tokio::process::Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Process {
    fn start(args: &[&str], env: &[(&str, String)]) -> Self {
        let dir = std::env::temp_dir().join("nanum-tests");
        std::fs::create_dir_all(&dir).expect("temp dir");
        let name = uuid::Uuid::new_v4().simple().to_string();
        let (stdout, stderr) = (dir.join(format!("{name}.out")), dir.join(format!("{name}.err")));
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nanum"))
            .args(args)
            .env("APP_ENV", "test")
            .env("RUST_LOG", "info,sqlx=warn")
            .env("APP__SERVER__PORT", "0")
            .env("APP__SEARCH__INDEX_DIR", fresh_index_dir())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .kill_on_drop(true)
            .spawn()
            .expect("start nanum");
        Self { child, stdout, stderr }
    }

    fn output(&self) -> (String, String) {
        let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        (read(&self.stdout), read(&self.stderr))
    }

    /// The address it printed, waiting up to two minutes (five debug builds migrating at
    /// once on a shared machine).
    async fn address(&mut self) -> String {
        for _ in 0..1200 {
            let (out, _) = self.output();
            if let Some(rest) = out.lines().find_map(|l| l.strip_prefix("nanum listening on ")) {
                return rest.split_whitespace().next().expect("address").to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nanum exited with {status}:\n{}", self.output().1);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("nanum did not start:\n{}", self.output().1)
    }

    /// Waits for a command to finish; its stdout.
    async fn finished(mut self) -> String {
        let status = tokio::time::timeout(Duration::from_secs(120), self.child.wait()).await;
        let (out, err) = self.output();
        assert!(matches!(status, Ok(Ok(s)) if s.success()), "nanum failed: {status:?}\n{out}\n{err}");
        out
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.stdout);
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// (applied, known) from the first "applied N of M" (the serve log's line or `nanum
/// migrate`'s answer).
fn applied(text: &str) -> (usize, usize) {
    let counts = text.split("applied ").skip(1).find_map(|rest| {
        let words: Vec<_> = rest.split_whitespace().take(3).collect();
        match words[..] {
            [n, "of", m] => Some((n.parse().ok()?, m.parse().ok()?)),
            _ => None,
        }
    });
    counts.unwrap_or_else(|| panic!("no \"applied N of M\" in:\n{text}"))
}

/// The migrations table as (version, applied_at), for before/after comparisons.
async fn migration_rows(url: &str) -> Vec<(String, i64)> {
    let db = Database::connect(url).await.expect("connect");
    let sql = "SELECT version, applied_at FROM seaql_migrations ORDER BY version";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("rows");
    rows.iter()
        .map(|r| (r.try_get_by_index::<String>(0).expect("version"), r.try_get_by_index(1).expect("at")))
        .collect()
}

#[tokio::test]
async fn five_servers_started_together_on_a_fresh_mariadb_database_apply_the_schema_once() {
    let Some(url) = contract::fresh_mariadb_url("migrate").await else { return };
    let env = [("APP__DATABASE__URL", url.clone())];
    let mut servers: Vec<_> = (0..5).map(|_| Process::start(&["serve"], &env)).collect();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let mut counts = Vec::new();
    for server in &mut servers {
        let address = server.address().await;
        let r = client.get(format!("{address}/health/ready")).send().await.expect("ready");
        assert_eq!(r.status(), StatusCode::OK, "{}", server.output().1);
        counts.push(applied(&server.output().1));
    }
    let known = counts[0].1;
    let mut applied_by: Vec<_> = counts.iter().map(|(n, _)| *n).collect();
    applied_by.sort_unstable();
    // One of them applied every migration, under the lock; the others found none pending.
    assert_eq!(applied_by, [0, 0, 0, 0, known], "{counts:?}");
    let rows = migration_rows(&url).await;
    assert_eq!(rows.len(), known, "{rows:?}");

    let out = Process::start(&["migrate"], &env).finished().await;
    assert_eq!(applied(&out), (0, known), "{out}");
    assert_eq!(migration_rows(&url).await, rows, "a second migrate changes nothing");
}

#[tokio::test]
async fn migrate_commands_run_together_on_one_sqlite_file_apply_the_schema_once() {
    let file = std::env::temp_dir().join("nanum-tests").join(format!("{}.db", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let env = [("APP__DATABASE__URL", url.clone())];
    let runs: Vec<_> = (0..3).map(|_| Process::start(&["migrate"], &env)).collect();
    let mut counts = Vec::new();
    for run in runs {
        counts.push(applied(&run.finished().await));
    }
    let known = counts[0].1;
    assert_eq!(counts.iter().map(|(n, _)| n).sum::<usize>(), known, "{counts:?}");
    assert_eq!(migration_rows(&url).await.len(), known);
}

#[tokio::test]
async fn a_statefulset_pod_hostname_sets_the_instance_index() {
    let file = std::env::temp_dir().join("nanum-tests").join(format!("{}.db", uuid::Uuid::new_v4().simple()));
    let env = [
        ("APP__DATABASE__URL", format!("sqlite://{}?mode=rwc", file.display())),
        ("APP__INSTANCE__INDEX_FROM_HOSTNAME", "true".to_owned()),
        ("APP__INSTANCE__COUNT", "5".to_owned()),
        ("HOSTNAME", "nanum-worker-3".to_owned()),
    ];
    let mut server = Process::start(&["serve"], &env);
    let address = server.address().await;
    let b: serde_json::Value = reqwest::get(format!("{address}/api/v1/strategy"))
        .await
        .expect("strategy")
        .json()
        .await
        .expect("json");
    assert_eq!(b["instance"], serde_json::json!({ "index": 3, "count": 5 }), "{b}");
}

#[tokio::test]
async fn the_management_port_serves_metrics_and_probes_and_the_public_port_no_metrics() {
    let mut settings = configuration::load_for("test", &[]).expect("settings");
    let file = std::env::temp_dir().join("nanum-tests").join(format!("{}.db", uuid::Uuid::new_v4().simple()));
    settings.database.url = format!("sqlite://{}?mode=rwc", file.display());
    settings.search.index_dir = fresh_index_dir();
    settings.server.management_port = Some(0);
    let app = Application::build(settings).await.expect("build");
    let public = format!("http://127.0.0.1:{}", app.port());
    let management = format!("http://127.0.0.1:{}", app.management_port().expect("management port"));
    tokio::spawn(app.run_until_stopped());
    let get = |url: String| async move { reqwest::get(url).await.expect("request") };

    for path in ["/health/live", "/health/ready"] {
        assert_eq!(get(format!("{management}{path}")).await.status(), StatusCode::OK, "{path}");
        assert_eq!(get(format!("{public}{path}")).await.status(), StatusCode::OK, "public {path}");
    }
    let metrics = get(format!("{management}/metrics")).await;
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.expect("text");
    let info = text.lines().find(|l| l.starts_with("nanum_build_info{")).unwrap_or_else(|| panic!("{text}"));
    assert!(info.contains(&format!("commit=\"{}\"", build_info::COMMIT)), "{info}");
    assert!(info.contains(&format!("version=\"{}\"", build_info::VERSION)), "{info}");
    assert!(info.contains("strategy=\"pessimistic-lock\"") && info.ends_with(" 1"), "{info}");
    assert_eq!(get(format!("{public}/metrics")).await.status(), StatusCode::NOT_FOUND);
    // Only what it is for: the API is not on the management port.
    assert_eq!(get(format!("{management}/api/v1/strategy")).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_management_port_metrics_stay_on_the_public_port() {
    let app = spawn_app().await;
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.expect("text").contains("nanum_build_info{"));
}

#[tokio::test]
async fn readiness_names_the_build_that_answered() {
    let app = spawn_app().await;
    let b = body(app.get("/health/ready", None).await).await;
    assert_eq!(b["version"], env!("CARGO_PKG_VERSION"), "{b}");
    assert_eq!(b["commit"], build_info::COMMIT, "{b}");
}

#[tokio::test]
async fn nanum_version_names_the_commit_it_was_built_from() {
    let out = Process::start(&["--version"], &[]).finished().await;
    assert_eq!(out.trim(), format!("nanum {} (commit {})", env!("CARGO_PKG_VERSION"), build_info::COMMIT));
    // Built from a git checkout (the tests are), the commit is the checkout's HEAD.
    let head = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short=12", "HEAD"])
        .output();
    if let Some(head) = head.ok().filter(|h| h.status.success()) {
        assert_eq!(build_info::COMMIT, String::from_utf8_lossy(&head.stdout).trim());
    }
}
