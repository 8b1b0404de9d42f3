//! The `nanum` command line: `nanum [serve] [--strategy NAME] [--port N] …`.

use clap::{Parser, Subcommand};
use strategies::{StrategyName, kafka::Role};

use crate::{configuration, startup::Application};

/// Book-giveaway service with selectable concurrency control.
#[derive(Debug, Parser)]
#[command(name = "nanum", version, about)]
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

/// Runs the parsed command.
///
/// # Errors
///
/// A one-line start-up error (bad setting, unreachable backend) or a server I/O error.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let settings =
        configuration::load(&args.overrides()).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let host = settings.server.host.clone();
    let strategy = settings.concurrency.strategy;
    let role = settings.instance.role;
    let database = crate::db::redact(&settings.database.url);
    let app = Application::build(settings).await?;
    println!(
        "nanum listening on http://{host}:{} (strategy {strategy}, role {role}, database {database})",
        app.port()
    );
    app.run_until_stopped().await?;
    println!("nanum stopped");
    Ok(())
}
