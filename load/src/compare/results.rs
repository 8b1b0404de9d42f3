//! What a comparison produced — the rows, the limits, what was skipped — as `results.json`
//! keeps it, the Markdown table printed and put in `report.md`, and the report folder.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{CompareArgs, Shape, Variant, charts, model::NetworkInfo};
use crate::{
    backends::{Backends, Skipped},
    deploy::Check,
    figures::{Figures, median_index, num},
};

/// A shape as run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShapeInfo {
    /// `team`, `winners`, `rejections`.
    pub name: String,
    /// In words.
    pub description: String,
    /// Requests (one per reader).
    pub requests: u64,
    /// Copies.
    pub copies: i64,
    /// Connections.
    pub concurrency: usize,
    /// Events raced at once (requests and connections split over them; copies per event).
    #[serde(default = "one")]
    pub events: usize,
}

fn one() -> usize {
    1
}

/// One limit in one shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LimitResult {
    /// `http-ceiling` or `hot-row-sql`.
    pub limit: String,
    /// How the table names it.
    pub label: String,
    /// The shape.
    pub shape: String,
    /// The median round.
    pub median: Figures,
    /// Every round.
    pub rounds: Vec<Figures>,
}

impl LimitResult {
    pub(super) fn new(limit: &str, shape: &Shape, rounds: Vec<Figures>) -> Self {
        let label = match limit {
            "http-ceiling" => "HTTP ceiling (GET /health/live)",
            super::limits::LOOPBACK_ROW => "hot-row SQL, database hop undelayed",
            _ => "hot-row SQL (no HTTP)",
        };
        let median = median_index(&rounds).map(|i| rounds[i].clone()).unwrap_or_default();
        Self {
            limit: limit.to_owned(),
            label: label.to_owned(),
            shape: shape.name.to_owned(),
            median,
            rounds,
        }
    }

    pub(super) fn one_line(&self) -> String {
        format!(
            "{:<40} {:<10} {:>8} req/s  p99 {:>8} ms",
            self.label,
            self.shape,
            num(self.median.rps),
            num(self.median.p99_ms)
        )
    }
}

/// One measured round of a strategy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Round {
    /// What the load generator saw.
    pub figures: Figures,
    /// What the database held afterwards.
    pub check: Check,
}

/// One strategy (variant) in one shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowResult {
    /// E.g. `pessimistic-lock (shortcut off)`.
    pub label: String,
    /// The strategy's name.
    pub strategy: String,
    /// What differs from the plain strategy (empty for none).
    pub variant: String,
    /// Kafka partitions, when set.
    pub partitions: Option<u32>,
    /// The shape.
    pub shape: String,
    /// Whether it must keep the contract here (false for `none`, and `app-mutex` across
    /// processes).
    pub safe: bool,
    /// The median round's figures (by throughput).
    pub median: Figures,
    /// The median round's check.
    pub check: Check,
    /// Rounds with at least one violation.
    pub broken_rounds: usize,
    /// Rounds where the contract itself broke (not only a 5xx or a refused request).
    pub contract_broken_rounds: usize,
    /// Violations summed over every round.
    pub violations: BTreeMap<String, u64>,
    /// Every round.
    pub rounds: Vec<Round>,
    /// Median throughput as a fraction of the HTTP ceiling's, same shape.
    pub of_http: Option<f64>,
    /// … and of the hot-row SQL loop's.
    pub of_sql: Option<f64>,
    /// The round-trip model's bound on winners/s over the run's network (none on loopback
    /// or for a batching strategy).
    #[serde(default)]
    pub model_bound: Option<f64>,
}

impl RowResult {
    /// The median round's p50, p99 and max, and `winners / copies`, as table cells.
    pub(super) fn latency_and_winners(&self) -> ([String; 3], String) {
        let m = &self.median;
        (
            [num(m.p50_ms), num(m.p99_ms), num(m.max_ms)],
            format!("{} / {}", self.check.winners, self.check.copies),
        )
    }

    pub(super) fn one_line(&self) -> String {
        format!(
            "{:<40} {:<10} {:>8} req/s  p99 {:>8} ms  {}/{} won  violations: {}",
            self.label,
            self.shape,
            num(self.median.rps),
            num(self.median.p99_ms),
            self.check.winners,
            self.check.copies,
            self.violations_text(),
        )
    }

    /// `0`, or each violation with its total and the rounds it happened in.
    pub fn violations_text(&self) -> String {
        if self.violations.is_empty() {
            return "0".into();
        }
        let parts: Vec<_> = self.violations.iter().map(|(what, n)| format!("{what} {n}")).collect();
        format!("{} ({}/{} rounds)", parts.join(", "), self.broken_rounds, self.rounds.len())
    }

    /// Mean latency over every round (each round has the same request count).
    pub fn mean_ms(&self) -> f64 {
        self.rounds.iter().map(|r| r.figures.mean_ms).sum::<f64>() / self.rounds.len().max(1) as f64
    }
}

/// The machine the run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// Logical cores.
    pub cores: usize,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// `release` or `debug` — a debug build's figures mean little.
    pub build: String,
}

impl Machine {
    fn here() -> Self {
        let memory_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
            })
            .unwrap_or(0.0);
        Self {
            cores: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            build: if cfg!(debug_assertions) { "debug" } else { "release" }.to_owned(),
        }
    }
}

/// A whole run: `results.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// When it started (UTC, RFC 3339).
    pub started_at: String,
    /// How long it took, seconds.
    pub seconds: f64,
    /// The command line.
    pub command: String,
    /// Where.
    pub machine: Machine,
    /// `mariadb` or `sqlite`.
    pub database: String,
    /// Redis in use.
    pub redis: bool,
    /// Kafka in use.
    pub kafka: bool,
    /// Processes per strategy.
    pub topology: String,
    /// Rounds per strategy and shape.
    pub rounds: usize,
    /// Settings given with `--set`.
    pub settings: Vec<(String, String)>,
    /// The shapes.
    pub shapes: Vec<ShapeInfo>,
    /// The limits (empty with `--skip-limits`).
    pub limits: Vec<LimitResult>,
    /// The strategies.
    pub rows: Vec<RowResult>,
    /// Strategies these backends cannot run.
    pub skipped: Vec<Skipped>,
    /// Anything else worth knowing (a backend that did not answer, a row that failed).
    pub notes: Vec<String>,
    /// The network the run crossed (reports from before networks were simulated: loopback).
    #[serde(default)]
    pub network: NetworkInfo,
}

/// This run's command line with the program by its name, not its path: reports are kept in
/// the repository (docs/results/), and a path there would be this machine's.
fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(name) = args.first().and_then(|p| Path::new(p).file_name()) {
        args[0] = name.to_string_lossy().into_owned();
    }
    args.join(" ")
}

impl Comparison {
    pub(super) fn new(
        args: &CompareArgs,
        backends: &Backends,
        shapes: &[Shape],
        skipped: Vec<Skipped>,
    ) -> Self {
        let machine = Machine::here();
        let mut notes = backends.notes.clone();
        if machine.build == "debug" {
            notes.push("this is a debug build: build with --release before reading the figures".into());
        }
        Self {
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            seconds: 0.0,
            command: command_line(),
            machine,
            database: backends.database_name().to_owned(),
            redis: backends.redis.is_some(),
            kafka: backends.kafka.is_some(),
            topology: args.topology.to_string(),
            rounds: args.round_count(),
            settings: args.set.clone(),
            shapes: shapes.iter().map(ShapeInfo::from).collect(),
            limits: Vec::new(),
            rows: Vec::new(),
            skipped,
            notes,
            network: NetworkInfo::of(backends),
        }
    }

    /// What is about to run, printed before it starts.
    pub(super) fn preamble(&self, variants: &[Variant]) -> String {
        let mut out = format!(
            "nanum compare: {} on {} ({}), {} × {} round(s), processes per strategy: {}",
            variants.iter().map(|v| v.label.as_str()).collect::<Vec<_>>().join(", "),
            self.database,
            self.backends_text(),
            self.shapes.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join("/"),
            self.rounds,
            self.topology,
        );
        let _ = write!(out, "\n{}", self.network.text());
        for s in &self.skipped {
            let _ = write!(out, "\nskipped {}: {}", s.strategy, s.reason);
        }
        for note in &self.notes {
            let _ = write!(out, "\nnote: {note}");
        }
        out
    }

    fn backends_text(&self) -> String {
        let mut b = vec![self.database.as_str()];
        if self.redis {
            b.push("redis");
        }
        if self.kafka {
            b.push("kafka");
        }
        b.join(" + ")
    }

    /// Fills in each row's fraction of the limits and the run time.
    pub(super) fn finish(&mut self, took: Duration) {
        self.seconds = took.as_secs_f64();
        for row in &mut self.rows {
            let limit = |kind: &str| {
                self.limits.iter().find(|l| l.limit == kind && l.shape == row.shape).map(|l| l.median.rps)
            };
            row.of_http = limit("http-ceiling").filter(|r| *r > 0.0).map(|r| row.median.rps / r);
            row.of_sql = limit("hot-row-sql").filter(|r| *r > 0.0).map(|r| row.median.rps / r);
            // The row's own time per winner, from the loop with the database hop undelayed.
            let own_ms = self
                .limits
                .iter()
                .find(|l| l.limit == super::limits::LOOPBACK_ROW)
                .filter(|l| l.median.rps > 0.0)
                .map_or(0.0, |l| 1000.0 / l.median.rps);
            row.model_bound = self
                .network
                .measured
                .and_then(|m| super::model::predicted_bound(&row.strategy, m.mean_ms, own_ms));
        }
    }

    /// The table: per shape, the limits first, then each strategy.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| strategy | shape | req/s | p50 ms | p99 ms | max ms | winners / copies | violations | of HTTP ceiling | of hot-row SQL | model bound (held RTs) |\n\
             |---|---|---:|---:|---:|---:|---|---|---:|---:|---|\n",
        );
        let pct = |f: Option<f64>| f.map_or("—".to_owned(), |f| format!("{:.0} %", f * 100.0));
        for shape in &self.shapes {
            for limit in self.limits.iter().filter(|l| l.shape == shape.name) {
                let m = &limit.median;
                let won = if limit.limit == "hot-row-sql" {
                    format!("{} / {}", m.wins, shape.copies * i64::try_from(shape.events).unwrap_or(1))
                } else {
                    "—".to_owned()
                };
                let _ = writeln!(
                    out,
                    "| *{}* | {} | {} | {} | {} | {} | {won} | — | — | — | — |",
                    limit.label,
                    shape.name,
                    num(m.rps),
                    num(m.p50_ms),
                    num(m.p99_ms),
                    num(m.max_ms)
                );
            }
            for row in self.rows.iter().filter(|r| r.shape == shape.name) {
                let m = &row.median;
                let label = if row.safe {
                    format!("`{}`", row.label)
                } else {
                    format!("`{}` (not safe here)", row.label)
                };
                let ([p50, p99, max], winners) = row.latency_and_winners();
                let _ = writeln!(
                    out,
                    "| {label} | {} | {} | {p50} | {p99} | {max} | {winners} | {} | {} | {} | {} ({}) |",
                    shape.name,
                    num(m.rps),
                    row.violations_text(),
                    pct(row.of_http),
                    pct(row.of_sql),
                    row.model_bound.map_or("—".to_owned(), num),
                    super::model::held_text(&row.strategy),
                );
            }
        }
        out
    }

    /// One paragraph: did every safe strategy hold, what broke, what only erred.
    pub fn verdict(&self) -> String {
        let safe: Vec<_> = self.rows.iter().filter(|r| r.safe).collect();
        let broken: Vec<_> = safe.iter().filter(|r| r.contract_broken_rounds > 0).collect();
        let erred: Vec<_> =
            safe.iter().filter(|r| r.contract_broken_rounds == 0 && !r.violations.is_empty()).collect();
        let mut out = if broken.is_empty() {
            format!(
                "verdict: every strategy expected to hold kept the contract in all {} measured races \
                 (no copy too many, nobody twice, every win stored and told, every 202 settled)",
                safe.iter().map(|r| r.rounds.len()).sum::<usize>()
            )
        } else {
            let list: Vec<_> = broken
                .iter()
                .map(|r| format!("{} in {} ({})", r.label, r.shape, r.violations_text()))
                .collect();
            format!("verdict: BROKEN — {}", list.join("; "))
        };
        for r in erred {
            let _ = write!(
                out,
                "\n  {} in {}: {} — refused, nothing written (e.g. a lock wait past its bound answers 503)",
                r.label,
                r.shape,
                r.violations_text()
            );
        }
        for r in self.rows.iter().filter(|r| !r.safe) {
            let _ = write!(
                out,
                "\n  {} (not expected to hold here) in {}: {}",
                r.label,
                r.shape,
                if r.violations.is_empty() { "held this time".to_owned() } else { r.violations_text() }
            );
        }
        out
    }

    /// `report.md`.
    // Long on purpose: one report page written top to bottom, section by section.
    fn markdown(&self) -> String {
        let mut md = format!(
            "# nanum compare — {}\n\n`{}`\n\n{} logical cores, {} GiB, {} build; {}; processes per strategy: {}; \
             {} measured round(s) per strategy and shape, the median round (by throughput) shown; \
             took {:.0} s.\n\n{}.\n\n",
            self.started_at,
            self.command,
            self.machine.cores,
            self.machine.memory_gib,
            self.machine.build,
            self.backends_text(),
            self.topology,
            self.rounds,
            self.seconds,
            self.network.text(),
        );
        md.push_str("## Shapes\n\n");
        for s in &self.shapes {
            let _ = writeln!(
                md,
                "- **{}** — {} (`{}` requests, `{}` copies per event, `{}` connections, `{}` event(s) at once)",
                s.name, s.description, s.requests, s.copies, s.concurrency, s.events
            );
        }
        md.push_str(
            "\nEvery request is a distinct reader (accounts created in bulk, tokens minted with the \
             deployment's secret), on a fresh event per round, after one unrecorded warm-up race. \
             Latency is from send to the whole answer, over keep-alive connections opened before \
             the clock starts.\n\n## Results\n\n",
        );
        md.push_str(&self.table());
        let _ = writeln!(md, "\n```text\n{}\n```", self.verdict());
        md.push_str(
            "\n*Violations* are summed over every round: winners beyond the copies, a reader winning \
             twice, 5xx answers, 202s still pending after 60 s, wins told that are not in the \
             database (or the reverse), stock that does not add up, other errors.\n\n\
             *Limits*: the **HTTP ceiling** is `GET /health/live` on the same kind of servers at the \
             same concurrency (server, loopback and load generator, no database); the **hot-row \
             SQL** loop is `pessimistic-lock`'s statements straight to the database from as many \
             connections, no HTTP. A strategy's fraction of each says how much of what the machine \
             allows it uses.\n",
        );
        if !self.skipped.is_empty() {
            md.push_str("\n## Skipped\n\n");
            for s in &self.skipped {
                let _ = writeln!(md, "- `{}` — {}", s.strategy, s.reason);
            }
        }
        if !self.notes.is_empty() {
            md.push_str("\n## Notes\n\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        if !self.settings.is_empty() {
            md.push_str("\n## Settings given\n\n");
            for (k, v) in &self.settings {
                let _ = writeln!(md, "- `{k}={v}`");
            }
        }
        md.push_str("\n## Charts\n\n");
        for (file, title) in charts::FILES {
            let _ = writeln!(md, "![{title}]({file})\n");
        }
        md
    }

    /// Writes `results.json`, `report.md` and the charts into `<out>/<timestamp>/`.
    ///
    /// # Errors
    ///
    /// The folder or a file cannot be written, a chart cannot be drawn.
    pub fn write(&self, out: &Path) -> anyhow::Result<PathBuf> {
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
        let mut folder = out.join(&stamp);
        // Two runs in one second (tests) must not overwrite each other.
        let mut n = 1;
        while folder.exists() {
            n += 1;
            folder = out.join(format!("{stamp}-{n}"));
        }
        std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
        std::fs::write(folder.join("results.json"), serde_json::to_string_pretty(self)?)?;
        std::fs::write(folder.join("report.md"), self.markdown())?;
        charts::draw(self, &folder)?;
        Ok(folder)
    }
}
