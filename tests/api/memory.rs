//! Memory stays bounded under abuse, in the real binary (its own process, so its resident
//! set and its metrics recorder are its own):
//!
//! - at the production argon2 cost it takes 10,000 failed logins with distinct 1 KB emails,
//!   failed logins with distinct emails of the longest accepted length, and 100 concurrent
//!   logins; its peak resident set (`VmHWM`) must stay under 150 MB;
//! - 10,000 requests with distinct invented methods, paths and header values leave `/metrics`
//!   under 256 KB, the resident set within 16 MB of idle, and every log line under 1 KB.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const LIMIT_MB: f64 = 150.0;
const LONG_EMAILS: usize = 10_000;
/// Each costs one argon2 run (a dummy hash) at the production cost, ~0.2 s in a debug build
/// on this 2-core machine: sized so the test stays under a minute. (The counter's own bound
/// is shown with 10,000 keys by the unit tests in `src/limits.rs`.)
const VALID_EMAILS: usize = 200;
const CONCURRENT: usize = 100;

/// `VmRSS` and `VmHWM` (peak) of `pid` in MB.
fn resident_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A `nanum serve` on a fresh SQLite file in `dir` with `env` on top of the test preset,
/// its stderr written to `stderr` (or dropped): the child, its pid and its base URL.
async fn serve(
    dir: &Path,
    env: &[(&str, &str)],
    stderr: Option<&Path>,
) -> (tokio::process::Child, u32, String) {
    let stderr = match stderr {
        Some(path) => Stdio::from(std::fs::File::create(path).expect("stderr file")),
        None => Stdio::null(),
    };
    let mut child = tokio::process::Command::new(Path::new(env!("CARGO_BIN_EXE_nanum")))
        .arg("serve")
        .env("APP_ENV", "test")
        .env("APP_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
        .env("APP__DATABASE__URL", format!("sqlite://{}?mode=rwc", dir.join("n.db").display()))
        .env("APP__SEARCH__INDEX_DIR", dir.join("index"))
        .env("APP__SERVER__PORT", "0")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn nanum");
    let pid = child.id().expect("pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("started within 60 s")
        .expect("stdout")
        .expect("a line");
    let base =
        line.strip_prefix("nanum listening on ").and_then(|r| r.split_whitespace().next()).expect(&line);
    (child, pid, base.to_owned())
}

fn fresh_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nanum-{what}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

// Long on purpose: one scenario told top to bottom (set up, act, check), as a reader of
// the test expects it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_under_150_mb_through_failed_login_floods_and_concurrent_logins() {
    let dir = fresh_dir("memory");
    let env = [
        // The production cost: what an unbounded number of concurrent hashes would multiply.
        ("APP__AUTH__ARGON2__MEMORY_KIB", "19456"),
        ("APP__AUTH__ARGON2__ITERATIONS", "2"),
        // Per-IP limits off: one test client stands for many attackers' addresses, so every
        // email reaches the failed-login counter.
        ("APP__RATE_LIMIT__ENABLED", "false"),
        // Long enough that all 100 concurrent logins are hashed, one slot after another.
        ("APP__AUTH__HASH_MAX_WAIT_MS", "60000"),
        ("RUST_LOG", "warn"),
    ];
    let (mut child, pid, base) = serve(&dir, &env, None).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("client");
    let started = Instant::now();
    let (idle, _) = resident_mb(pid);

    let login = |email: String, password: &'static str| {
        let (client, url) = (client.clone(), format!("{base}/api/v1/auth/login"));
        async move {
            client
                .post(url)
                .json(&json!({ "email": email, "password": password }))
                .send()
                .await
                .expect("login")
                .status()
        }
    };
    let flood = |emails: Vec<String>, expected: StatusCode| {
        let login = &login;
        async move {
            let statuses: Vec<_> =
                futures::stream::iter(emails.into_iter().map(|e| login(e, "wrong-password")))
                    .buffer_unordered(32)
                    .collect()
                    .await;
            let wrong = statuses.iter().filter(|s| **s != expected).count();
            assert_eq!(wrong, 0, "expected every answer {expected}");
        }
    };

    // 10,000 distinct 1 KB emails: refused by length (422) before anything is stored.
    let long: Vec<_> = (0..LONG_EMAILS).map(|i| format!("{i:08}{}@example.com", "x".repeat(1000))).collect();
    flood(long, StatusCode::UNPROCESSABLE_ENTITY).await;
    let (after_long, _) = resident_mb(pid);

    // Distinct emails of the longest accepted length: each is remembered by the counter.
    let valid: Vec<_> = (0..VALID_EMAILS).map(|i| format!("{i:08}{}@example.com", "y".repeat(230))).collect();
    flood(valid, StatusCode::UNAUTHORIZED).await;
    let (after_valid, _) = resident_mb(pid);

    // 100 concurrent logins of distinct unknown emails: each is an argon2 run of 19 MiB (the
    // dummy hash), which nothing but the hashing slots keeps from running all at once.
    let together = (0..CONCURRENT).map(|i| login(format!("crowd{i}@example.com"), "wrong-password"));
    let statuses = futures::future::join_all(together).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");

    let (rss, peak) = resident_mb(pid);
    let _ = child.start_kill();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "resident MB: idle {idle:.1}, after {LONG_EMAILS} 1 KB-email logins {after_long:.1}, after {VALID_EMAILS} \
         valid-email failures {after_valid:.1}, after {CONCURRENT} concurrent logins {rss:.1}; peak {peak:.1} \
         (limit {LIMIT_MB}); {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(peak < LIMIT_MB, "peak resident {peak:.1} MB ≥ {LIMIT_MB} MB");
}

/// Distinct requests sent by the label test, and the length of each invented part.
const DISTINCT: usize = 10_000;
const INVENTED_LEN: usize = 1_000;
const METRICS_LIMIT_BYTES: usize = 256 * 1024;
const GROWTH_LIMIT_MB: f64 = 16.0;
const LOG_LINE_LIMIT_BYTES: usize = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_paths_and_headers_leave_metrics_memory_and_log_lines_bounded() {
    let dir = fresh_dir("labels");
    let log = dir.join("stderr.log");
    let env = [("RUST_LOG", "info,sqlx=warn"), ("APP__LOG__FORMAT", "json")];
    let (mut child, pid, base) = serve(&dir, &env, Some(&log)).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("client");
    let warm =
        client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("body");
    let (idle, _) = resident_mb(pid);
    let started = Instant::now();
    let filler = "X".repeat(INVENTED_LEN);
    let send = |i: usize| {
        // every third request a standard method, so matched routes see invented paths too
        let method = match i % 3 {
            0 => reqwest::Method::GET,
            _ => reqwest::Method::from_bytes(format!("M{i:06}{filler}").as_bytes()).expect("a token"),
        };
        let path = match i % 2 {
            0 => "/health/live".to_owned(),
            _ => format!("/x{i}/{filler}"),
        };
        let url = format!("{base}{path}?q={i}{filler}");
        let request = client
            .request(method, url)
            .header("User-Agent", format!("agent-{i}-{filler}"))
            .header("X-Request-Id", format!("id-{i}-{filler}"))
            .header(format!("x-invented-{i}"), format!("{i}{filler}"));
        async move { request.send().await.expect("an answer, never a dropped connection").status() }
    };
    let statuses: Vec<StatusCode> =
        futures::stream::iter((0..DISTINCT).map(send)).buffer_unordered(16).collect().await;
    assert!(statuses.iter().all(|s| s.is_client_error() || s.is_success()), "{statuses:?}");
    let metrics =
        client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("body");
    let (rss, _) = resident_mb(pid);
    let _ = child.start_kill();
    let _ = child.wait().await;
    let text = std::fs::read_to_string(&log).expect("log");
    let longest = text.lines().map(str::len).max().unwrap_or(0);
    let access = text.lines().filter(|l| l.contains("nanum::access")).count();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{DISTINCT} invented requests in {:.1} s: /metrics {} B before, {} B after (limit {METRICS_LIMIT_BYTES}); \
         resident {idle:.1} → {rss:.1} MB (limit +{GROWTH_LIMIT_MB}); {access} access lines, longest log line \
         {longest} B (limit {LOG_LINE_LIMIT_BYTES})",
        started.elapsed().as_secs_f64(),
        warm.len(),
        metrics.len()
    );
    assert!(metrics.len() < METRICS_LIMIT_BYTES, "/metrics is {} bytes", metrics.len());
    assert!(!metrics.contains(&filler), "request data became a label");
    assert!(rss - idle < GROWTH_LIMIT_MB, "resident set grew {:.1} MB", rss - idle);
    assert!(access >= DISTINCT, "one access line per request: {access}");
    assert!(longest < LOG_LINE_LIMIT_BYTES, "a log line of {longest} bytes");
}
