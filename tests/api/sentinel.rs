//! A Redis primary, its replica and three sentinels of the test's own (the shared Redis on
//! 6379 is never touched), for the failover tests in `redis_ha`. Everything is started on
//! free ports under a temporary folder and killed when the set is dropped.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

/// The name the sentinels watch.
pub(crate) const MASTER: &str = "nanum";

/// The sentinels call a primary down after this long without an answer.
const DOWN_AFTER_MS: u64 = 1_000;

pub(crate) struct SentinelSet {
    dir: PathBuf,
    /// Port of each data node; index 0 starts as the primary.
    pub(crate) nodes: Vec<u16>,
    node_children: Vec<Option<Child>>,
    pub(crate) sentinels: Vec<u16>,
    _sentinel_children: Vec<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

fn spawn(args: &[String]) -> Child {
    Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start redis-server (installed by scripts/services-up)")
}

pub(crate) async fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .await
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn wait_until(what: &str, bound: Duration, mut ready: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !ready().await {
        assert!(Instant::now() < deadline, "{what} within {bound:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl SentinelSet {
    /// A primary, one replica in sync with it, and three sentinels that know both and each
    /// other (so they can elect a leader and fail over).
    pub(crate) async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("nanum-sentinel-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("sentinel folder");
        let nodes = vec![free_port(), free_port()];
        let mut node_children = Vec::new();
        for (i, port) in nodes.iter().enumerate() {
            let mut args: Vec<String> =
                ["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"]
                    .map(String::from)
                    .to_vec();
            args.extend([
                "--dir".into(),
                dir.display().to_string(),
                "--dbfilename".into(),
                format!("n{i}.rdb"),
            ]);
            if i > 0 {
                args.extend(["--replicaof".into(), "127.0.0.1".into(), nodes[0].to_string()]);
            }
            node_children.push(Some(spawn(&args)));
        }
        let sentinels = vec![free_port(), free_port(), free_port()];
        let mut sentinel_children = Vec::new();
        for port in &sentinels {
            // A sentinel rewrites its configuration file: each has its own.
            let conf = dir.join(format!("sentinel-{port}.conf"));
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nsentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {MASTER} 10000\nsentinel parallel-syncs {MASTER} 1\n",
                dir = dir.display(),
                primary = nodes[0],
            );
            std::fs::write(&conf, text).expect("sentinel configuration");
            sentinel_children.push(spawn(&[conf.display().to_string(), "--sentinel".into()]));
        }
        let set = Self { dir, nodes, node_children, sentinels, _sentinel_children: sentinel_children };
        let replica = set.nodes[1];
        wait_until("the replica synced", Duration::from_secs(20), async || {
            cli(replica, &["INFO", "replication"]).await.contains("master_link_status:up")
        })
        .await;
        for &sentinel in &set.sentinels {
            wait_until(
                "every sentinel sees the replica and the other two",
                Duration::from_secs(30),
                async || {
                    let replicas = cli(sentinel, &["SENTINEL", "REPLICAS", MASTER]).await;
                    let peers = cli(sentinel, &["SENTINEL", "SENTINELS", MASTER]).await;
                    replicas.contains(&replica.to_string()) && peers.matches("runid").count() >= 2
                },
            )
            .await;
        }
        set
    }

    /// `redis-sentinel://…/nanum`: what `redis.url` is set to.
    pub(crate) fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis-sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// The port the first sentinel names as primary.
    pub(crate) async fn primary(&self) -> Option<u16> {
        let answer = cli(self.sentinels[0], &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]).await;
        answer.lines().nth(1).and_then(|p| p.trim().parse().ok())
    }

    /// SIGKILLs the node serving as primary; returns its port.
    pub(crate) async fn kill_primary(&mut self) -> u16 {
        let port = self.primary().await.expect("a primary");
        let i = self.nodes.iter().position(|&p| p == port).expect("a node of ours");
        let mut child = self.node_children[i].take().expect("the primary runs");
        child.kill().await.expect("SIGKILL the primary");
        port
    }

    /// Waits until the sentinels name a primary other than `old`; bounded.
    pub(crate) async fn promoted_after(&self, old: u16, bound: Duration) -> u16 {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(port) = self.primary().await.filter(|&p| p != old) {
                return port;
            }
            assert!(Instant::now() < deadline, "no replica promoted within {bound:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        for child in self.node_children.iter_mut().flatten() {
            let _ = child.start_kill();
        }
        for child in &mut self._sentinel_children {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
