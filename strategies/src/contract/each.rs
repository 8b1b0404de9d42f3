//! Runs one test body for every registered strategy, so test suites read
//! [`StrategyName::ALL`] instead of keeping a list of their own: a new registry row is raced
//! by every suite without touching it.
//!
//! Each strategy runs as its own task, a bounded number at a time; a failing one does not
//! stop the others, and the test fails at the end naming every strategy that failed with its
//! panic message. `NANUM_TEST_STRATEGIES=redis-lock,db-atomic` narrows a run to some
//! strategies (the way a test-name filter would).

use std::{future::Future, panic::resume_unwind};

use tokio::task::JoinSet;

use crate::StrategyName;

/// The strategies a suite runs: all of them, or those named in `NANUM_TEST_STRATEGIES`.
///
/// # Panics
///
/// `NANUM_TEST_STRATEGIES` names a strategy that does not exist.
pub fn selected() -> Vec<StrategyName> {
    match std::env::var("NANUM_TEST_STRATEGIES") {
        Ok(names) if !names.trim().is_empty() => names
            .split(',')
            .map(|n| n.trim().parse().unwrap_or_else(|e| panic!("NANUM_TEST_STRATEGIES: {e}")))
            .collect(),
        _ => StrategyName::ALL.to_vec(),
    }
}

/// Runs `body` for every [`selected`] strategy, at most `parallel` at once.
///
/// # Panics
///
/// When `body` panicked for any strategy: one panic naming each of them and why.
pub async fn for_each_strategy<F, Fut>(parallel: usize, body: F)
where
    F: Fn(StrategyName) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut pending = selected().into_iter();
    let mut running = JoinSet::new();
    let mut failed = Vec::new();
    loop {
        while running.len() < parallel.max(1) {
            let Some(name) = pending.next() else { break };
            let run = body(name);
            running.spawn(async move { (name, tokio::spawn(run).await) });
        }
        let Some(joined) = running.join_next().await else { break };
        let (name, result) = match joined {
            Ok(finished) => finished,
            // the wrapper itself only awaits; it fails only if the runtime is shutting down
            Err(e) => resume_unwind(e.into_panic()),
        };
        match result {
            Ok(()) => println!("{name}: passed"),
            Err(e) => {
                let why = if e.is_panic() { panic_message(e.into_panic()) } else { e.to_string() };
                eprintln!("{name}: FAILED: {why}");
                failed.push(format!("{name}: {why}"));
            }
        }
    }
    assert!(failed.is_empty(), "{} strategies failed:\n{}", failed.len(), failed.join("\n"));
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => {
            payload.downcast::<&str>().map_or_else(|_| "(no message)".to_owned(), |m| (*m).to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_strategy_runs_and_a_failure_names_its_strategy() {
        if std::env::var_os("NANUM_TEST_STRATEGIES").is_some() {
            return; // the check below is about the full list
        }
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = std::sync::Arc::clone(&seen);
        let outcome = tokio::spawn(for_each_strategy(3, move |name| {
            let record = std::sync::Arc::clone(&record);
            async move {
                record.lock().map(|mut s| s.push(name)).ok();
                assert!(name != StrategyName::DbAtomic, "deliberate failure");
            }
        }))
        .await;
        let mut seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
        seen.sort_by_key(|n| *n as usize);
        assert_eq!(seen, StrategyName::ALL.to_vec(), "every strategy ran despite one failing");
        let message = outcome.err().map(|e| panic_message(e.into_panic())).unwrap_or_default();
        assert!(message.contains("1 strategies failed"), "{message}");
        assert!(message.contains("db-atomic: deliberate failure"), "{message}");
    }
}
