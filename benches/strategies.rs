//! Throughput of the database concurrency strategies under nanum's one race.
//!
//! # What is measured
//!
//! One iteration is one full race, exactly as the contract suite runs it
//! ([`strategies::contract::race`]): N readers, each applying once, released together by a
//! barrier against a *fresh* event with K copies. The time recorded is the race's own wall
//! time ([`RaceReport::elapsed`]: spawn the applicants, let them race, collect every answer);
//! creating the event beforehand and reading the result back afterwards are not timed.
//! Throughput is N elements per iteration, so criterion reports applications per second.
//!
//! Every strategy that the answering backends allow ([`StrategyName::available`]) runs side by side in one group, `race`,
//! once per available backend: `race/mariadb/<strategy>` and `race/sqlite/<strategy>`.
//! MariaDB is where the strategies really differ; on SQLite every section takes the single
//! write lock up front (`BEGIN IMMEDIATE`), so the numbers there show the cost of each
//! strategy's extra work rather than its concurrency.
//!
//! After every race the contract is checked: a strategy that breaks it (other than `none`,
//! which exists to break it) aborts the bench, because the time of a wrong answer means
//! nothing. For `none`, how often it over-allocated is printed once per backend.
//!
//! # Running it
//!
//! ```text
//! cargo bench --bench strategies                 # full run (a few minutes on 2 cores)
//! cargo bench --bench strategies -- --quick      # shorter, less precise
//! cargo bench --bench strategies -- race/sqlite  # filter by benchmark id
//! ```
//!
//! Environment:
//!
//! - `NANUM_BENCH_APPLICANTS` — readers per race, N (default 200).
//! - `NANUM_BENCH_COPIES` — copies per event, K (default 10).
//! - `NANUM_TEST_MYSQL_URL` — MariaDB server URL without a database (default
//!   `mysql://root@127.0.0.1:3306`); start it with `scripts/services-up`. When it is not
//!   reachable the MariaDB half is skipped with a printed reason, even under `CI=true`: a
//!   bench measures, it does not gate.
//!
//! Each run creates its own MariaDB database and SQLite file and removes them at the end.

use std::{
    fmt::Display,
    path::PathBuf,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use strategies::{
    Backends, ConcurrencyConfig, ConcurrencyStrategy, StrategyName, build_strategy,
    contract::{self, RaceReport},
    kafka::KafkaConfig,
};
use tokio::runtime::Runtime;

/// Readers per race when `NANUM_BENCH_APPLICANTS` is unset.
const DEFAULT_APPLICANTS: usize = 200;
/// Copies per event when `NANUM_BENCH_COPIES` is unset.
const DEFAULT_COPIES: i32 = 10;
/// MariaDB pool: the contract suite's size, enough that transactions really overlap.
const MARIADB_POOL: u32 = 48;
/// SQLite pool: it has one writer anyway; more connections would only queue on its lock.
const SQLITE_POOL: u32 = 8;

/// The shape of every race in this run.
#[derive(Debug, Clone, Copy)]
struct RaceShape {
    /// N: distinct readers, each applying once.
    applicants: usize,
    /// K: copies offered by each fresh event.
    copies: i32,
}

impl RaceShape {
    fn from_env() -> Self {
        let shape = Self {
            applicants: env_or("NANUM_BENCH_APPLICANTS", DEFAULT_APPLICANTS),
            copies: env_or("NANUM_BENCH_COPIES", DEFAULT_COPIES),
        };
        // A zero-sized race would "pass" the contract and report absurd throughput.
        assert!(shape.applicants > 0, "NANUM_BENCH_APPLICANTS must be at least 1");
        assert!(shape.copies > 0, "NANUM_BENCH_COPIES must be at least 1");
        shape
    }
}

/// Reads a count from the environment. A value that does not parse is an error, not a
/// silent fallback to the default: the printed numbers would describe a different race.
fn env_or<T>(name: &str, default: T) -> T
where
    T: FromStr,
    T::Err: Display,
{
    match std::env::var(name) {
        Ok(value) => {
            value.trim().parse().unwrap_or_else(|e| panic!("{name}={value:?} is not a valid count: {e}"))
        }
        Err(_) => default,
    }
}

/// A database the race tables live in, and how to remove it afterwards.
struct Backend {
    /// `mariadb` or `sqlite`: the first part of the benchmark id.
    label: &'static str,
    db: DatabaseConnection,
    cleanup: Cleanup,
}

enum Cleanup {
    /// The per-run MariaDB database.
    DropDatabase(String),
    /// The per-run SQLite file (plus its `-wal` and `-shm` companions).
    RemoveFile(PathBuf),
}

impl Backend {
    async fn remove(self) {
        match self.cleanup {
            Cleanup::DropDatabase(name) => {
                let sql = format!("DROP DATABASE IF EXISTS `{name}`");
                if let Err(e) = self.db.execute_unprepared(&sql).await {
                    eprintln!("warning: could not drop the bench database {name}: {e}");
                }
                let _ = self.db.close().await;
            }
            Cleanup::RemoveFile(path) => {
                // Close first so SQLite checkpoints and lets go of the files.
                let _ = self.db.close().await;
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
        }
    }
}

/// A fresh MariaDB database with the race tables, or why there is none.
async fn mariadb() -> Result<Backend, String> {
    let (url, name) = contract::create_mariadb_database("bench")
        .await
        .map_err(|why| format!("MariaDB is not reachable ({why})"))?;
    let db = contract::connect(&url, MARIADB_POOL).await.map_err(|e| e.to_string())?;
    contract::migrate(&db).await.map_err(|e| e.to_string())?;
    Ok(Backend { label: "mariadb", db, cleanup: Cleanup::DropDatabase(name) })
}

/// A fresh SQLite file with the race tables, or why there is none.
async fn sqlite() -> Result<Backend, String> {
    // A file, not `:memory:`: every pooled connection must see the same database.
    let path = std::env::temp_dir().join(format!("nanum-bench-{}.db", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let db = contract::connect(&url, SQLITE_POOL)
        .await
        .map_err(|e| format!("SQLite could not open {url}: {e}"))?;
    let backend = Backend { label: "sqlite", db, cleanup: Cleanup::RemoveFile(path) };
    if let Err(e) = contract::migrate(&backend.db).await {
        backend.remove().await;
        return Err(format!("SQLite could not create the race tables: {e}"));
    }
    Ok(backend)
}

/// How often `none` over-allocated, across every race criterion ran for it.
#[derive(Debug, Default)]
struct OverAllocations {
    races: u64,
    over_allocated: u64,
    /// Most winners seen in one race.
    worst: usize,
}

impl OverAllocations {
    fn record(&mut self, report: &RaceReport) {
        self.races += 1;
        if report.over_allocated() {
            self.over_allocated += 1;
        }
        self.worst = self.worst.max(report.rows);
    }

    fn print(&self, backend: &str, shape: RaceShape) {
        let RaceShape { applicants, copies } = shape;
        if self.over_allocated > 0 {
            eprintln!(
                "{backend}/none over-allocated in {} of {} races ({applicants} readers for \
                 {copies} copies; worst: {} winners)",
                self.over_allocated, self.races, self.worst
            );
        } else {
            eprintln!(
                "{backend}/none did not over-allocate in {} races ({applicants} readers for \
                 {copies} copies)",
                self.races
            );
        }
    }
}

/// Runs `iters` races, each on a fresh event, and returns the summed race time only.
async fn timed_races(
    backend: &Backend,
    name: StrategyName,
    strategy: &Arc<dyn ConcurrencyStrategy>,
    shape: RaceShape,
    none_tally: &Mutex<OverAllocations>,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        // A fresh event each time: a sold-out event would make every later race trivial.
        let event = contract::fresh_event(&backend.db, shape.copies).await.expect("create the race's event");
        let report = contract::race(Arc::clone(strategy), &backend.db, event, shape.applicants, 1)
            .await
            .expect("read back the race");
        total += report.elapsed;

        if name == StrategyName::NoControl {
            none_tally.lock().expect("tally lock poisoned").record(&report);
            continue;
        }
        let violations = report.violations();
        assert!(
            violations.is_empty(),
            "{}/{name}: {} readers for {} copies broke the contract, so its timing is \
             meaningless: {violations:#?}\n{report:#?}",
            backend.label,
            shape.applicants,
            shape.copies,
        );
    }
    total
}

// Long on purpose: one runtime, its pools and every strategy's criterion group must be set up
// together (pools belong to the runtime that made them); split, the setup would be passed around
// in pieces.
fn race_group(c: &mut Criterion) {
    // Multi-threaded like the app, so the applicants' tasks really run in parallel.
    let runtime = Runtime::new().expect("build the tokio runtime");
    let shape = RaceShape::from_env();

    // Connection pools belong to the runtime that created them: set up on the same one.
    let backends: Vec<Backend> = runtime.block_on(async {
        let mut available = Vec::new();
        for (label, backend) in [("mariadb", mariadb().await), ("sqlite", sqlite().await)] {
            match backend {
                Ok(backend) => available.push(backend),
                Err(why) => eprintln!("SKIPPED: race/{label}/*: {why}"),
            }
        }
        available
    });
    // The Redis strategies join when Redis answers (a bench skips, never fails, without it).
    let redis = runtime.block_on(async {
        match strategies::redis_pool::connect(&contract::test_redis_url(), 64).await {
            Ok(pool) => Some(pool),
            Err(why) => {
                eprintln!("SKIPPED: race/*/redis-*: {why}");
                None
            }
        }
    });
    // The Kafka strategies join when the broker answers (kafka-redis-lock needs Redis too).
    let brokers = contract::test_kafka_brokers();
    let kafka = runtime.block_on(async {
        match strategies::kafka::client::connect(&brokers, Duration::from_secs(3)).await {
            Ok(_) => true,
            Err(why) => {
                eprintln!("SKIPPED: race/*/kafka-*: {why}");
                false
            }
        }
    });
    let names = StrategyName::available(redis.is_some(), kafka);

    let mut group = c.benchmark_group("race");
    // A race takes tens to hundreds of milliseconds: flat sampling keeps the iteration
    // count per sample constant instead of growing it linearly, which would multiply the
    // run time for no extra precision at this scale.
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(
        u64::try_from(shape.applicants).expect("applicant count fits in u64"),
    ));

    for backend in &backends {
        for &name in &names {
            let config = ConcurrencyConfig { strategy: name, ..ConcurrencyConfig::default() };
            let backends = Backends {
                db: backend.db.clone(),
                redis: redis.clone(),
                redis_prefix: contract::unique_prefix("bench"),
                // A topic of its own per strategy and backend; a long reply bound so a race
                // measures the whole allocation, never a 202.
                kafka: KafkaConfig {
                    brokers: brokers.clone(),
                    topic: format!("nanum-bench.{}.{name}.{}", backend.label, uuid::Uuid::new_v4().simple()),
                    reply_timeout_ms: 60_000,
                    ..KafkaConfig::default()
                },
                ..Backends::from(backend.db.clone())
            };
            let strategy = runtime.block_on(async {
                let strategy =
                    build_strategy(&config, backends).await.expect("every needed backend is present");
                strategy.prepare().await.expect("start the strategy's consumers");
                strategy
            });
            let none_tally = Mutex::new(OverAllocations::default());
            group.bench_function(BenchmarkId::new(backend.label, name), |b| {
                b.to_async(&runtime)
                    .iter_custom(|iters| timed_races(backend, name, &strategy, shape, &none_tally, iters));
            });
            // Printed once, after criterion's lines: over all warm-up and measured races.
            let tally = none_tally.into_inner().expect("tally lock poisoned");
            if name == StrategyName::NoControl && tally.races > 0 {
                tally.print(backend.label, shape);
            }
        }
    }
    group.finish();

    runtime.block_on(async {
        for backend in backends {
            backend.remove().await;
        }
    });
}

criterion_group! {
    name = benches;
    // Ten samples of at least one race each: SQLite races take up to ~0.5 s, so 5 s fits
    // them, and the whole bench still takes about two minutes on 2 cores. The command-line
    // flags (`--sample-size`, `--measurement-time`, `--quick`, …) still override them.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = race_group
}
criterion_main!(benches);
