//! The load tools behind `nanum loadtest` and `nanum compare`, built only with the cargo
//! feature `load` (see Cargo.toml): they live in the `nanum-load` crate, and this file hands
//! them the binary, the configured backends and token minting. Without the feature the two
//! commands still parse, and say how to get a build that has them, so the serving binary
//! links no load generator, chart or histogram crate.

#[cfg(feature = "load")]
mod enabled {
    use std::{sync::Arc, time::Duration};

    use crate::{auth::TokenService, configuration};

    /// `nanum loadtest`'s arguments.
    pub type LoadtestArgs = nanum_load::LoadtestArgs;
    /// `nanum compare`'s arguments.
    pub type CompareArgs = nanum_load::CompareArgs;

    /// Runs `nanum loadtest`.
    ///
    /// # Errors
    ///
    /// A bad argument, an unreachable target, or a failed run.
    pub async fn loadtest(args: LoadtestArgs) -> anyhow::Result<()> {
        let tools = tools()?;
        on_all_cores(move || async move {
            nanum_load::until_interrupted(nanum_load::loadtest::run(args, &tools)).await
        })
        .await
    }

    /// Runs `nanum compare`.
    ///
    /// # Errors
    ///
    /// A bad argument, an unreachable backend, or a failed race.
    pub async fn compare(args: CompareArgs) -> anyhow::Result<()> {
        let tools = tools()?;
        on_all_cores(move || async move {
            nanum_load::until_interrupted(nanum_load::compare::run(args, &tools)).await
        })
        .await
    }

    /// What the load tools need from the server: this binary (to spawn), the configured
    /// backends (their defaults), and token minting exactly as the server signs.
    fn tools() -> anyhow::Result<nanum_load::Tools> {
        let settings = configuration::load(&[]).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        // Long enough for any run; the servers check only signature and expiry.
        let ttl = Duration::from_secs(24 * 3600);
        let mint: nanum_load::Mint = Arc::new(move |secret: &str, id: i64, role: &str| {
            TokenService::with_secret(secret, ttl).issue_for(id, role).map_err(|e| anyhow::anyhow!("{e}"))
        });
        Ok(nanum_load::Tools {
            binary: std::env::current_exe().map_err(|e| anyhow::anyhow!("finding this binary: {e}"))?,
            mint,
            database_url: settings.database.url,
            redis_url: settings.redis.url,
            kafka_brokers: settings.kafka.brokers,
        })
    }

    /// Runs `work` on a multi-threaded runtime of its own: `main` runs on actix's
    /// single-threaded one, and a load generator on one thread would measure itself.
    async fn on_all_cores<F, Fut>(work: F) -> anyhow::Result<()>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let outcome = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(work()));
            let _ = done.send(outcome);
        });
        result.await.map_err(|_| anyhow::anyhow!("the load runtime stopped without an answer"))?
    }
}

#[cfg(not(feature = "load"))]
mod disabled {
    /// Whatever was passed: this build cannot run the command anyway.
    #[derive(Debug, clap::Args)]
    pub struct Absent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        _args: Vec<String>,
    }

    /// `nanum loadtest`'s arguments (none in this build).
    pub type LoadtestArgs = Absent;
    /// `nanum compare`'s arguments (none in this build).
    pub type CompareArgs = Absent;

    const REBUILD: &str = "this nanum was built without the load tools (the cargo feature `load`); \
        run `cargo run --release --features load -- <loadtest|compare> …`";

    /// Says how to get a build with `nanum loadtest`.
    ///
    /// # Errors
    ///
    /// Always.
    pub async fn loadtest(_: LoadtestArgs) -> anyhow::Result<()> {
        anyhow::bail!(REBUILD)
    }

    /// Says how to get a build with `nanum compare`.
    ///
    /// # Errors
    ///
    /// Always.
    pub async fn compare(_: CompareArgs) -> anyhow::Result<()> {
        anyhow::bail!(REBUILD)
    }
}

#[cfg(not(feature = "load"))]
pub use disabled::*;
#[cfg(feature = "load")]
pub use enabled::*;
