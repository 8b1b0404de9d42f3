//! Several real `nanum serve` processes against one database (and one Redis), and a crowd
//! of readers spread across them — the harness that shows which strategies hold when more
//! than one server runs. Used by the multi-instance tests and reusable by load commands.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures::future::join_all;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// One running instance.
#[derive(Debug)]
pub struct Instance {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Where its stderr goes.
    pub log: PathBuf,
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
        .env("APP__SEARCH__INDEX_DIR", index_dir)
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
    Ok(Instance { address, log, child })
}

/// What a crowd race produced, read back through the API.
#[derive(Debug, Clone, Default)]
pub struct CrowdReport {
    /// Copies offered.
    pub copies: i64,
    /// Requests sent.
    pub requests: usize,
    /// HTTP status → count.
    pub statuses: BTreeMap<u16, usize>,
    /// Winners stored (admin list).
    pub winners: usize,
    /// Distinct readers among them.
    pub distinct_winners: usize,
    /// `remaining` afterwards.
    pub remaining: i64,
    /// Requests answered 202 `pending` (all settled before the report is returned).
    pub pending: usize,
    /// Wall time of the burst.
    pub elapsed: Duration,
}

impl CrowdReport {
    /// Exactly min(readers, copies) winners, nobody twice, stock consistent, only 201/202/409.
    pub fn holds(&self, readers: usize) -> bool {
        let expected = readers.min(usize::try_from(self.copies).unwrap_or(0));
        let only_expected = self.statuses.keys().all(|s| matches!(s, 201 | 202 | 409));
        self.winners == expected
            && self.distinct_winners == expected
            && self.remaining == self.copies - i64::try_from(expected).unwrap_or(0)
            && only_expected
    }

    /// More winners than copies.
    pub fn over_allocated(&self) -> bool {
        i64::try_from(self.winners).unwrap_or(i64::MAX) > self.copies
    }
}

/// Readers signed up across a cluster, plus the admin, ready to race.
#[derive(Debug)]
pub struct Crowd {
    client: reqwest::Client,
    addresses: Vec<String>,
    admin: String,
    tokens: Vec<String>,
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<Value> {
    let mut req = client.post(url).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let response = req.send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {url} answered {status}: {body}");
    }
    Ok(body)
}

impl Crowd {
    /// Signs up `readers` readers, spread round-robin over the instances, and logs in the
    /// admin (`admin_email` / `admin_password`).
    ///
    /// # Errors
    ///
    /// Any failed sign-up or login.
    pub async fn sign_up(addresses: &[String], readers: usize, admin: (&str, &str)) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let login = |base: String, email: String, password: String| {
            let client = client.clone();
            async move {
                let body = post(
                    &client,
                    &format!("{base}/api/v1/auth/login"),
                    None,
                    &json!({"email": email, "password": password}),
                )
                .await?;
                body["access_token"].as_str().map(str::to_owned).context("no access_token")
            }
        };
        let admin_token = login(addresses[0].clone(), admin.0.to_owned(), admin.1.to_owned()).await?;
        let run = uuid::Uuid::new_v4().simple().to_string();
        let mut tokens = Vec::with_capacity(readers);
        for chunk in (0..readers).collect::<Vec<_>>().chunks(25) {
            let signed = join_all(chunk.iter().map(|&i| {
                let base = addresses[i % addresses.len()].clone();
                let client = client.clone();
                let email = format!("reader{i}-{run}@crowd.test");
                let login = &login;
                async move {
                    post(
                        &client,
                        &format!("{base}/api/v1/users"),
                        None,
                        &json!({"email": email, "password": "crowd-password", "name": format!("reader {i}")}),
                    )
                    .await?;
                    login(base, email, "crowd-password".into()).await
                }
            }))
            .await;
            for token in signed {
                tokens.push(token?);
            }
        }
        Ok(Self { client, addresses: addresses.to_vec(), admin: admin_token, tokens })
    }

    /// Readers signed up.
    pub fn readers(&self) -> usize {
        self.tokens.len()
    }

    /// A new open event of `copies`; every reader applies `attempts_each` times at once,
    /// request `i` going to instance `i % n`; then the totals are read back.
    ///
    /// # Errors
    ///
    /// Failures creating the event or reading the result (not the applications' answers,
    /// which are counted).
    pub async fn race(&self, copies: i64, attempts_each: usize) -> anyhow::Result<CrowdReport> {
        let base = &self.addresses[0];
        let admin = Some(self.admin.as_str());
        let book = post(
            &self.client,
            &format!("{base}/api/v1/books"),
            admin,
            &json!({"title": "나눔 도서", "author": "crowd"}),
        )
        .await?;
        let opens_at = chrono::Utc::now() - chrono::Duration::minutes(1);
        let event = post(
            &self.client,
            &format!("{base}/api/v1/events"),
            admin,
            &json!({"book_id": book["id"], "title": "crowd race", "quantity": copies, "opens_at": opens_at}),
        )
        .await?;
        let event_id = event["id"].as_i64().context("event id")?;
        let requests: Vec<_> = (0..attempts_each).flat_map(|_| self.tokens.iter()).enumerate().collect();
        let started = Instant::now();
        let answers = join_all(requests.iter().map(|(i, token)| {
            let url =
                format!("{}/api/v1/events/{event_id}/applications", self.addresses[i % self.addresses.len()]);
            self.client.post(url).bearer_auth(token).send()
        }))
        .await;
        let elapsed = started.elapsed();
        let mut report = CrowdReport { copies, requests: answers.len(), elapsed, ..CrowdReport::default() };
        let mut pending = Vec::new();
        for answer in answers {
            let status = answer.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
            *report.statuses.entry(status).or_default() += 1;
            if status == 202
                && let Ok(response) = answer
                && let Ok(body) = response.json::<Value>().await
                && let Some(id) = body["application_id"].as_str()
            {
                pending.push(id.to_owned());
            }
        }
        report.pending = pending.len();
        self.wait_settled(&pending).await?;
        self.settle(event_id, &mut report).await?;
        Ok(report)
    }

    /// Polls every pending request until it has a final answer; bounded (60 s).
    ///
    /// # Errors
    ///
    /// A request still pending after the bound — an accepted application was lost.
    pub async fn wait_settled(&self, request_ids: &[String]) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        for id in request_ids {
            loop {
                let url = format!("{}/api/v1/applications/{id}", self.addresses[0]);
                let body: Value = self.client.get(url).bearer_auth(&self.admin).send().await?.json().await?;
                if body["status"] != "pending" {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("request {id} is still pending after 60 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Reads winners and stock back; waits (bounded) for asynchronous strategies to settle.
    async fn settle(&self, event_id: i64, report: &mut CrowdReport) -> anyhow::Result<()> {
        let base = &self.addresses[0];
        let winners: Value = self
            .client
            .get(format!("{base}/api/v1/events/{event_id}/applications"))
            .bearer_auth(&self.admin)
            .send()
            .await?
            .json()
            .await?;
        let users: Vec<i64> = winners["items"]
            .as_array()
            .context("items")?
            .iter()
            .filter_map(|w| w["user_id"].as_i64())
            .collect();
        report.winners = users.len();
        report.distinct_winners = users.iter().collect::<HashSet<_>>().len();
        let event: Value =
            self.client.get(format!("{base}/api/v1/events/{event_id}")).send().await?.json().await?;
        report.remaining = event["remaining"].as_i64().context("remaining")?;
        Ok(())
    }
}
