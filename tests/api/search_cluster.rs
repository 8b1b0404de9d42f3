//! Search with several instances: 3 real `nanum serve` processes on one MariaDB database,
//! each with its own index folder, writes spread over all three. Every instance must find
//! every created book and none of the deleted ones within 2 s of the last write — and again
//! after one of them is SIGKILLed while writes to it are in flight, then restarted on its
//! index folder. The truth is the books table, read through `engine=like` (a SQL scan).

use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use futures::future::join_all;
use nanum_load::Cluster;
use serde_json::{Value, json};
use strategies::contract;

use crate::helpers::start_processes;

/// The acceptance bound.
const CONVERGE_WITHIN: Duration = Duration::from_secs(2);

struct Three {
    cluster: Cluster,
    client: reqwest::Client,
    admin: String,
    index_dirs: Vec<PathBuf>,
}

impl Three {
    async fn start(database_url: &str) -> Self {
        let env = vec![
            ("APP_ENV".to_owned(), "test".to_owned()),
            ("APP_CONFIG_DIR".to_owned(), concat!(env!("CARGO_MANIFEST_DIR"), "/config").to_owned()),
            ("APP__DATABASE__URL".to_owned(), database_url.to_owned()),
            ("RUST_LOG".to_owned(), "warn".to_owned()),
        ];
        // Folders of our own, so a restarted instance resumes from its own index.
        let index_dirs: Vec<PathBuf> = (0..3).map(|_| crate::helpers::fresh_index_dir()).collect();
        let dirs = index_dirs.clone();
        let per_instance =
            move |i: usize| vec![("APP__SEARCH__INDEX_DIR".to_owned(), dirs[i].display().to_string())];
        let (cluster, client, admin) = start_processes(3, &env, &per_instance).await;
        Self { cluster, client, admin, index_dirs }
    }

    fn url(&self, instance: usize, path: &str) -> String {
        format!("{}{path}", self.cluster.instances[instance].address)
    }

    /// Creates a book on `instance`; `None` when the instance did not answer (killed).
    async fn create(&self, instance: usize, title: String) -> Option<i64> {
        create(&self.client, &self.cluster.instances[instance].address, &self.admin, title).await
    }

    async fn delete(&self, instance: usize, id: i64) {
        let r =
            self.client.delete(self.url(instance, &format!("/api/v1/books/{id}"))).bearer_auth(&self.admin);
        assert_eq!(r.send().await.unwrap().status(), 204);
    }

    /// Ids of the books `q` finds on `instance` with `engine`.
    async fn found(&self, instance: usize, q: &str, engine: &str) -> BTreeSet<i64> {
        let url = reqwest::Url::parse_with_params(
            &self.url(instance, "/api/v1/books/search"),
            [("q", q), ("engine", engine), ("size", "100")],
        )
        .unwrap();
        let r = self.client.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert!(body["total"].as_u64().unwrap() <= 100, "the test keeps each tag under one page");
        body["hits"].as_array().unwrap().iter().map(|h| h["book"]["id"].as_i64().unwrap()).collect()
    }

    /// Waits until every instance's index finds exactly `expected` for `q`; returns how long
    /// the slowest took (from now), or fails after `bound`.
    async fn converged(&self, q: &str, expected: &BTreeSet<i64>, bound: Duration) -> Duration {
        let started = Instant::now();
        let mut done = [false; 3];
        loop {
            for (i, done) in done.iter_mut().enumerate() {
                if !*done {
                    *done = self.found(i, q, "tantivy").await == *expected;
                }
            }
            if done.iter().all(|d| *d) {
                return started.elapsed();
            }
            if started.elapsed() > bound {
                let mut report = String::new();
                for i in 0..3 {
                    let got = self.found(i, q, "tantivy").await;
                    let missing: Vec<_> = expected.difference(&got).collect();
                    let extra: Vec<_> = got.difference(expected).collect();
                    report.push_str(&format!("\n  instance {i}: missing {missing:?}, still there {extra:?}"));
                }
                panic!("`{q}`: not every instance converged within {bound:?}:{report}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Creates a book through the server at `base`; `None` when it did not answer (killed).
async fn create(client: &reqwest::Client, base: &str, admin: &str, title: String) -> Option<i64> {
    let r = client
        .post(format!("{base}/api/v1/books"))
        .bearer_auth(admin)
        .json(&json!({ "title": title, "author": "세 서버" }))
        .send()
        .await
        .ok()?;
    assert_eq!(r.status(), 201);
    Some(r.json::<Value>().await.ok()?["id"].as_i64().unwrap())
}

impl Drop for Three {
    fn drop(&mut self) {
        for dir in &self.index_dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

// Long on purpose: one scenario told top to bottom (set up, act, check), as a reader of
// the test expects it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_each_find_every_created_book_and_no_deleted_one_within_two_seconds_even_after_a_sigkill()
 {
    let Some(url) = contract::fresh_mariadb_url("search_cluster").await else { return };
    let mut three = Three::start(&url).await;

    // 1. 30 creates round-robin over the three, at once; every third deleted on another one.
    let tag = format!("conv{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ids: Vec<i64> = join_all((0..30).map(|i| three.create(i % 3, format!("수렴 {tag} {i}"))))
        .await
        .into_iter()
        .map(|id| id.expect("every instance answers"))
        .collect();
    let deleted: Vec<i64> = ids.iter().copied().step_by(3).collect();
    join_all(deleted.iter().enumerate().map(|(k, &id)| three.delete((k + 1) % 3, id))).await;
    let expected: BTreeSet<i64> = ids.iter().copied().filter(|id| !deleted.contains(id)).collect();
    assert_eq!(three.found(0, &tag, "like").await, expected, "the books table holds what was answered");
    let took = three.converged(&tag, &expected, CONVERGE_WITHIN).await;
    println!("3 instances converged on 30 creates + 10 deletes in {took:?}");
    // Korean too: the bigram `수렴` of every title, on each instance's own index.
    for i in 0..3 {
        assert!(three.found(i, "수렴", "tantivy").await.is_superset(&expected), "instance {i} by `수렴`");
    }

    // 2. A burst of writes to all three; instance 1 is SIGKILLed once it has answered a few
    //    of its share, the rest still in flight (some committed but never answered).
    let tag = format!("kill{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (client, admin, addresses) = (three.client.clone(), three.admin.clone(), three.cluster.addresses());
    let answered_by_1 = AtomicUsize::new(0);
    let burst = join_all((0..90).map(|i| {
        let (client, admin, address, answered_by_1) = (&client, &admin, &addresses[i % 3], &answered_by_1);
        let tag = &tag;
        async move {
            let id = create(client, address, admin, format!("중단 {tag} {i}")).await;
            if i % 3 == 1 && id.is_some() {
                answered_by_1.fetch_add(1, Ordering::SeqCst);
            }
            id
        }
    }));
    let kill = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while answered_by_1.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        three.cluster.kill(1).await.expect("SIGKILL instance 1");
    };
    let (answered, ()) = tokio::join!(burst, kill);
    let lost = answered.iter().filter(|id| id.is_none()).count();
    println!(
        "SIGKILL mid-write: instance 1 answered {} of its 30 creates; {lost} of 90 unanswered",
        answered_by_1.load(Ordering::SeqCst)
    );
    // While it is down the others keep writing (and deleting).
    let more: Vec<i64> =
        join_all((0..10).map(|i| three.create([0, 2][i % 2], format!("중단 {tag} late {i}"))))
            .await
            .into_iter()
            .flatten()
            .collect();
    three.delete(2, more[0]).await;
    // The truth: whatever committed, answered or not.
    let expected = three.found(0, &tag, "like").await;
    assert!(expected.len() >= 90 - lost + 9, "answered creates are in the table");
    let committed_unanswered = expected.len() - (90 - lost + 9);
    println!("{committed_unanswered} of the unanswered creates committed anyway");
    three.cluster.restart(1).await.expect("restart instance 1 on its index folder");
    let took = three.converged(&tag, &expected, CONVERGE_WITHIN).await;
    println!("after the restart, 3 instances converged on {} books in {took:?}", expected.len());
    // And the first phase stayed right on the restarted one.
    let first: BTreeSet<i64> = ids.iter().copied().filter(|id| !deleted.contains(id)).collect();
    assert!(three.found(1, "수렴", "tantivy").await.is_superset(&first));
    assert!(three.found(1, "수렴", "tantivy").await.is_disjoint(&deleted.iter().copied().collect()));
}
