//! The two limits every strategy's figure is a fraction of, measured in the same run on the
//! same machine:
//!
//! - **the hot-row SQL loop** — `pessimistic-lock`'s section without the sold-out shortcut
//!   (`strategies::contract::hot_row_section`, the strategy's own code) run straight
//!   against the database from `c` connections, no HTTP, no server: what one serialised
//!   stock row allows;
//! - **the HTTP ceiling** — `GET /health/live` on the same kind of servers at the same
//!   concurrency: what the HTTP path (server, loopback, and this load generator) allows.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use indicatif::ProgressBar;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use strategies::{StrategyName, contract};

use super::{CompareArgs, Shape, results::LimitResult};
use crate::{
    Tools,
    backends::{Backends, Database, FreshDatabase},
    deploy::{Deployment, Spec},
    engine::{Engine, Load, Phase, Stats, new_histogram},
    figures::Figures,
    readers,
    target::{Target, WinRule},
    topology::Topology,
};

/// The hot-row loop without the network's delay: a limit of its own, for the model.
pub const LOOPBACK_ROW: &str = "hot-row-sql-undelayed";

/// Both limits for every shape, the HTTP ceiling on servers of their own.
pub(super) async fn measure(
    args: &CompareArgs,
    tools: &Tools,
    backends: &Backends,
    shapes: &[Shape],
    progress: &ProgressBar,
) -> anyhow::Result<Vec<LimitResult>> {
    let mut limits = Vec::new();
    progress.set_message("HTTP ceiling");
    // The API side of the topology is what clients reach; /health/live touches no backend.
    let spec = Spec {
        binary: tools.binary.clone(),
        strategy: StrategyName::PessimisticLock,
        topology: Topology::Uniform(args.topology.api()),
        partitions: None,
        env: args.set.clone(),
    };
    let deployment =
        Deployment::start(&spec, backends).await.context("starting servers for the HTTP ceiling")?;
    for shape in shapes {
        let rounds = http_ceiling(&deployment, shape, args.round_count(), progress).await;
        limits.push(LimitResult::new("http-ceiling", shape, rounds?));
    }
    deployment.remove().await;
    progress.set_message("hot-row SQL");
    for shape in shapes {
        let rounds = hot_row_sql(&backends.database, shape, args.round_count(), progress).await?;
        limits.push(LimitResult::new("hot-row-sql", shape, rounds));
    }
    // Over a network, the row's own time (statements, commit, lock hand-off) once more with
    // the database hop's delay set to zero: the part of the round-trip model that is not
    // round trips.
    if let Some(hop) = backends.network.as_ref().and_then(|n| n.hops.iter().find(|h| h.name == "database")) {
        let link = hop.link();
        hop.set_link(crate::network::Link::default());
        let winners = shapes.iter().find(|s| s.name == "winners").copied().unwrap_or(super::SHAPES[1]);
        let rounds = hot_row_sql(&backends.database, &winners, args.round_count(), progress).await;
        hop.set_link(link);
        limits.push(LimitResult::new(LOOPBACK_ROW, &winners, rounds?));
    }
    for limit in &limits {
        progress.println(limit.one_line());
    }
    Ok(limits)
}

/// `GET /health/live` at the shape's count and concurrency, `rounds` times.
///
/// # Errors
///
/// Connections that cannot be opened.
pub async fn http_ceiling(
    deployment: &Deployment,
    shape: &Shape,
    rounds: usize,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Figures>> {
    let target = Target::new("/health/live", &deployment.api, "GET", &[], None)?;
    let readers = readers::numbered(1, 1);
    let mut engine =
        Engine::connect(target, readers, WinRule::new(&[200], &[])?, Vec::new(), shape.concurrency).await?;
    let load =
        Load { requests: Some(shape.requests), duration: None, rate: None, timeout: Duration::from_secs(60) };
    let phase = Phase { load, event: None, first_reader: 0, record: true };
    // One unrecorded pass first, as every strategy gets its warm-up race.
    let warm = Load { requests: Some(shape.requests.min(2 * shape.concurrency as u64)), ..load };
    engine.run(Phase { load: warm, record: false, ..phase }, &ProgressBar::hidden()).await;
    let mut figures = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        figures.push(Figures::from(&engine.run(phase, progress).await));
    }
    Ok(figures)
}

/// The hot-row loop on a fresh database of the comparison's kind: per round a fresh event
/// of the shape's copies, the shape's request count from `c` tasks over `c` connections
/// (one on SQLite), reader
/// `i` applying once. Outcomes are counted as the HTTP path would answer them (201 won,
/// 409 sold out or already applied), so the figures read like the strategies'.
///
/// # Errors
///
/// The database cannot be created or reached.
pub async fn hot_row_sql(
    database: &Database,
    shape: &Shape,
    rounds: usize,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Figures>> {
    let fresh = FreshDatabase::create(database, "compare").await?;
    let result = async {
        // SQLite has one writer: its best is one connection running the statements back to
        // back (more only busy-wait on the file lock, measured at a fifth of that).
        let pool = match database {
            Database::Sqlite => 1,
            Database::MariaDb(_) => u32::try_from(shape.concurrency).unwrap_or(u32::MAX),
        };
        let db = fresh.connect(pool).await?;
        if *database == Database::Sqlite {
            // as nanum opens SQLite (src/db.rs): a commit appends to the WAL, no journal copy
            db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
        }
        contract::migrate(&db).await.context("creating the race tables")?;
        // Open every connection before the clock starts, as the HTTP runs do.
        futures::future::join_all((0..pool).map(|_| db.execute_unprepared("SELECT 1"))).await;
        let warm_up = contract::fresh_event(&db, i32::try_from(shape.copies).unwrap_or(i32::MAX)).await?;
        let warm = Shape { requests: shape.requests.min(2 * shape.concurrency as u64), ..*shape };
        sql_round(&db, warm_up, &warm, &ProgressBar::hidden()).await?;
        let mut figures = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            figures.push(Figures::from(&sql_events_round(&db, shape, progress).await?));
        }
        let _ = db.close().await;
        anyhow::Ok(figures)
    }
    .await;
    fresh.remove().await;
    result
}

/// One measured round on `shape.events` fresh events at once, the requests and
/// connections split evenly over them (as the HTTP race splits them).
async fn sql_events_round(
    db: &DatabaseConnection,
    shape: &Shape,
    progress: &ProgressBar,
) -> anyhow::Result<Stats> {
    let events = shape.events.max(1);
    let each = Shape {
        requests: shape.requests / events as u64,
        concurrency: (shape.concurrency / events).max(1),
        events: 1,
        ..*shape
    };
    let mut opened = Vec::with_capacity(events);
    for _ in 0..events {
        opened.push(contract::fresh_event(db, i32::try_from(shape.copies).unwrap_or(i32::MAX)).await?);
    }
    let raced =
        futures::future::join_all(opened.iter().map(|&event| sql_round(db, event, &each, progress))).await;
    let raced = raced.into_iter().collect::<Result<Vec<_>, _>>()?;
    Stats::merged(raced).context("no event raced")
}

async fn sql_round(
    db: &DatabaseConnection,
    event: i64,
    shape: &Shape,
    progress: &ProgressBar,
) -> anyhow::Result<Stats> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let histogram = new_histogram()?;
    let workers: Vec<_> = (0..shape.concurrency)
        .map(|_| {
            let (db, next, progress, requests) =
                (db.clone(), Arc::clone(&next), progress.clone(), shape.requests);
            let mut stats = Stats::empty(&histogram);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let sent = Instant::now();
                    let user = i64::try_from(i).unwrap_or(i64::MAX) + 1;
                    let decided =
                        contract::hot_row_section(&db, event, user, &format!("sql-{event}-{i}")).await;
                    let done = Instant::now();
                    stats.requests += 1;
                    stats.elapsed = stats.elapsed.max(done - start);
                    match decided {
                        Ok(won) => {
                            stats.wins += u64::from(won);
                            let status = if won { 201 } else { 409 };
                            *stats.statuses.entry(status).or_default() += 1;
                            let micros = u64::try_from((done - sent).as_micros()).unwrap_or(u64::MAX);
                            stats.latency.saturating_record(micros.max(1));
                        }
                        Err(e) => {
                            stats.errors += 1;
                            stats.first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                    progress.inc(1);
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::empty(&histogram);
    for worker in workers {
        total.merge(worker.await?);
    }
    Ok(total)
}
