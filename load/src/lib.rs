//! nanum's race harness and the tools built on it: real `nanum serve` processes, a crowd of
//! readers racing them, the HTTP load generator (`nanum loadtest`) and the strategy
//! comparison (`nanum compare`). One harness for the tests, the bench and both commands,
//! kept apart from the serving code: the server never links a load generator.
//!
//! # Layout
//!
//! - [`cluster`], [`topology`]: real processes of the binary on port 0, all-in-one or split
//!   into API and worker roles.
//! - [`crowd`]: signed-up readers racing one event at once (the multi-instance tests).
//! - [`api`]: the control-plane calls around a race (sign-up, events, settling, winners).
//! - [`target`], [`engine`], [`figures`]: the load generator — request templates and win
//!   rules, keep-alive connections in a closed or open model, HDR latency.
//! - [`readers`]: readers in bulk (accounts inserted, tokens minted).
//! - [`backends`], [`deploy`]: a fresh database and fresh Redis/Kafka names per deployment,
//!   and the check of a race against the database.
//! - [`network`]: a delaying, cuttable TCP hop per backend and API instance
//!   (`compare --network`).
//! - [`loadtest`], [`compare`]: the two commands.

pub mod api;
pub mod backends;
pub mod cluster;
pub mod compare;
pub mod crowd;
pub mod deploy;
pub mod engine;
pub mod figures;
pub mod loadtest;
pub mod network;
pub mod readers;
pub mod target;
pub mod topology;

use std::{future::Future, path::PathBuf};

pub use backends::Backends;
pub use cluster::{Cluster, Instance, PerInstance};
pub use compare::CompareArgs;
pub use crowd::{Crowd, CrowdReport};
pub use deploy::{Deployment, Spec};
pub use loadtest::LoadtestArgs;
pub use readers::Mint;
pub use topology::Topology;

/// What the commands need from the `nanum` binary, passed in so this crate never depends
/// on the server's library.
#[derive(Clone)]
pub struct Tools {
    /// The binary to spawn (`std::env::current_exe()`).
    pub binary: PathBuf,
    /// Signs access tokens as the server does.
    pub mint: Mint,
    /// `database.url` as configured (compare and `--spawn` create fresh databases on its
    /// server, or use SQLite files when it is SQLite).
    pub database_url: String,
    /// `redis.url` as configured (empty = none).
    pub redis_url: String,
    /// `kafka.brokers` as configured (empty = none).
    pub kafka_brokers: String,
}

impl std::fmt::Debug for Tools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tools").field("binary", &self.binary).finish_non_exhaustive()
    }
}

/// Runs `work` until it ends or Ctrl-C. Interrupted, the work is dropped — and with it
/// every spawned server (they are killed when dropped), which an exiting process would
/// otherwise leave running.
///
/// # Errors
///
/// The work's error, or "interrupted".
pub async fn until_interrupted(work: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; the spawned servers were stopped"),
    }
}
