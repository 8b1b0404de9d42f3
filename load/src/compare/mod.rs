//! `nanum compare`: every strategy the backends allow, raced over the real HTTP path
//! (spawned `nanum serve` processes of this same binary), in four shapes, several rounds
//! each, beside the two limits every figure is a fraction of — then one table,
//! `results.json`, `report.md` and SVG charts under `reports/<timestamp>/`.
//!
//! # Layout
//!
//! - this file: the flags, the plan (which rows, which shapes), and the run;
//! - [`limits`]: the hot-row SQL loop and the HTTP ceiling;
//! - [`results`]: what a run produced, as `results.json` keeps it, and the table;
//! - [`model`]: the network crossed, and the round-trip model's predicted bound;
//! - [`charts`]: the SVG charts (plotters);
//! - [`team`]: `--preset team`, the team's scenario beside their published averages.

pub mod charts;
pub mod limits;
pub mod model;
pub mod results;
pub mod team;

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use strategies::StrategyName;

use self::results::{Comparison, Round, RowResult, ShapeInfo};
use crate::{
    Tools,
    backends::Backends,
    deploy::{Deployment, Spec},
    engine::{Engine, Load, Phase, Stats},
    figures::{Figures, median_index},
    target::{Reader, Target, WinRule},
    topology::Topology,
};

/// One race shape: how many apply, for how many copies, how many at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// `team`, `winners`, `rejections`.
    pub name: &'static str,
    /// In words.
    pub description: &'static str,
    /// Requests, one per distinct reader.
    pub requests: u64,
    /// Copies offered.
    pub copies: i64,
    /// Connections (closed model).
    pub concurrency: usize,
    /// Events raced at the same time: the requests and connections are split evenly over
    /// them, each event offering `copies` (1 for every shape but `events`).
    pub events: usize,
}

/// The four shapes.
pub const SHAPES: [Shape; 4] = [
    Shape {
        name: "team",
        description: "the team's scenario: 100 readers at once for 10 copies",
        requests: 100,
        copies: 10,
        concurrency: 100,
        events: 1,
    },
    Shape {
        name: "winners",
        description: "winner-heavy: 2,000 readers for 2,000 copies, 50 at a time",
        requests: 2_000,
        copies: 2_000,
        concurrency: 50,
        events: 1,
    },
    Shape {
        name: "rejections",
        description: "rejection-heavy: 10,000 readers for 100 copies, 200 at a time",
        requests: 10_000,
        copies: 100,
        concurrency: 200,
        events: 1,
    },
    Shape {
        name: "events",
        description: "ten events at once: 10 × 200 readers for 200 copies each, 5 connections per event",
        requests: 2_000,
        copies: 200,
        concurrency: 50,
        events: 10,
    },
];

/// The setting another change adds (`concurrency.sold_out_shortcut`); `--also-without-shortcut`
/// adds rows with it off.
const SHORTCUT_OFF: (&str, &str) = ("APP__CONCURRENCY__SOLD_OUT_SHORTCUT", "false");

/// Flags of `nanum compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Strategies to run (comma-separated); default: every one the backends allow.
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| s.parse::<StrategyName>())]
    pub strategies: Vec<StrategyName>,
    /// Shapes to run: team, winners, rejections, events (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "team,winners,rejections,events")]
    pub shapes: Vec<String>,
    /// Measured rounds per strategy and shape; the median round (by throughput) is reported.
    /// Default 3 (10 with --preset team, whose rounds are 100 requests each).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// How the spawned processes split the work, e.g. all=1 or api=2,worker=2.
    #[arg(long, default_value = "all=1", value_parser = |s: &str| s.parse::<Topology>())]
    pub topology: Topology,
    /// Kafka partition counts (comma-separated): partitioned Kafka strategies get one row
    /// per count, each on a fresh topic. Default: kafka.partitions as configured.
    #[arg(long, value_delimiter = ',')]
    pub partitions: Vec<u32>,
    /// Add a row per strategy with concurrency.sold_out_shortcut off.
    #[arg(long)]
    pub also_without_shortcut: bool,
    /// A setting for every spawned instance, as its environment variable (repeatable),
    /// e.g. --set APP__DATABASE__MAX_CONNECTIONS=64.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub set: Vec<(String, String)>,
    /// Database server: mysql://user@host:port (a fresh database is created per strategy),
    /// or sqlite (fresh files). Default: database.url as configured.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Redis URL. Default: redis.url as configured.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Kafka brokers. Default: kafka.brokers as configured.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// Folder the report goes under (a timestamped folder is created in it).
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// The network between the hosts: loopback (no proxy), lan (0.2 ms RTT), az (0.5 ms) or
    /// cross-az (1.5 ms) — a delaying proxy on every hop: client → API, and every backend.
    #[arg(long, default_value = "loopback")]
    pub network: String,
    /// A custom round trip per hop, ms (overrides --network; jitter a tenth of it).
    #[arg(long)]
    pub rtt: Option<f64>,
    /// Leave out the HTTP ceiling and the hot-row SQL loop.
    #[arg(long)]
    pub skip_limits: bool,
    /// `team`: kafka-redis-lock, 100 readers for 10 copies, 2 API + 2 worker processes,
    /// partitions 2, 3, 5 and 7, printed beside the team's published averages.
    #[arg(long, value_parser = ["team"])]
    pub preset: Option<String>,
}

/// `KEY=VALUE`.
///
/// # Errors
///
/// No `=`.
pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}`: write KEY=VALUE"))
}

/// One row of the comparison: a strategy, possibly with a variant's settings.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The strategy.
    pub strategy: StrategyName,
    /// E.g. `kafka-redis-lock (5 partitions)`.
    pub label: String,
    /// Empty, or what differs (`5 partitions`, `shortcut off`).
    pub variant: String,
    /// Kafka partitions, when set.
    pub partitions: Option<u32>,
    /// Extra settings.
    pub env: Vec<(String, String)>,
}

impl CompareArgs {
    /// Applies `--preset team`'s defaults where the flags left them open.
    fn resolved(mut self) -> Self {
        if self.preset.as_deref() == Some("team") {
            if self.strategies.is_empty() {
                self.strategies = vec![StrategyName::KafkaRedisLock];
            }
            self.shapes = vec!["team".into()];
            if self.topology == Topology::Uniform(1) {
                self.topology = Topology::TEAM;
            }
            if self.partitions.is_empty() {
                self.partitions = vec![2, 3, 5, 7];
            }
            // A mean over 100 requests moves with every hiccup of a 2-core machine; ten
            // rounds cost seconds.
            self.rounds.get_or_insert(10);
        }
        self.rounds.get_or_insert(3);
        self
    }

    /// Measured rounds (after [`CompareArgs::resolved`]).
    fn round_count(&self) -> usize {
        self.rounds.unwrap_or(3)
    }

    fn shapes(&self) -> anyhow::Result<Vec<Shape>> {
        self.shapes
            .iter()
            .map(|name| {
                SHAPES.iter().copied().find(|s| s.name == name.trim()).with_context(|| {
                    format!("unknown shape `{name}`; expected team, winners, rejections or events")
                })
            })
            .collect()
    }

    /// The rows: each runnable strategy, per partition count when it has partitions, and
    /// again with the shortcut off when asked.
    fn variants(&self, available: &[StrategyName]) -> Vec<Variant> {
        let wanted = if self.strategies.is_empty() { available.to_vec() } else { self.strategies.clone() };
        let mut variants = Vec::new();
        for strategy in wanted.into_iter().filter(|s| available.contains(s)) {
            let partitioned = matches!(strategy, StrategyName::KafkaRedisLock | StrategyName::KafkaKeyed);
            let partitions: Vec<Option<u32>> = if partitioned && !self.partitions.is_empty() {
                self.partitions.iter().copied().map(Some).collect()
            } else {
                vec![None]
            };
            let shortcut: &[bool] = if self.also_without_shortcut { &[true, false] } else { &[true] };
            for &p in &partitions {
                for &on in shortcut {
                    let mut what = Vec::new();
                    if let (Some(p), true) = (p, self.partitions.len() > 1) {
                        what.push(format!("{p} partitions"));
                    }
                    let mut env = Vec::new();
                    if !on {
                        what.push("shortcut off".into());
                        env.push((SHORTCUT_OFF.0.to_owned(), SHORTCUT_OFF.1.to_owned()));
                    }
                    let variant = what.join(", ");
                    let label = if variant.is_empty() {
                        strategy.to_string()
                    } else {
                        format!("{strategy} ({variant})")
                    };
                    variants.push(Variant { strategy, label, variant, partitions: p, env });
                }
            }
        }
        variants
    }
}

/// Whether a strategy must keep the contract in this topology (the registry's scope: `none`
/// never does, `app-mutex` only inside one process).
pub fn expected_safe(strategy: StrategyName, topology: Topology) -> bool {
    strategy.scope().holds_with(topology.count())
}

/// Runs the comparison and writes its report.
///
/// # Errors
///
/// Bad flags, a configured database that does not answer, the report folder not writable,
/// or — after the report is written — a strategy expected to be safe that broke the
/// contract.
// Long on purpose: the comparison's steps in order (check flags, limits, every row and shape,
// report, verdict); each step is a call.
pub async fn run(args: CompareArgs, tools: &Tools) -> anyhow::Result<()> {
    let args = args.resolved();
    anyhow::ensure!(args.round_count() > 0, "--rounds must be at least 1");
    let shapes = args.shapes()?;
    let database_url = args.database_url.clone().unwrap_or_else(|| tools.database_url.clone());
    let redis_url = args.redis_url.clone().unwrap_or_else(|| tools.redis_url.clone());
    let kafka_brokers = args.kafka_brokers.clone().unwrap_or_else(|| tools.kafka_brokers.clone());
    let profile = crate::network::Profile::pick(&args.network, args.rtt)?;
    let mut backends = Backends::probe(&database_url, &redis_url, &kafka_brokers).await?;
    crate::network::Network::apply(profile, &mut backends).await?;
    let backends = backends;
    crate::backends::check_topology(&backends.database, args.topology.count())?;
    let available = backends.available();
    let variants = args.variants(&available);
    let skipped = backends.skipped();
    if variants.is_empty() {
        let why: Vec<_> = skipped.iter().map(|s| format!("{}: {}", s.strategy, s.reason)).collect();
        bail!("no strategy can run with these backends: {}", why.join("; "));
    }
    if args.preset.is_some() && variants.iter().all(|v| v.strategy != StrategyName::KafkaRedisLock) {
        bail!("--preset team needs kafka-redis-lock: set kafka.brokers and redis.url");
    }

    let mut comparison = Comparison::new(&args, &backends, &shapes, skipped);
    eprintln!("{}", comparison.preamble(&variants));
    let progress = progress_bar(&variants, &shapes, args.round_count(), !args.skip_limits);
    if backends.network.is_some() && !args.skip_limits {
        // The hot-row loop once more with the database hop undelayed (the model's own time).
        progress.inc_length(SHAPES[1].requests * args.round_count() as u64);
    }

    let started = std::time::Instant::now();
    if !args.skip_limits {
        comparison.limits = limits::measure(&args, tools, &backends, &shapes, &progress).await?;
    }
    for variant in &variants {
        progress.set_message(variant.label.clone());
        match race_variant(&args, tools, &backends, variant, &shapes, &progress).await {
            Ok(rows) => {
                for row in &rows {
                    progress.println(row.one_line());
                }
                comparison.rows.extend(rows);
            }
            Err(e) => {
                let note = format!("{}: not measured: {e:#}", variant.label);
                progress.println(&note);
                comparison.notes.push(note);
            }
        }
    }
    progress.finish_and_clear();
    comparison.finish(started.elapsed());

    let folder = comparison.write(&args.out)?;
    println!("{}", comparison.table());
    if args.preset.as_deref() == Some("team") {
        println!("{}", team::table(&comparison));
    }
    for note in &comparison.notes {
        println!("note: {note}");
    }
    println!("report: {}", folder.display());
    println!("{}", comparison.verdict());
    let broken: Vec<_> = comparison
        .rows
        .iter()
        .filter(|r| r.safe && r.contract_broken_rounds > 0)
        .map(|r| format!("{} ({})", r.label, r.shape))
        .collect();
    if !broken.is_empty() {
        bail!(
            "strategies expected to hold broke the contract: {} (see {})",
            broken.join(", "),
            folder.display()
        );
    }
    Ok(())
}

fn progress_bar(variants: &[Variant], shapes: &[Shape], rounds: usize, limits: bool) -> ProgressBar {
    let per_row: u64 = shapes.iter().map(|s| s.requests).sum::<u64>() * rounds as u64;
    let rows = variants.len() as u64 + if limits { 2 } else { 0 };
    let bar = ProgressBar::new(per_row * rows);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:32} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec})",
    ) {
        bar.set_style(style);
    }
    bar
}

async fn race_variant(
    args: &CompareArgs,
    tools: &Tools,
    backends: &Backends,
    variant: &Variant,
    shapes: &[Shape],
    progress: &ProgressBar,
) -> anyhow::Result<Vec<RowResult>> {
    let mut env = variant.env.clone();
    env.extend(args.set.iter().cloned());
    let spec = Spec {
        binary: tools.binary.clone(),
        strategy: variant.strategy,
        topology: args.topology,
        partitions: variant.partitions,
        env,
    };
    let deployment = Deployment::start(&spec, backends).await?;
    let result = async {
        let most = shapes.iter().map(|s| s.requests).max().unwrap_or(0);
        let readers = deployment.readers(usize::try_from(most).unwrap_or(usize::MAX), &tools.mint).await?;
        let mut rows = Vec::new();
        for shape in shapes {
            rows.push(race_shape(&deployment, &readers, variant, args, shape, progress).await?);
        }
        anyhow::Ok(rows)
    }
    .await;
    deployment.remove().await;
    result
}

async fn race_shape(
    deployment: &Deployment,
    readers: &[Reader],
    variant: &Variant,
    args: &CompareArgs,
    shape: &Shape,
    progress: &ProgressBar,
) -> anyhow::Result<RowResult> {
    let target = Target::new(
        "/api/v1/events/{event}/applications",
        &deployment.api,
        "POST",
        &["authorization: Bearer {token}".to_owned()],
        None,
    )?;
    let events = shape.events.max(1);
    let per_event = usize::try_from(shape.requests).unwrap_or(usize::MAX) / events;
    let mut engines = connect_engines(&target, readers, shape).await?;
    let load = Load {
        requests: Some(per_event as u64),
        duration: None,
        rate: None,
        timeout: Duration::from_secs(60),
    };
    // A warm-up race on an event of its own: the server's database pool, the strategy's
    // connections and the load generator's connections are open before anything counts.
    // Every connection is used twice; more would only add minutes to the slow strategies.
    let warm_up = deployment.open_event(shape.copies).await?;
    let warm_load = Load {
        requests: Some((per_event as u64).min(2 * (shape.concurrency / events).max(1) as u64)),
        ..load
    };
    let phase = Phase { load: warm_load, event: Some(warm_up), first_reader: 0, record: false };
    for engine in &mut engines {
        engine.run(phase, &ProgressBar::hidden()).await;
    }
    let mut rounds = Vec::with_capacity(args.round_count());
    for _ in 0..args.round_count() {
        let mut opened = Vec::with_capacity(events);
        for _ in 0..events {
            opened.push(deployment.open_event(shape.copies).await?);
        }
        let raced = futures::future::join_all(engines.iter_mut().zip(&opened).map(|(engine, &event)| {
            engine.run(Phase { load, event: Some(event), first_reader: 0, record: true }, progress)
        }))
        .await;
        let mut checks = Vec::with_capacity(events);
        for (event, stats) in opened.iter().zip(&raced) {
            checks.push(deployment.check(*event, shape.copies, stats).await?);
        }
        let stats = Stats::merged(raced).context("no event raced")?;
        rounds.push(Round {
            figures: Figures::from(&stats),
            check: strategies::contract::Check::combined(&checks),
        });
    }
    Ok(row_result(variant, args, shape, rounds))
}

/// One engine per event of `shape`, each with its own readers and connections (they are
/// started together).
async fn connect_engines(target: &Target, readers: &[Reader], shape: &Shape) -> anyhow::Result<Vec<Engine>> {
    let events = shape.events.max(1);
    let per_event = usize::try_from(shape.requests).unwrap_or(usize::MAX) / events;
    let mut engines = Vec::with_capacity(events);
    for k in 0..events {
        let readers =
            readers[(k * per_event).min(readers.len())..((k + 1) * per_event).min(readers.len())].to_vec();
        let connections = (shape.concurrency / events).max(1);
        engines.push(
            Engine::connect(target.clone(), readers, WinRule::new(&[201], &[])?, vec![202], connections)
                .await?,
        );
    }
    Ok(engines)
}

/// A comparison row from its rounds: the median round's figures and check, and every
/// round's violations summed.
fn row_result(variant: &Variant, args: &CompareArgs, shape: &Shape, rounds: Vec<Round>) -> RowResult {
    let figures: Vec<_> = rounds.iter().map(|r| r.figures.clone()).collect();
    let median = median_index(&figures).unwrap_or(0);
    let mut violations: BTreeMap<String, u64> = BTreeMap::new();
    let mut broken_rounds = 0;
    let mut contract_broken_rounds = 0;
    for round in &rounds {
        let found = round.check.violations();
        broken_rounds += usize::from(!found.is_empty());
        contract_broken_rounds += usize::from(round.check.breaks_contract());
        for (what, n) in found {
            *violations.entry(what.to_owned()).or_default() += n;
        }
    }
    RowResult {
        label: variant.label.clone(),
        strategy: variant.strategy.to_string(),
        variant: variant.variant.clone(),
        partitions: variant.partitions,
        shape: shape.name.to_owned(),
        safe: expected_safe(variant.strategy, args.topology),
        median: rounds[median].figures.clone(),
        check: rounds[median].check,
        broken_rounds,
        contract_broken_rounds,
        violations,
        rounds,
        of_http: None,
        of_sql: None,
        model_bound: None,
    }
}

impl ShapeInfo {
    fn from(shape: &Shape) -> Self {
        Self {
            name: shape.name.to_owned(),
            description: shape.description.to_owned(),
            requests: shape.requests,
            copies: shape.copies,
            concurrency: shape.concurrency,
            events: shape.events,
        }
    }
}

#[cfg(test)]
mod tests;
