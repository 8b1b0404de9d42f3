//! A measurement reduced to what the tables print and `results.json` keeps: throughput,
//! latency percentiles (from the HDR histogram), statuses, wins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::Stats;

/// One phase's figures. Latencies in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Requests answered or failed.
    pub requests: u64,
    /// Wall time, start to last answer.
    pub seconds: f64,
    /// `requests / seconds`.
    pub rps: f64,
    /// Mean latency.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Status → count.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests with no answer.
    pub errors: u64,
    /// Answers the win rule accepted.
    pub wins: u64,
    /// Connections (re)opened while measuring; 0 = keep-alive held throughout.
    pub reconnects: u64,
}

impl From<&Stats> for Figures {
    fn from(s: &Stats) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        let h = &s.latency;
        let empty = h.is_empty();
        let at = |q: f64| if empty { 0.0 } else { ms(h.value_at_quantile(q)) };
        Self {
            requests: s.requests,
            seconds: s.elapsed.as_secs_f64(),
            rps: s.rate(),
            mean_ms: if empty { 0.0 } else { h.mean() / 1000.0 },
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: if empty { 0.0 } else { ms(h.max()) },
            statuses: s.statuses.clone(),
            errors: s.errors,
            wins: s.wins,
            reconnects: s.connections_opened,
        }
    }
}

impl Figures {
    /// `{201: 10, 409: 90}`-style, with failed requests as `err`.
    pub fn statuses_text(&self) -> String {
        let mut parts: Vec<_> = self.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        if self.errors > 0 {
            parts.push(format!("err: {}", self.errors));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

/// The round whose throughput is the median (the lower middle for an even count), or
/// `None` for no rounds.
pub fn median_index(rounds: &[Figures]) -> Option<usize> {
    let mut order: Vec<usize> = (0..rounds.len()).collect();
    order.sort_by(|&a, &b| rounds[a].rps.total_cmp(&rounds[b].rps));
    order.get(rounds.len().saturating_sub(1) / 2).copied()
}

/// A number for a table: thousands separated, `digits` decimals below 100.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    if x.abs() >= 100.0 {
        let rounded = x.round() as i64;
        let digits = rounded.abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if rounded < 0 { format!("-{out}") } else { out }
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_round_is_by_throughput() {
        let r = |rps| Figures { rps, ..Figures::default() };
        assert_eq!(median_index(&[r(3.0), r(1.0), r(2.0)]), Some(2));
        assert_eq!(median_index(&[r(3.0), r(1.0)]), Some(1));
        assert_eq!(median_index(&[]), None);
    }

    #[test]
    fn numbers_read_like_a_table() {
        assert_eq!(num(1032.4), "1,032");
        assert_eq!(num(1234567.0), "1,234,567");
        assert_eq!(num(48.26), "48.3");
        assert_eq!(num(0.456), "0.46");
        assert_eq!(num(f64::NAN), "—");
    }
}
