//! `nanum compare --preset team`: the team's scenario — 100 readers at once for 10 copies,
//! `kafka-redis-lock`, 2 API + 2 worker processes — at 2, 3, 5 and 7 partitions, each
//! partition count's mean latency beside the averages the team published.

use std::fmt::Write as _;

use super::results::Comparison;
use crate::figures::num;

/// What the team published, per partition count (their machines, not this one).
pub const PUBLISHED: [(u32, &str); 4] = [
    (2, "1,032 ms on t2.micro; 563 ms after scaling up"),
    (3, "— (not published)"),
    (5, "485 ms on c5 machines"),
    (7, "slower than 5 partitions (no figure)"),
];

/// The team table: one line per partition count that ran.
pub fn table(c: &Comparison) -> String {
    let mut out = format!(
        "The team's scenario on this machine ({} logical cores, {} build; {}; {} round(s) per partition count):\n\n\
         | partitions | mean latency | round means | p50 / p99 / max (median round) | winners / copies | violations | the team's average |\n\
         |---:|---:|---:|---:|---|---|---|\n",
        c.machine.cores, c.machine.build, c.topology, c.rounds
    );
    let mut rows: Vec<_> =
        c.rows.iter().filter(|r| r.shape == "team" && r.strategy == "kafka-redis-lock").collect();
    rows.sort_by_key(|r| r.partitions);
    for row in rows {
        let published =
            PUBLISHED.iter().find(|(p, _)| Some(*p) == row.partitions).map_or("—", |(_, text)| text);
        let means = row.rounds.iter().map(|r| r.figures.mean_ms);
        let (low, high) = means.fold((f64::MAX, 0f64), |(lo, hi), m| (lo.min(m), hi.max(m)));
        let ([p50, p99, max], winners) = row.latency_and_winners();
        let _ = writeln!(
            out,
            "| {} | **{} ms** | {}–{} ms | {p50} / {p99} / {max} ms | {winners} | {} | {published} |",
            row.partitions.map_or("configured".to_owned(), |p| p.to_string()),
            num(row.mean_ms()),
            num(low),
            num(high),
            row.violations_text(),
        );
    }
    out.push_str(
        "\nMean latency is over every measured round's requests (each round is a fresh event raced \
         by 100 readers at once); round means show how much one round moves. \
         The team measured on AWS instances over a network; these are loopback processes on one \
         machine, so compare the shape of the curve across partition counts, not the absolute \
         figures.\n",
    );
    out
}
