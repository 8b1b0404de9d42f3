//! Several real `nanum serve` processes against one database (and one Redis) — the
//! harness that shows which strategies hold when more than one server runs. The
//! multi-instance tests, `nanum loadtest --spawn` and `nanum compare` all start their
//! servers here.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use futures::future::join_all;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// One running instance; killed when dropped, and its index folder and log removed (a
/// failed start has already put the log's tail in its error).
#[derive(Debug)]
pub struct Instance {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Where its stderr goes.
    pub log: PathBuf,
    /// The search index folder the harness gave it (removed with the cluster).
    index_dir: PathBuf,
    child: Child,
}

/// Running instances; killed when dropped.
#[derive(Debug)]
pub struct Cluster {
    /// In start order.
    pub instances: Vec<Instance>,
    binary: PathBuf,
    env: Vec<(String, String)>,
    extras: Vec<Vec<(String, String)>>,
}

/// Extra environment of instance `index` of `count` (e.g. a role).
pub type PerInstance<'a> = &'a (dyn Fn(usize) -> Vec<(String, String)> + Sync);

impl Cluster {
    /// Starts `count` instances of `binary` with `env` plus `APP__INSTANCE__INDEX/COUNT`,
    /// port 0, and `per_instance(i)`. The first is started alone so it runs the
    /// migrations before the others connect.
    ///
    /// # Errors
    ///
    /// An instance that exits or does not print its address within 60 s (its log tail is
    /// in the message).
    pub async fn start(
        binary: &Path,
        count: usize,
        env: &[(String, String)],
        per_instance: PerInstance<'_>,
    ) -> anyhow::Result<Self> {
        let extras: Vec<_> = (0..count).map(per_instance).collect();
        let mut instances = vec![spawn(binary, 0, count, env, extras[0].clone()).await?];
        let rest = join_all((1..count).map(|i| spawn(binary, i, count, env, extras[i].clone()))).await;
        for instance in rest {
            instances.push(instance?);
        }
        Ok(Self { instances, binary: binary.to_owned(), env: env.to_vec(), extras })
    }

    /// Starts instance `index` again with its original settings (after [`Cluster::kill`]).
    ///
    /// # Errors
    ///
    /// As [`Cluster::start`].
    pub async fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        let count = self.instances.len();
        self.instances[index] =
            spawn(&self.binary, index, count, &self.env, self.extras[index].clone()).await?;
        Ok(())
    }

    /// The instances' base addresses.
    pub fn addresses(&self) -> Vec<String> {
        self.instances.iter().map(|i| i.address.clone()).collect()
    }

    /// Kills instance `index` with SIGKILL (no graceful shutdown), for crash tests.
    ///
    /// # Errors
    ///
    /// When the process cannot be signalled.
    pub async fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        self.instances[index].child.kill().await.context("kill instance")
    }
}

impl Instance {
    /// The process id (to pause it with SIGSTOP, say), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SIGKILL now rather than when the child handle drops, so the folders below are no
        // longer written to; an error means it already exited.
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.index_dir);
        // NANUM_KEEP_LOGS=1 keeps each instance's stderr (e.g. with RUST_LOG=strategies=debug
        // to see how long each consumer batch took) and says where it is.
        if std::env::var_os("NANUM_KEEP_LOGS").is_some() {
            eprintln!("instance log kept: {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

async fn spawn(
    binary: &Path,
    index: usize,
    count: usize,
    env: &[(String, String)],
    extra: Vec<(String, String)>,
) -> anyhow::Result<Instance> {
    let log =
        std::env::temp_dir().join(format!("nanum-instance-{}-{index}.log", uuid::Uuid::new_v4().simple()));
    let mut command = Command::new(binary);
    // Each instance owns a search index folder (one writer per folder); `env` may name one.
    let index_dir =
        std::env::temp_dir().join(format!("nanum-index-{}-{index}", uuid::Uuid::new_v4().simple()));
    command
        .arg("serve")
        .env("APP__SEARCH__INDEX_DIR", &index_dir)
        // Every process this crate starts is measured or raced by one client address:
        // per-IP and per-user rate limits would measure themselves. `env` may turn them on.
        .env("APP__RATE_LIMIT__ENABLED", "false")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("APP__SERVER__PORT", "0")
        .env("APP__INSTANCE__INDEX", index.to_string())
        .env("APP__INSTANCE__COUNT", count.to_string())
        // last, so a topology can give workers their own index/count
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true);
    let mut child = command.spawn().with_context(|| format!("start {}", binary.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let address = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("nanum listening on ") {
                return Ok::<_, std::io::Error>(rest.split_whitespace().next().map(str::to_owned));
            }
        }
        Ok(None)
    })
    .await;
    let Ok(Ok(Some(address))) = address else {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<_> = tail.lines().rev().take(20).collect();
        bail!(
            "instance {index} did not start; log tail:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Instance { address, log, index_dir, child })
}
