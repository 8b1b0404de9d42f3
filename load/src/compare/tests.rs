use clap::Parser;

use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: CompareArgs,
}

fn args(line: &str) -> CompareArgs {
    Cli::parse_from(std::iter::once("compare").chain(line.split_whitespace())).args.resolved()
}

#[test]
fn rows_follow_the_backends_and_the_flags() {
    let sqlite_only = StrategyName::available(false, false);
    let rows = args("").variants(&sqlite_only);
    assert_eq!(
        rows.len(),
        7,
        "none, app-mutex, pessimistic-lock, optimistic-lock, db-atomic, group-commit, named-lock"
    );
    assert!(rows.iter().all(|r| r.variant.is_empty() && r.env.is_empty()));

    let rows = args("--strategies none,db-atomic --also-without-shortcut").variants(&sqlite_only);
    let labels: Vec<_> = rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["none", "none (shortcut off)", "db-atomic", "db-atomic (shortcut off)"]);
    assert_eq!(rows[1].env, [(SHORTCUT_OFF.0.to_owned(), "false".to_owned())]);

    let all = StrategyName::available(true, true);
    let rows = args("--preset team").variants(&all);
    let labels: Vec<_> = rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "kafka-redis-lock (2 partitions)",
            "kafka-redis-lock (3 partitions)",
            "kafka-redis-lock (5 partitions)",
            "kafka-redis-lock (7 partitions)"
        ]
    );
    let team = args("--preset team");
    assert_eq!(team.topology, Topology::TEAM);
    assert_eq!(
        (team.round_count(), args("").round_count(), args("--preset team --rounds 2").round_count()),
        (10, 3, 2)
    );
    assert_eq!(team.shapes().unwrap(), [SHAPES[0]]);
    // a strategy the backends cannot run is left out (and reported as skipped)
    assert!(args("--strategies redis-lock").variants(&sqlite_only).is_empty());
    assert!(args("--shapes nope").shapes().is_err());
}

#[test]
fn only_none_and_a_multi_process_app_mutex_may_break() {
    assert!(!expected_safe(StrategyName::NoControl, Topology::Uniform(1)));
    assert!(expected_safe(StrategyName::AppMutex, Topology::Uniform(1)));
    assert!(!expected_safe(StrategyName::AppMutex, Topology::Uniform(3)));
    assert!(expected_safe(StrategyName::KafkaKeyed, Topology::TEAM));
}
