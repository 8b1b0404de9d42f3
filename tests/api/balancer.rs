//! nanum behind a real HAProxy: real `nanum serve` processes with
//! `server.trusted_proxies = 127.0.0.1/32`, an haproxy of the test's own (config written to a
//! temp dir) balancing them round-robin with `option forwardfor` and a readiness check, and
//! clients bound to other loopback addresses (127.0.0.2, .3, …) so each arrives from an
//! address of its own. The two tests that use haproxy skip when it is not installed
//! (`scripts/services-up haproxy`), failing instead under `CI=true`; the forged-header test
//! talks to an instance directly and always runs.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::json;
use strategies::contract;

/// Logins per client address per minute, on each instance (the limiters live in memory).
const PER_MINUTE: usize = 4;
const INSTANCES: usize = 2;

/// Two clusters of debug builds at once on a small machine would time each other's checks.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An haproxy process; killed (and its config folder removed) when dropped, so a failed
/// assertion leaves nothing running.
struct Haproxy {
    child: Child,
    dir: PathBuf,
    /// The balanced frontend, `http://127.0.0.1:PORT`.
    address: String,
    /// The stats page (CSV at `;csv`), for the servers' state as haproxy sees it.
    stats: String,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// True when an `haproxy` binary runs; otherwise says why the test skips (or panics under CI).
fn haproxy_installed() -> bool {
    let found = Command::new("haproxy").arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if found.is_ok_and(|s| s.success()) {
        return true;
    }
    contract::service_absent("haproxy", "no haproxy binary on PATH; scripts/services-up haproxy installs it");
    false
}

/// A loopback port free right now (haproxy binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The port of `http://127.0.0.1:PORT`.
fn port_of(address: &str) -> u16 {
    address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("an address with a port")
}

/// The shape docs/deploy.md shows: HTTP mode, `X-Forwarded-For` added, round-robin, the
/// readiness probe every 200 ms (down after 2 failures, up after 2 successes). One thread,
/// so sequential requests alternate strictly between the servers.
fn haproxy_config(frontend: u16, stats: u16, backends: &[String]) -> String {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| format!("    server n{i} 127.0.0.1:{} check\n", port_of(b)))
        .collect();
    format!(
        "global
    nbthread 1

defaults
    mode http
    option forwardfor
    timeout connect 500ms
    timeout client 10s
    timeout server 10s
    timeout check 500ms

frontend api
    bind 127.0.0.1:{frontend}
    default_backend nanum

backend nanum
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2
{servers}
listen stats
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /stats
"
    )
}

impl Haproxy {
    /// Starts haproxy in the foreground over `backends` and waits until it sees every one up.
    async fn start(backends: &[String]) -> Self {
        let dir = std::env::temp_dir().join(format!("nanum-haproxy-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let (frontend, stats) = (free_port(), free_port());
        let config = dir.join("haproxy.cfg");
        std::fs::write(&config, haproxy_config(frontend, stats, backends)).unwrap();
        let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
        let child = Command::new("haproxy")
            .arg("-db") // stay in the foreground: the guard owns the process
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        let haproxy = Self {
            child,
            dir,
            address: format!("http://127.0.0.1:{frontend}"),
            stats: format!("http://127.0.0.1:{stats}/stats;csv"),
        };
        let names: Vec<String> = (0..backends.len()).map(|i| format!("n{i}")).collect();
        haproxy
            .wait_for(Duration::from_secs(20), |s| names.iter().all(|n| s.get(n).is_some_and(|v| v == "UP")))
            .await;
        haproxy
    }

    /// Each server of backend `nanum` and its status (`UP`, `DOWN`, `UP 1/2` …).
    async fn statuses(&self) -> std::collections::HashMap<String, String> {
        let Ok(r) = reqwest::get(&self.stats).await else { return Default::default() };
        let text = r.text().await.unwrap_or_default();
        let mut lines = text.lines();
        let header: Vec<&str> =
            lines.next().unwrap_or_default().trim_start_matches("# ").split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (Some(px), Some(sv), Some(status)) = (col("pxname"), col("svname"), col("status")) else {
            return Default::default();
        };
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.get(px) == Some(&"nanum"))
            .filter_map(|f| Some((f.get(sv)?.to_string(), f.get(status)?.to_string())))
            .collect()
    }

    /// Polls the stats until `done`, panicking with haproxy's log after `within`.
    async fn wait_for(
        &self,
        within: Duration,
        done: impl Fn(&std::collections::HashMap<String, String>) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let statuses = self.statuses().await;
            if done(&statuses) {
                return start.elapsed();
            }
            if start.elapsed() > within {
                let log = std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default();
                panic!("haproxy servers {statuses:?} after {within:?}; log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `count` instances, each on a SQLite file of its own (a login of an unknown email is 401 on
/// any of them), trusting 127.0.0.1 as their proxy, with the per-address login limit on.
async fn instances(count: usize) -> nanum_load::Cluster {
    let env: Vec<(String, String)> = [
        ("APP_ENV", "test"),
        ("APP_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
        // read from one comma-separated string, as an orchestrator would set it
        ("APP__SERVER__TRUSTED_PROXIES", "127.0.0.1/32"),
        ("APP__RATE_LIMIT__ENABLED", "true"),
        ("APP__RATE_LIMIT__LOGIN_PER_IP_PER_MINUTE", &PER_MINUTE.to_string()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let dir = std::env::temp_dir().join("nanum-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let database = move |i: usize| {
        let file = dir.join(format!("balancer-{run}-{i}.db"));
        vec![("APP__DATABASE__URL".to_owned(), format!("sqlite://{}?mode=rwc", file.display()))]
    };
    let binary = Path::new(env!("CARGO_BIN_EXE_nanum"));
    nanum_load::Cluster::start(binary, count, &env, &database).await.expect("start nanum")
}

/// A client whose connections leave from `127.0.0.<last>`.
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A login of a fresh unknown email (so only the per-address limit can refuse it) carrying
/// a forged `X-Forwarded-For`; its status.
async fn login_forging(client: &reqwest::Client, base: &str, forged: &str) -> StatusCode {
    let email = format!("nobody-{}@example.com", uuid::Uuid::new_v4().simple());
    client
        .post(format!("{base}/api/v1/auth/login"))
        .header("X-Forwarded-For", forged)
        .json(&json!({ "email": email, "password": "wrong-password" }))
        .send()
        .await
        .expect("login request")
        .status()
}

#[tokio::test]
async fn behind_haproxy_each_client_address_keeps_its_own_login_budget() {
    if !haproxy_installed() {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let cluster = instances(INSTANCES).await;
    let haproxy = Haproxy::start(&cluster.addresses()).await;
    // Round-robin alternates sequential requests, so any run of them gives each instance
    // the same share: an address's budget through the balancer is the per-instance budget
    // times the instances, exactly.
    let budget = PER_MINUTE * INSTANCES;
    for last in [2, 3, 4] {
        let client = client_from(last);
        for i in 0..budget {
            // a forged entry left of what haproxy appends: the walk never reaches it
            let status = login_forging(&client, &haproxy.address, &format!("198.51.100.{i}")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "127.0.0.{last}, login {} of {budget}", i + 1);
        }
        let status = login_forging(&client, &haproxy.address, "198.51.100.99").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "127.0.0.{last} past its budget");
    }
    // the first address is still refused: the others did not share, nor refill, its budget
    let status = login_forging(&client_from(2), &haproxy.address, "203.0.113.1").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_client_that_is_not_a_trusted_proxy_cannot_escape_its_budget_with_a_forged_header() {
    // no haproxy here: the client talks to the instance itself
    let _turn = ONE_AT_A_TIME.lock().await;
    let cluster = instances(1).await;
    let base = &cluster.instances[0].address;
    // straight to the instance from 127.0.0.5, which 127.0.0.1/32 does not trust
    let client = client_from(5);
    for i in 0..PER_MINUTE {
        let status = login_forging(&client, base, &format!("198.51.100.{i}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "login {} of {PER_MINUTE}", i + 1);
    }
    // a new forged address each time, even the trusted proxy's own: still 127.0.0.5's budget
    for forged in ["198.51.100.200", "127.0.0.1", "203.0.113.7, 127.0.0.1"] {
        let status = login_forging(&client, base, forged).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "forged {forged:?}");
    }
    // the limit is 127.0.0.5's, not everyone's
    assert_eq!(login_forging(&client_from(6), base, "198.51.100.1").await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_stopped_instance_leaves_haproxys_rotation_and_requests_keep_succeeding() {
    if !haproxy_installed() {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut cluster = instances(INSTANCES).await;
    let haproxy = Haproxy::start(&cluster.addresses()).await;
    let client = client_from(2);
    let live = |client: &reqwest::Client| {
        let url = format!("{}/health/live", haproxy.address);
        let client = client.clone();
        async move { client.get(url).send().await.map(|r| r.status()).ok() }
    };
    for _ in 0..4 {
        assert_eq!(live(&client).await, Some(StatusCode::OK), "both instances serve");
    }
    cluster.kill(1).await.expect("stop instance 1");
    // two failed checks 200 ms apart; a second is room for a slow machine, three more for CI
    let took = haproxy
        .wait_for(Duration::from_secs(5), |s| s.get("n1").is_some_and(|v| v.starts_with("DOWN")))
        .await;
    println!("instance 1 left the rotation {took:?} after it stopped");
    // every request now reaches the survivor (half would go to the dead one if it were
    // still in rotation)
    for i in 0..20 {
        assert_eq!(live(&client).await, Some(StatusCode::OK), "request {i} after n1 went down");
    }
}
