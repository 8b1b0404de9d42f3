//! What the strategies measure, through the [`metrics`] facade: the app installs a
//! Prometheus recorder and renders `/metrics`; without a recorder (unit tests, the bench)
//! every handle is a no-op.
//!
//! The hot path never builds a label set: each strategy's handles are registered once, on
//! first use of that strategy in the process, and kept in a static table — a request only
//! bumps an atomic. So the recorder must be installed before a strategy is built (the app
//! does it first thing); handles taken earlier stay no-ops.
//!
//! # Layout
//!
//! - [`StrategyProbes`]: one strategy's handles; [`probes`] returns them.
//! - `Measured`: the wrapper that counts every strategy's answers.
//! - [`Backend`]: which backend a 503 `backend_unavailable` came from.
//! - The metric names are `pub const`s, so the app, docs/metrics.md and the dashboard test
//!   agree on one spelling.

use std::{sync::OnceLock, time::Duration};

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::{ApplyOutcome, ApplyRequest, Backend, ConcurrencyStrategy, StrategyError, StrategyName};

/// Counter: answers `apply` gave on this instance, by strategy and outcome.
pub const APPLICATIONS: &str = "nanum_applications_total";
/// Counter: Kafka consumers' committed decisions on this instance, by strategy and outcome.
pub const KAFKA_DECISIONS: &str = "nanum_kafka_decisions_total";
/// Counter: answers the sold-out shortcut gave before the strategy ran (never produced,
/// never locked), by strategy.
pub const SHORTCUT: &str = "nanum_sold_out_shortcut_total";
/// Histogram: waiting for what serialises the section (see the metrics table in docs/metrics.md).
pub const LOCK_WAIT: &str = "nanum_strategy_lock_wait_seconds";
/// Histogram: one run of the critical section's transaction, `BEGIN` to its end.
pub const SECTION: &str = "nanum_strategy_section_seconds";
/// Counter: sections run again, by reason (`version_conflict`, `transient`, `fenced`).
pub const RETRIES: &str = "nanum_strategy_retries_total";
/// Counter: distributed-lock waits that ran out (`max_wait_ms`).
pub const LOCK_TIMEOUTS: &str = "nanum_strategy_lock_timeouts_total";
/// Counter: optimistic give-ups (503 `contention`).
pub const CONTENTION: &str = "nanum_strategy_contention_total";
/// Counter: 503 `backend_unavailable` answers, by backend.
pub const UNAVAILABLE: &str = "nanum_strategy_unavailable_total";
/// Histogram: producing one application record (queue + broker acknowledgement).
pub const KAFKA_PRODUCE: &str = "nanum_kafka_produce_seconds";
/// Gauge: records in a partition not yet consumed (high watermark − next offset).
pub const KAFKA_LAG: &str = "nanum_kafka_consumer_lag";
/// Gauge: requests answered 202 whose decision has not reached this instance yet.
pub const KAFKA_PENDING: &str = "nanum_kafka_pending_requests";

/// One strategy's metric handles (registered once; cloning a handle is an `Arc` clone).
#[derive(Debug)]
pub struct StrategyProbes {
    name: StrategyName,
    answers: [Counter; 4],
    decisions: [Counter; 3],
    pub(crate) lock_wait: Histogram,
    pub(crate) section: Histogram,
    pub(crate) conflict_retries: Counter,
    pub(crate) transient_retries: Counter,
    pub(crate) fenced_retries: Counter,
    pub(crate) lock_timeouts: Counter,
    contention: Counter,
    unavailable: [Counter; 3],
    pub(crate) produce: Histogram,
    pub(crate) pending: Gauge,
    pub(crate) shortcut: Counter,
}

const OUTCOMES: [&str; 4] = ["won", "sold_out", "already_applied", "pending"];
const BACKENDS: [Backend; 3] = [Backend::Database, Backend::Redis, Backend::Kafka];

fn outcome_index(outcome: ApplyOutcome) -> usize {
    match outcome {
        ApplyOutcome::Won { .. } => 0,
        ApplyOutcome::SoldOut => 1,
        ApplyOutcome::AlreadyApplied => 2,
        ApplyOutcome::Pending => 3,
    }
}

impl StrategyProbes {
    fn register(name: StrategyName) -> Self {
        let s = name.as_str();
        let reason = |r: &'static str| counter!(RETRIES, "strategy" => s, "reason" => r);
        Self {
            name,
            answers: OUTCOMES.map(|o| counter!(APPLICATIONS, "strategy" => s, "outcome" => o)),
            decisions: [OUTCOMES[0], OUTCOMES[1], OUTCOMES[2]]
                .map(|o| counter!(KAFKA_DECISIONS, "strategy" => s, "outcome" => o)),
            lock_wait: histogram!(LOCK_WAIT, "strategy" => s),
            section: histogram!(SECTION, "strategy" => s),
            conflict_retries: reason("version_conflict"),
            transient_retries: reason("transient"),
            fenced_retries: reason("fenced"),
            lock_timeouts: counter!(LOCK_TIMEOUTS, "strategy" => s),
            contention: counter!(CONTENTION, "strategy" => s),
            unavailable: BACKENDS.map(|b| counter!(UNAVAILABLE, "strategy" => s, "backend" => b.as_str())),
            produce: histogram!(KAFKA_PRODUCE, "strategy" => s),
            pending: gauge!(KAFKA_PENDING, "strategy" => s),
            shortcut: counter!(SHORTCUT, "strategy" => s),
        }
    }

    /// The strategy these handles label.
    pub fn name(&self) -> StrategyName {
        self.name
    }

    /// Counts what `apply` answered: an outcome, or the 503 it turns into. Lock timeouts
    /// are counted where the wait ran out (also inside Kafka consumers), not here.
    pub fn answered(&self, result: &Result<ApplyOutcome, StrategyError>) {
        match result {
            Ok(outcome) => self.answers[outcome_index(*outcome)].increment(1),
            Err(StrategyError::Contention { .. }) => self.contention.increment(1),
            Err(StrategyError::Unavailable(backend, _)) => self.unavailable(*backend),
            Err(_) => {}
        }
    }

    /// Counts one 503 `backend_unavailable` from `backend`.
    pub fn unavailable(&self, backend: Backend) {
        let i = BACKENDS.iter().position(|b| *b == backend).unwrap_or(0);
        self.unavailable[i].increment(1);
    }

    /// Counts a Kafka consumer's committed decision.
    pub(crate) fn decided(&self, outcome: ApplyOutcome) {
        if let Some(counter) = self.decisions.get(outcome_index(outcome)) {
            counter.increment(1);
        }
    }

    /// Records a lock wait.
    pub(crate) fn waited(&self, took: Duration) {
        self.lock_wait.record(took.as_secs_f64());
    }
}

/// The handles of `name`, registered with the installed recorder on first use.
pub fn probes(name: StrategyName) -> &'static StrategyProbes {
    static TABLE: [OnceLock<StrategyProbes>; StrategyName::ALL.len()] =
        [const { OnceLock::new() }; StrategyName::ALL.len()];
    let i = StrategyName::ALL.iter().position(|n| *n == name).unwrap_or(0);
    TABLE[i].get_or_init(|| StrategyProbes::register(name))
}

/// Any strategy, its answers counted: the outermost wrapper [`crate::build_strategy`] puts
/// on, so an answer from the sold-out shortcut counts like one from the section.
#[derive(Debug)]
pub(crate) struct Measured {
    inner: std::sync::Arc<dyn ConcurrencyStrategy>,
    probes: &'static StrategyProbes,
}

impl Measured {
    pub(crate) fn new(inner: std::sync::Arc<dyn ConcurrencyStrategy>) -> Self {
        let probes = probes(inner.name());
        Self { inner, probes }
    }
}

#[async_trait::async_trait]
impl ConcurrencyStrategy for Measured {
    fn name(&self) -> StrategyName {
        self.inner.name()
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        let result = self.inner.apply(request).await;
        self.probes.answered(&result);
        result
    }

    fn wrapped(&self) -> Option<&dyn ConcurrencyStrategy> {
        Some(self.inner.as_ref())
    }
}

/// A Kafka partition's lag gauge (one per consumer task, taken when it starts).
pub(crate) fn lag_gauge(topic: &str, partition: i32) -> Gauge {
    gauge!(KAFKA_LAG, "topic" => topic.to_owned(), "partition" => partition.to_string())
}
