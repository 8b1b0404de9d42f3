//! Catalogue search, three engines side by side: `like` (`LIKE '%q%'`), `fulltext`
//! (MariaDB `MATCH … AGAINST`) and `tantivy` (the index), on a generated catalogue in
//! MariaDB.
//!
//! # What is measured
//!
//! 1. Setup, timed and printed: `nanum::seed::seed_books` fills a fresh MariaDB database
//!    (books/s), then `nanum::search::outbox::reindex` builds a fresh index from it
//!    (books/s) — the same code as `nanum seed books` and `nanum search reindex`.
//! 2. criterion group `search/<books>`: one call of `nanum::search::engines::run` (query +
//!    loading the page of books + highlights) per iteration, for each engine and each fixed
//!    query: a Korean two-syllable word, an English word, an author's name, a word no book
//!    has. Page 1, 20 hits. Beside them, `tantivy-engine`: the index alone (parse, top 20
//!    by BM25, total count, ids from the fast field — no stored books, no highlights), the
//!    "pure engine" time the whole `tantivy` search is held against.
//! 3. Over HTTP: the real server (`Application`, 2 workers) on the same database and index;
//!    after a warm-up, `NANUM_BENCH_REQUESTS` sequential requests per engine and query from
//!    one client on loopback; p50/p99 of the client-side latency are printed as a table.
//!
//! # Running it
//!
//! ```text
//! scripts/services-up
//! cargo bench --bench search                            # 100k books (~5 min on 2 cores)
//! NANUM_BENCH_BOOKS=1000000 cargo bench --bench search  # 1M books
//! cargo bench --bench search -- tantivy                 # filter by benchmark id
//! ```
//!
//! Environment: `NANUM_BENCH_BOOKS` (default 100000), `NANUM_BENCH_REQUESTS` (default 300),
//! `NANUM_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`). Without MariaDB the bench
//! prints why and does nothing, even under `CI=true`: a bench measures, it does not gate.
//! Under `cargo test` (no `--bench` flag) it runs once on 2,000 books as a smoke test.
//! The database and index are removed at the end.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion};
use indicatif::ProgressBar;
use nanum::{
    configuration::{self, DatabaseSettings},
    migration::Migrator,
    search::{
        SearchIndex, WriterBudget,
        engines::{self, Engine, SearchRequest},
        outbox,
    },
    seed,
    startup::Application,
};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sea_orm_migration::MigratorTrait;
use strategies::contract;
use tokio::runtime::Runtime;

/// The fixed queries: (label, q).
const QUERIES: [(&str, &str); 4] =
    [("korean-word", "여행"), ("english-word", "lighthouse"), ("author", "김민서"), ("no-hit", "zyxwvut")];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| v.trim().parse().unwrap_or_else(|e| panic!("{name}={v:?}: {e}")))
}

/// The seeded database and built index of this run.
struct Setup {
    books: u64,
    db: DatabaseConnection,
    url: String,
    name: String,
    index_dir: PathBuf,
    index: Option<Arc<SearchIndex>>,
}

impl Setup {
    async fn new(books: u64) -> Option<Self> {
        let (url, name) = match contract::create_mariadb_database("bench_search").await {
            Ok(created) => created,
            Err(why) => {
                eprintln!("search bench skipped: MariaDB is not reachable ({why}); run scripts/services-up");
                return None;
            }
        };
        let db = nanum::db::connect(&DatabaseSettings { url: url.clone(), max_connections: 16 })
            .await
            .expect("connect to the bench database");
        Migrator::up(&db, None).await.expect("migrate");

        let seeded = seed::seed_books(&db, books, 42, &ProgressBar::hidden()).await.expect("seed");
        println!(
            "seeded {books} books in {:.1} s: {:.0} books/s (MariaDB, FULLTEXT index live, outbox rows)",
            seeded.elapsed.as_secs_f64(),
            seeded.rate()
        );
        let index_dir = std::env::temp_dir().join(format!("{name}.index"));
        let index = Arc::new(SearchIndex::open(&index_dir, WriterBudget::bulk()).expect("open the index"));
        let started = Instant::now();
        let indexed = outbox::reindex(&db, &index, &ProgressBar::hidden()).await.expect("reindex");
        let secs = started.elapsed().as_secs_f64();
        println!(
            "indexed {indexed} books in {secs:.1} s: {:.0} books/s (nanum search reindex)",
            indexed as f64 / secs
        );
        Some(Self { books, db, url, name, index_dir, index: Some(index) })
    }

    async fn remove(self) {
        if let Err(e) = self.db.execute_unprepared(&format!("DROP DATABASE IF EXISTS `{}`", self.name)).await
        {
            eprintln!("warning: could not drop {}: {e}", self.name);
        }
        let _ = std::fs::remove_dir_all(&self.index_dir);
    }
}

fn engine_group(c: &mut Criterion, runtime: &Runtime, setup: &Setup) {
    let index = setup.index.as_ref().expect("index open");
    let mut group = c.benchmark_group(format!("search/{}", setup.books));
    for (label, q) in QUERIES {
        let request = SearchRequest::new(q, 1, 20).expect("valid query");
        for engine in Engine::ALL {
            let found = runtime.block_on(engines::run(engine, &setup.db, index, &request)).expect("search");
            println!("{}/{label} ({q}): {} hits", engine.name(), found.total);
            group.bench_function(BenchmarkId::new(engine.name(), label), |b| {
                b.to_async(runtime).iter(|| engines::run(engine, &setup.db, index, &request));
            });
        }
        group.bench_function(BenchmarkId::new("tantivy-engine", label), |b| {
            b.iter(|| index.search_ids(q, 0, 20).expect("search"));
        });
    }
    group.finish();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn http_percentiles(setup: &mut Setup, requests: u64) {
    // The server takes the index folder over (one writer per folder).
    setup.index = None;
    let mut settings = configuration::load_for("test", &[]).expect("test settings");
    settings.database.url = setup.url.clone();
    settings.search.index_dir = setup.index_dir.clone();
    settings.server.port = 0;
    settings.server.workers = 2;
    let app = Application::build(settings).await.expect("start the server");
    let base = format!("http://127.0.0.1:{}/api/v1/books/search", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    println!("\nHTTP, {} books, {requests} sequential requests per row (after 20 warm-up):", setup.books);
    println!("| engine | query | q | hits | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for engine in Engine::ALL {
        for (label, q) in QUERIES {
            let url = reqwest::Url::parse_with_params(&base, [("q", q), ("engine", engine.name())]).unwrap();
            let mut total = 0;
            for _ in 0..20 {
                let body: serde_json::Value =
                    client.get(url.clone()).send().await.unwrap().json().await.unwrap();
                total = body["total"].as_u64().unwrap_or(0);
            }
            let mut times = Vec::with_capacity(requests as usize);
            for _ in 0..requests {
                let started = Instant::now();
                let r = client.get(url.clone()).send().await.unwrap();
                assert!(r.status().is_success(), "{url}: {}", r.status());
                r.bytes().await.unwrap();
                times.push(started.elapsed());
            }
            times.sort_unstable();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "| {} | {label} | {q} | {total} | {:.2} | {:.2} |",
                engine.name(),
                ms(percentile(&times, 50.0)),
                ms(percentile(&times, 99.0))
            );
        }
    }
    server.abort();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this once, small.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let listing = std::env::args().any(|a| a == "--list");
    let books = if benchmarking { env_or("NANUM_BENCH_BOOKS", 100_000) } else { 2_000 };
    let requests = if benchmarking { env_or("NANUM_BENCH_REQUESTS", 300) } else { 5 };
    let runtime = Runtime::new().expect("tokio runtime");
    if listing {
        return;
    }
    let Some(mut setup) = runtime.block_on(Setup::new(books)) else { return };
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    engine_group(&mut criterion, &runtime, &setup);
    criterion.final_summary();
    runtime.block_on(http_percentiles(&mut setup, requests));
    runtime.block_on(setup.remove());
}
