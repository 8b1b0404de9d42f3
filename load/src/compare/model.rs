//! The network a comparison crossed, and the round-trip model: how many round trips each
//! strategy makes while its serialising resource (the stock row, a lock) is held, and so
//! the winners per second one row allows at a given round trip —
//! `1 / (held round trips × RTT)`, the server's own time left out.

use serde::{Deserialize, Serialize};

use crate::{backends::Backends, figures::num};

/// The network a run crossed: the profile, the hops, a hop's round trip as measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// `loopback`, `lan`, `az`, `cross-az` or `custom`.
    pub profile: String,
    /// Round trip each hop adds, ms.
    pub rtt_ms: f64,
    /// ± jitter per chunk and direction, ms.
    pub jitter_ms: f64,
    /// The proxied hops (the backends'; every API instance has one too).
    pub hops: Vec<String>,
    /// A hop's round trip measured at the start (none on loopback).
    pub measured: Option<crate::network::Measured>,
}

impl NetworkInfo {
    pub(super) fn of(backends: &Backends) -> Self {
        match &backends.network {
            None => Self { profile: "loopback".into(), ..Self::default() },
            Some(n) => Self {
                profile: n.profile.name.to_owned(),
                rtt_ms: n.profile.rtt_ms,
                jitter_ms: n.profile.jitter_ms,
                hops: n.hops.iter().map(|h| h.name.clone()).chain(["api (one per instance)".to_owned()]).collect(),
                measured: Some(n.measured),
            },
        }
    }

    /// One line for the preamble and the report.
    pub fn text(&self) -> String {
        match &self.measured {
            None => format!("network {}: no proxy", if self.profile.is_empty() { "loopback" } else { &self.profile }),
            Some(m) => format!(
                "network {}: {} ms RTT ± {} ms on every hop ({}); a hop measured {} ms p50, {} ms p99 (loopback alone {} ms)",
                self.profile,
                self.rtt_ms,
                self.jitter_ms,
                self.hops.join(", "),
                num(m.p50_ms),
                num(m.p99_ms),
                num(m.direct_p50_ms),
            ),
        }
    }
}

