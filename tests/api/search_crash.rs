//! Killing the server between a book write and its indexing loses nothing: real `nanum
//! serve` processes, SIGKILLed, restarted on the same database and index folder, and the
//! index catches up with every write (creates, updates, deletes) from the outbox.

use std::time::{Duration, Instant};

use futures::future::join_all;
use nanum_load::Cluster;
use serde_json::{Value, json};

use crate::helpers::{fresh_index_dir, start_processes};

/// A server process on `env`, plus an admin token for it.
struct Server {
    cluster: Cluster,
    client: reqwest::Client,
    admin: String,
}

impl Server {
    async fn start(env: &[(String, String)], sync: bool) -> Self {
        let mut env = env.to_vec();
        env.push(("APP__SEARCH__SYNC_ENABLED".into(), sync.to_string()));
        let (cluster, client, admin) = start_processes(1, &env, &|_| Vec::new()).await;
        Self { cluster, client, admin }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cluster.instances[0].address)
    }

    async fn create(&self, title: String) -> i64 {
        let r = self
            .client
            .post(self.url("/api/v1/books"))
            .bearer_auth(&self.admin)
            .json(&json!({ "title": title, "author": "생존자" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    async fn total(&self, q: &str) -> u64 {
        let url = reqwest::Url::parse_with_params(&self.url("/api/v1/books/search"), [("q", q)]).unwrap();
        let r = self.client.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["total"].as_u64().unwrap()
    }

    /// Waits (bounded) until `q` has `expected` hits.
    async fn until_total(&self, q: &str, expected: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.total(q).await;
            if got == expected {
                return;
            }
            assert!(Instant::now() < deadline, "`{q}`: {got} hits after 30 s, expected {expected}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn kill(mut self) {
        self.cluster.kill(0).await.expect("SIGKILL the server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_before_indexing_catches_up_from_the_outbox_on_restart() {
    let dir = std::env::temp_dir().join("nanum-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()));
    let env = vec![
        ("APP_ENV".to_owned(), "test".to_owned()),
        ("APP_CONFIG_DIR".to_owned(), concat!(env!("CARGO_MANIFEST_DIR"), "/config").to_owned()),
        ("APP__DATABASE__URL".to_owned(), format!("sqlite://{}?mode=rwc", db.display())),
        ("APP__SEARCH__INDEX_DIR".to_owned(), fresh_index_dir().display().to_string()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ];

    // 1. An index that has committed once (so a restart settles the outbox, not a rebuild).
    let server = Server::start(&env, true).await;
    server.create("첫 기록 first".into()).await;
    server.until_total("first", 1).await;
    server.kill().await;

    // 2. Writes the index never sees: this process does not apply the outbox. Then SIGKILL.
    let server = Server::start(&env, false).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(server.create(format!("생존기록 survivor {i}")).await);
    }
    let r = server
        .client
        .patch(server.url(&format!("/api/v1/books/{}", ids[0])))
        .bearer_auth(&server.admin)
        .json(&json!({ "title": "개정판 revised" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server.client.delete(server.url(&format!("/api/v1/books/{}", ids[1]))).bearer_auth(&server.admin);
    assert_eq!(r.send().await.unwrap().status(), 204);
    assert_eq!(server.total("survivor").await, 0, "nothing was indexed before the kill");
    server.kill().await;

    // 3. Restarted with sync: every create, the update and the delete arrive.
    let server = Server::start(&env, true).await;
    server.until_total("survivor", 18).await;
    server.until_total("revised", 1).await;
    server.until_total("생존기록", 18).await;
    assert_eq!(server.total("first").await, 1, "the committed book survived too");

    // 4. Killed while indexing: 100 writes at once, SIGKILL as soon as they are answered.
    let titles = (0..100).map(|i| server.create(format!("폭주 burst {i}")));
    assert_eq!(join_all(titles).await.len(), 100);
    server.kill().await;
    let server = Server::start(&env, true).await;
    server.until_total("burst", 100).await;
    server.until_total("survivor", 18).await;
    server.kill().await;
}
