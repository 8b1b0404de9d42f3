//! What the real binary writes: at `RUST_LOG=debug`, a sign-up, a login, a failed login, an
//! authenticated request and a readiness check (Redis with a password in its URL) leave no
//! password, token, JWT secret or Redis password in stdout or stderr; every request's lines
//! carry its request id, and each request has one access line.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::{Value, json};
use strategies::contract;
use tokio::process::{Child, Command};

/// A `nanum serve` process whose stdout and stderr go to files.
struct Logged {
    child: Child,
    address: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// Secrets the run uses; each must never reach the logs.
struct Secrets {
    password: String,
    wrong_password: String,
    jwt_secret: String,
    redis_password: String,
}

impl Secrets {
    fn new() -> Self {
        let fresh = |what: &str| format!("{what}-{}", uuid::Uuid::new_v4().simple());
        Self {
            password: fresh("pw"),
            wrong_password: fresh("wrongpw"),
            jwt_secret: fresh("jwtsecret"),
            redis_password: fresh("redispw"),
        }
    }
}

async fn start(secrets: &Secrets, format: &str) -> Logged {
    let dir = std::env::temp_dir().join("nanum-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let name = uuid::Uuid::new_v4().simple().to_string();
    let stdout = dir.join(format!("{name}.stdout"));
    let stderr = dir.join(format!("{name}.stderr"));
    // The local Redis has no password: its `default` user accepts any with AUTH default <pw>,
    // so the password is really sent, and the server really uses the URL.
    let redis = contract::test_redis_url().replacen(
        "redis://",
        &format!("redis://default:{}@", secrets.redis_password),
        1,
    );
    let child = Command::new(env!("CARGO_BIN_EXE_nanum"))
        .arg("serve")
        .env("APP_ENV", "test")
        .env("RUST_LOG", "debug")
        .env("APP__LOG__FORMAT", format)
        .env("APP__DATABASE__URL", format!("sqlite://{}?mode=rwc", dir.join(format!("{name}.db")).display()))
        .env("APP__SEARCH__INDEX_DIR", dir.join(format!("{name}.index")))
        .env("APP__SERVER__PORT", "0")
        .env("APP__REDIS__URL", &redis)
        .env("APP__AUTH__JWT_SECRET", &secrets.jwt_secret)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .kill_on_drop(true)
        .spawn()
        .expect("start nanum");
    let mut address = None;
    for _ in 0..600 {
        let out = std::fs::read_to_string(&stdout).unwrap_or_default();
        if let Some(line) = out.lines().find_map(|l| l.strip_prefix("nanum listening on ")) {
            address = line.split_whitespace().next().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let address = address.unwrap_or_else(|| {
        panic!("nanum did not start:\n{}", std::fs::read_to_string(&stderr).unwrap_or_default())
    });
    Logged { child, address, stdout, stderr }
}

/// Runs the requests; returns the request id sent with the authenticated one and the output.
// Long on purpose: one scenario told top to bottom (set up, act, check), as a reader of
// the test expects it.
async fn exercise(secrets: &Secrets, format: &str) -> (String, String, String) {
    let mut server = start(secrets, format).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let url = |path: &str| format!("{}{path}", server.address);
    let email = format!("logs-{}@example.com", uuid::Uuid::new_v4().simple());
    let r = client
        .post(url("/api/v1/users"))
        .json(&json!({ "email": email, "password": secrets.password, "name": "Reader" }))
        .send()
        .await
        .expect("sign-up");
    assert_eq!(r.status(), 201);
    let r = client
        .post(url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": secrets.wrong_password }))
        .send()
        .await
        .expect("failed login");
    assert_eq!(r.status(), 401);
    let r = client
        .post(url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": secrets.password }))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.expect("json")["access_token"].as_str().expect("token").to_owned();
    let request_id = format!("logs-test-{}", uuid::Uuid::new_v4().simple());
    let r = client
        .get(url("/api/v1/applications/1"))
        .bearer_auth(&token)
        .header("X-Request-Id", &request_id)
        .send()
        .await
        .expect("authenticated request");
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-request-id"], request_id.as_str(), "the request id is echoed");
    // An insane request id is replaced, never echoed (nor logged).
    let r = client
        .get(url("/health/live"))
        .header("X-Request-Id", "no spaces; or quotes\"")
        .send()
        .await
        .expect("live");
    assert!(r.headers()["x-request-id"].to_str().is_ok_and(|id| id.len() == 32), "a generated id");
    let r = client.get(url("/health/ready")).send().await.expect("ready");
    assert_eq!(r.json::<Value>().await.expect("json")["redis"], "ok", "Redis took the URL with its password");
    server.child.kill().await.expect("stop nanum");
    let stdout = std::fs::read_to_string(&server.stdout).expect("stdout");
    let stderr = std::fs::read_to_string(&server.stderr).expect("stderr");
    let _ = std::fs::remove_file(&server.stdout);
    let _ = std::fs::remove_file(&server.stderr);
    for secret in
        [&secrets.password, &secrets.wrong_password, &secrets.jwt_secret, &secrets.redis_password, &token]
    {
        assert!(!stdout.contains(secret.as_str()), "stdout carries a secret");
        assert!(!stderr.contains(secret.as_str()), "stderr carries a secret");
    }
    // …but the run did log (debug level, the Redis URL redacted, one access line per request).
    assert!(stdout.contains("redis redis://default:***@"), "the Redis URL, redacted, at start-up:\n{stdout}");
    assert!(stderr.lines().count() > 10, "debug logging was on:\n{stderr}");
    assert!(!token.is_empty() && token.len() > 20);
    (request_id, stdout, stderr)
}

#[tokio::test]
async fn no_password_token_or_secret_reaches_the_human_logs() {
    let secrets = Secrets::new();
    let (request_id, _, stderr) = exercise(&secrets, "human").await;
    let mine: Vec<_> = stderr.lines().filter(|l| l.contains(&request_id)).collect();
    let access: Vec<_> = mine.iter().filter(|l| l.contains("nanum::access")).collect();
    assert_eq!(access.len(), 1, "one access line for the request:\n{}", mine.join("\n"));
    let line = access[0];
    for part in ["method=GET", "route=/api/v1/applications/{id}", "status=404", "latency_ms=", "user_id="] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
}

#[tokio::test]
async fn no_password_token_or_secret_reaches_the_json_logs_and_every_line_of_a_request_names_it() {
    let secrets = Secrets::new();
    let (request_id, _, stderr) = exercise(&secrets, "json").await;
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    // Every line written inside the request's span names its id.
    let mine: Vec<_> = lines.iter().filter(|l| l["span"]["request_id"] == request_id.as_str()).collect();
    let access: Vec<_> = mine.iter().filter(|l| l["target"] == "nanum::access").collect();
    assert_eq!(access.len(), 1, "one access line: {mine:?}");
    let fields = &access[0]["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["route"], "/api/v1/applications/{id}");
    assert_eq!(fields["status"], 404);
    assert!(fields["latency_ms"].as_f64().is_some(), "{fields}");
    assert!(fields["user_id"].as_i64().is_some(), "{fields}");
    // One access line per request: six requests were made.
    let all_access = lines.iter().filter(|l| l["target"] == "nanum::access").count();
    assert_eq!(all_access, 6, "access lines");
}
