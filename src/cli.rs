//! The `nanum` command line: `nanum [serve] [--strategy NAME] [--port N] …`, plus
//! `nanum seed books --count N` (a generated catalogue), `nanum search reindex` (rebuild
//! the index from the database; run it while no server holds the index), `nanum migrate`
//! (apply the migrations and exit; `src/migrate.rs`), and the load tools `nanum loadtest`
//! and `nanum compare` (built with the cargo feature `load`; see `load_tools`).

use std::sync::Arc;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use strategies::{StrategyName, kafka::Role};

use crate::{
    configuration::{self, Settings},
    search::{SearchIndex, WriterBudget, outbox},
    seed,
    startup::Application,
};

/// Book-giveaway service with selectable concurrency control.
#[derive(Debug, Parser)]
#[command(name = "nanum", version = crate::build_info::LONG_VERSION, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve(ServeArgs),
    /// Apply the pending database migrations and exit (a no-op when there are none; safe
    /// beside starting servers: one lock per database).
    Migrate {
        /// database.url
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Generate data.
    #[command(subcommand)]
    Seed(SeedCommand),
    /// Manage the search index.
    #[command(subcommand)]
    Search(SearchCommand),
    /// HTTP load generator: keep-alive connections, fixed concurrency or arrival rate, HDR
    /// latency, a win rule — against any URL, or nanum processes it starts (--spawn).
    Loadtest(Box<crate::load_tools::LoadtestArgs>),
    /// Every strategy the backends allow, raced over HTTP in four shapes beside the HTTP
    /// and SQL limits; writes reports/<timestamp>/ (table, results.json, charts).
    Compare(Box<crate::load_tools::CompareArgs>),
}

#[derive(Debug, Subcommand)]
enum SeedCommand {
    /// Insert a generated catalogue (Korean and English books) with outbox rows.
    Books {
        /// How many books.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Random seed: the same seed gives the same books.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// database.url
        #[arg(long)]
        database_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum SearchCommand {
    /// Rebuild the index under search.index_dir from the books table (no server may hold it).
    Reindex {
        /// database.url
        #[arg(long)]
        database_url: Option<String>,
    },
}

/// Flags that override configuration (the last layer).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// concurrency.strategy, e.g. pessimistic-lock
    #[arg(long, value_parser = |s: &str| s.parse::<StrategyName>())]
    strategy: Option<StrategyName>,
    /// server.port (0 = any free port)
    #[arg(long)]
    port: Option<u16>,
    /// server.host
    #[arg(long)]
    host: Option<String>,
    /// database.url
    #[arg(long)]
    database_url: Option<String>,
    /// instance.role: api (HTTP only), worker (consumers only) or all
    #[arg(long, value_parser = |s: &str| s.parse::<Role>())]
    role: Option<Role>,
}

impl ServeArgs {
    fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut o = Vec::new();
        if let Some(s) = self.strategy {
            o.push(("concurrency.strategy", s.to_string()));
        }
        if let Some(p) = self.port {
            o.push(("server.port", p.to_string()));
        }
        if let Some(h) = &self.host {
            o.push(("server.host", h.clone()));
        }
        if let Some(u) = &self.database_url {
            o.push(("database.url", u.clone()));
        }
        if let Some(r) = self.role {
            o.push(("instance.role", r.to_string()));
        }
        o
    }
}

impl Cli {
    /// The log filter when `RUST_LOG` is unset: the server logs at `info`; the load tools
    /// only warn, so their table is not buried under client-library chatter.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Some(Command::Loadtest(_) | Command::Compare(_)) => "warn",
            _ => "info,sqlx=warn",
        }
    }
}

/// Runs the parsed command.
///
/// # Errors
///
/// A one-line start-up error (bad setting, unreachable backend) or a server I/O error.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
        Some(Command::Seed(SeedCommand::Books { count, seed, database_url })) => {
            return seed_books(count, seed, database_url).await;
        }
        Some(Command::Search(SearchCommand::Reindex { database_url })) => return reindex(database_url).await,
        Some(Command::Migrate { database_url }) => return migrate(database_url).await,
        Some(Command::Loadtest(args)) => return crate::load_tools::loadtest(*args).await,
        Some(Command::Compare(args)) => return crate::load_tools::compare(*args).await,
    };
    let settings =
        configuration::load(&args.overrides()).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let host = settings.server.host.clone();
    let strategy = settings.concurrency.strategy;
    let role = settings.instance.role;
    let database = crate::db::redact(&settings.database.url);
    let redis = match settings.redis.url.as_str() {
        "" => String::new(),
        url => format!(", redis {}", crate::db::redact(url)),
    };
    let app = Application::build(settings).await?;
    println!(
        "nanum listening on http://{host}:{} (strategy {strategy}, role {role}, database {database}{redis})",
        app.port()
    );
    app.run_until_stopped().await?;
    println!("nanum stopped");
    Ok(())
}

/// Settings with an optional `database.url` override, a migrated connection, and what
/// the migration did.
async fn connect(
    database_url: Option<String>,
) -> anyhow::Result<(Settings, sea_orm::DatabaseConnection, crate::migrate::Applied)> {
    let overrides: Vec<_> = database_url.map(|u| ("database.url", u)).into_iter().collect();
    let settings = configuration::load(&overrides).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let db = crate::db::connect(&settings.database).await.map_err(anyhow::Error::msg)?;
    let applied = crate::migrate::apply(&db, &settings.database).await?;
    Ok((settings, db, applied))
}

async fn migrate(database_url: Option<String>) -> anyhow::Result<()> {
    let (settings, _, done) = connect(database_url).await?;
    let database = crate::db::redact(&settings.database.url);
    println!("applied {} of {} migrations to {database}", done.applied, done.known);
    Ok(())
}

/// A progress bar on stderr (drawn only on a terminal).
pub fn progress_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::new(0).with_message(what.to_owned());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

async fn seed_books(count: u64, seed: u64, database_url: Option<String>) -> anyhow::Result<()> {
    let (settings, db, _) = connect(database_url).await?;
    let bar = progress_bar("seeding books");
    let report = seed::seed_books(&db, count, seed, &bar).await?;
    bar.finish();
    println!(
        "seeded {} books (ids {}..={}) into {} in {:.1} s ({:.0} books/s); a running server indexes them \
         from the outbox, or run `nanum search reindex`",
        report.inserted,
        report.first_id,
        report.first_id + i64::try_from(report.inserted).unwrap_or(0) - 1,
        crate::db::redact(&settings.database.url),
        report.elapsed.as_secs_f64(),
        report.rate()
    );
    Ok(())
}

async fn reindex(database_url: Option<String>) -> anyhow::Result<()> {
    let (settings, db, _) = connect(database_url).await?;
    let index = Arc::new(SearchIndex::open(&settings.search.index_dir, WriterBudget::bulk())?);
    let bar = progress_bar("indexing books");
    let started = std::time::Instant::now();
    let n = outbox::reindex(&db, &index, &bar).await?;
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "indexed {n} books into {} in {secs:.1} s ({:.0} books/s)",
        settings.search.index_dir.display(),
        n as f64 / secs.max(1e-9)
    );
    Ok(())
}
