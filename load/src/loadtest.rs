//! `nanum loadtest`: an HTTP load generator for this race, usable instead of wrk or oha —
//! keep-alive connections, a fixed concurrency or a fixed arrival rate (latency from the
//! intended send time), warm-up, a duration or a request count, many distinct readers,
//! an HDR latency histogram, a win rule — against any URL, or against nanum processes it
//! spawns itself (`--spawn api=2,worker=2`) and checks afterwards.

use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use strategies::StrategyName;

use crate::{
    Tools, api,
    backends::Backends,
    compare::parse_pair,
    deploy::{Check, Deployment, Spec},
    engine::{Engine, Load, Phase},
    figures::{Figures, num},
    readers,
    target::{Reader, Target, WinRule},
    topology::Topology,
};

/// nanum's apply path: the default target of `--spawn`.
const APPLY: &str = "/api/v1/events/{event}/applications";

/// Flags of `nanum loadtest`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    /// Target: http://host:port/path?query with {user}, {token}, {event}, {i} placeholders,
    /// or a /path sent to the --spawn'ed servers in turn. Default with --spawn: nanum's
    /// apply path, /api/v1/events/{event}/applications.
    pub url: Option<String>,
    /// HTTP method. Default: POST for nanum's apply path, else GET.
    #[arg(short = 'X', long)]
    pub method: Option<String>,
    /// A header template, `name: value` (repeatable), e.g. -H 'authorization: Bearer {token}'.
    /// Default with --spawn: that one.
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// A body template, e.g. '{"userId": {user}, "eventId": {event}}'.
    #[arg(long)]
    pub body: Option<String>,
    /// Connections, each sending its requests one after another.
    #[arg(short = 'c', long, default_value_t = 50)]
    pub concurrency: usize,
    /// Requests to send. Default: one per reader (when no --duration is given).
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// How long to send (e.g. 10s, 500ms, 2m); ends before -n if that comes first.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Fixed arrival rate, requests/s (open model): latency is measured from each request's
    /// intended send time, so queueing is not hidden (no coordinated omission).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Unrecorded warm-up first: a request count (500) or a duration (2s). With --spawn it
    /// races an event of its own.
    #[arg(long, value_parser = parse_warmup)]
    pub warmup: Option<Warmup>,
    /// One request's bound (then it counts as an error).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Distinct readers; request i is sent as reader i mod readers. Default: one per request.
    #[arg(long)]
    pub readers: Option<usize>,
    /// First reader id when readers are numbered (no --sign-up, no --database-url).
    #[arg(long, default_value_t = 1)]
    pub first_user: i64,
    /// nanum's auth.jwt_secret: mint the readers' tokens instead of signing them up (argon2
    /// twice per reader); the output says so.
    #[arg(long)]
    pub jwt_secret: Option<String>,
    /// Sign the readers up over nanum's API (POST /api/v1/users, POST /api/v1/auth/login).
    #[arg(long, conflicts_with = "jwt_secret")]
    pub sign_up: bool,
    /// With --jwt-secret: create the readers as accounts in this nanum database first (bulk
    /// inserts). With --spawn: the database server to create a fresh database on
    /// (default: database.url as configured).
    #[arg(long)]
    pub database_url: Option<String>,
    /// What {event} stands for.
    #[arg(long)]
    pub event: Option<i64>,
    /// Statuses that count as a win (comma-separated). Default: 201 with --spawn, else any
    /// 2xx unless --win-json decides.
    #[arg(long, value_delimiter = ',')]
    pub win_status: Vec<u16>,
    /// A JSON field that must equal a value for a win, path=value (repeatable), e.g.
    /// isSuccess=true or result.status="WON".
    #[arg(long)]
    pub win_json: Vec<String>,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Name of the row in the table. Default: method and URL.
    #[arg(long)]
    pub label: Option<String>,
    /// Start nanum processes of this binary first, e.g. all=1 or api=2,worker=2, on a
    /// fresh database, and stop them after.
    #[arg(long, value_parser = |s: &str| s.parse::<Topology>())]
    pub spawn: Option<Topology>,
    /// --spawn: concurrency.strategy.
    #[arg(long, default_value = "pessimistic-lock", value_parser = |s: &str| s.parse::<StrategyName>())]
    pub strategy: StrategyName,
    /// --spawn: kafka.partitions.
    #[arg(long)]
    pub partitions: Option<u32>,
    /// --spawn: copies of the event raced for (unless --event is given).
    #[arg(long, default_value_t = 10)]
    pub copies: i64,
    /// --spawn: redis.url (default: as configured).
    #[arg(long)]
    pub redis_url: Option<String>,
    /// --spawn: kafka.brokers (default: as configured).
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// --spawn: a setting for every instance, as its environment variable (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub set: Vec<(String, String)>,
}

/// `--warmup`: a count or a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warmup {
    /// Requests.
    Requests(u64),
    /// Time.
    For(Duration),
}

fn parse_warmup(s: &str) -> Result<Warmup, String> {
    match s.trim().parse::<u64>() {
        Ok(n) => Ok(Warmup::Requests(n)),
        Err(_) => parse_duration(s).map(Warmup::For),
    }
}

/// `250ms`, `10s`, `2m`, or plain seconds. (No crate in the dependency tree parses
/// durations — humantime is not in it — and these three units are all the flags take.)
///
/// # Errors
///
/// Anything else.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: f64 =
        number.trim().parse().map_err(|_| format!("`{s}` is not a duration (e.g. 500ms, 10s, 2m)"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: the unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{s}`: {e}"))
}

/// What one loadtest measured, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The row's name.
    pub label: String,
    /// Method and URL template.
    pub target: String,
    /// Servers the connections were spread over.
    pub servers: usize,
    /// Where the readers came from.
    pub readers: String,
    /// Connections.
    pub concurrency: usize,
    /// Arrival rate, when open-model.
    pub rate: Option<f64>,
    /// The win rule in words.
    pub win_rule: String,
    /// The figures.
    pub figures: Figures,
    /// With --spawn: what the database held afterwards.
    pub check: Option<Check>,
}

impl LoadReport {
    /// The table: the same columns whatever the target, so runs against different services
    /// can be pasted together.
    pub fn table(&self) -> String {
        let m = &self.figures;
        let violations = self.check.map_or("—".to_owned(), |c| {
            let v = c.violations();
            if v.is_empty() {
                "0".to_owned()
            } else {
                v.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
            }
        });
        let wins = match self.check {
            Some(c) => format!("{} (db: {} / {})", m.wins, c.winners, c.copies),
            None => m.wins.to_string(),
        };
        format!(
            "| target | requests | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | wins | statuses | violations |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---|---|---|\n\
             | {} | {} | {} | {} | {} | {} | {} | {} | {wins} | {} | {violations} |",
            self.label,
            m.requests,
            num(m.rps),
            num(m.p50_ms),
            num(m.p90_ms),
            num(m.p99_ms),
            num(m.p999_ms),
            num(m.max_ms),
            m.statuses_text(),
        )
    }
}

/// Runs `nanum loadtest`.
///
/// # Errors
///
/// Bad flags, a target that does not accept connections, a spawn that fails.
pub async fn run(args: LoadtestArgs, tools: &Tools) -> anyhow::Result<()> {
    let report = match args.spawn {
        Some(topology) => spawned(&args, tools, topology).await?,
        None => against_url(&args, tools).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.table());
    }
    Ok(())
}

/// How many requests and readers, from -n, --duration and --readers.
fn counts(args: &LoadtestArgs) -> (Option<u64>, usize) {
    let readers =
        args.readers.or_else(|| args.requests.and_then(|n| usize::try_from(n).ok())).unwrap_or(1000).max(1);
    let requests = match (args.requests, args.duration) {
        (None, None) => Some(readers as u64),
        (n, _) => n,
    };
    (requests, readers)
}

// Long on purpose: the steps of a run against a given URL (readers, tokens, warm-up, measure,
// settle) in the order they happen.
async fn against_url(args: &LoadtestArgs, tools: &Tools) -> anyhow::Result<LoadReport> {
    let url = args.url.as_deref().context("give a URL (http://host:port/path), or --spawn servers")?;
    let method = args.method.clone().unwrap_or_else(|| "GET".into());
    let target = Target::new(url, &[], &method, &args.headers, args.body.as_deref())?;
    let (requests, count) = counts(args);
    let (readers, source) = if args.sign_up {
        let base = format!("http://{}", target.authorities[0]);
        let bar = bar(count as u64, "signing readers up");
        let signed = api::sign_up(&api::client()?, &[base], count, &bar).await?;
        bar.finish_and_clear();
        let readers = signed.into_iter().map(|(id, token)| Reader { id, token: Some(token) }).collect();
        (readers, format!("{count} readers signed up over the API (register + login each)"))
    } else if let Some(secret) = &args.jwt_secret {
        if let Some(url) = &args.database_url {
            let db = strategies::contract::connect(url, 2).await.context("--database-url")?;
            let ids = readers::create_users(&db, count).await;
            let _ = db.close().await;
            let readers = readers::minted(&tools.mint, secret, &ids?)?;
            (
                readers,
                format!("{count} accounts created in bulk in the database; tokens minted with --jwt-secret"),
            )
        } else {
            let ids: Vec<i64> = readers::numbered(args.first_user, count).iter().map(|r| r.id).collect();
            let readers = readers::minted(&tools.mint, secret, &ids)?;
            let last = args.first_user + i64::try_from(count).unwrap_or(i64::MAX) - 1;
            (
                readers,
                format!(
                    "tokens minted with --jwt-secret for user ids {}..={last} (no accounts behind them: \
                     nanum's applications have no foreign key to users; add --database-url to create them)",
                    args.first_user
                ),
            )
        }
    } else {
        if target.uses_token() {
            bail!("the request names {{token}}: give --jwt-secret (nanum) or --sign-up");
        }
        let last = args.first_user + i64::try_from(count).unwrap_or(i64::MAX) - 1;
        (
            readers::numbered(args.first_user, count),
            format!("{count} numbered readers, ids {}..={last}", args.first_user),
        )
    };
    if target.uses_event() && args.event.is_none() {
        bail!("the request names {{event}}: give --event ID");
    }
    let win = WinRule::new(&args.win_status, &args.win_json)?;
    let label = args.label.clone().unwrap_or_else(|| format!("{} {url}", target.method));
    let figures = measure(
        args,
        Plan {
            target: target.clone(),
            readers,
            win: win.clone(),
            keep: Vec::new(),
            requests,
            event: args.event,
            warm_event: args.event,
        },
    )
    .await?;
    Ok(LoadReport {
        label,
        target: format!("{} {url}", target.method),
        servers: target.authorities.len(),
        readers: source,
        concurrency: args.concurrency,
        rate: args.rate,
        win_rule: win.describe(),
        figures: Figures::from(&figures),
        check: None,
    })
}

// Long on purpose: spawn, race, check the database, stop: the spawned run's steps in the order
// they happen, with the processes' teardown on every path.
async fn spawned(args: &LoadtestArgs, tools: &Tools, topology: Topology) -> anyhow::Result<LoadReport> {
    let database_url = args.database_url.clone().unwrap_or_else(|| tools.database_url.clone());
    let redis_url = args.redis_url.clone().unwrap_or_else(|| tools.redis_url.clone());
    let kafka_brokers = args.kafka_brokers.clone().unwrap_or_else(|| tools.kafka_brokers.clone());
    let backends = Backends::probe(&database_url, &redis_url, &kafka_brokers).await?;
    if let Some(missing) = backends.skipped().into_iter().find(|s| s.strategy == args.strategy.as_str()) {
        bail!("{}: {}", missing.strategy, missing.reason);
    }
    let spec = Spec {
        binary: tools.binary.clone(),
        strategy: args.strategy,
        topology,
        partitions: args.partitions,
        env: args.set.clone(),
    };
    if !args.json {
        eprintln!(
            "starting {} × nanum ({topology}, {}, {})",
            topology.count(),
            args.strategy,
            backends.database_name()
        );
    }
    let deployment = Deployment::start(&spec, &backends).await?;
    let result = async {
        let url = args.url.clone().unwrap_or_else(|| APPLY.to_owned());
        let nanum_race = url == APPLY;
        let method = args.method.clone().unwrap_or_else(|| if nanum_race { "POST".into() } else { "GET".into() });
        let headers =
            if args.headers.is_empty() { vec!["authorization: Bearer {token}".to_owned()] } else { args.headers.clone() };
        let target = Target::new(&url, &deployment.api, &method, &headers, args.body.as_deref())?;
        let (requests, count) = counts(args);
        let readers = deployment.readers(count, &tools.mint).await?;
        let event = match args.event {
            Some(event) => event,
            None => deployment.open_event(args.copies).await?,
        };
        let warm_event = match (args.warmup, args.event) {
            (Some(_), None) => Some(deployment.open_event(args.copies).await?),
            _ => Some(event),
        };
        let statuses = if args.win_status.is_empty() && args.win_json.is_empty() { vec![201] } else { args.win_status.clone() };
        let win = WinRule::new(&statuses, &args.win_json)?;
        let stats =
            measure(args, Plan { target: target.clone(), readers, win: win.clone(), keep: vec![202], requests, event: Some(event), warm_event }).await?;
        let check = if nanum_race { Some(deployment.check(event, args.copies, &stats).await?) } else { None };
        anyhow::Ok(LoadReport {
            label: args.label.clone().unwrap_or_else(|| format!("{} ({topology})", args.strategy)),
            target: format!("{} {url}", target.method),
            servers: target.authorities.len(),
            readers: format!(
                "{count} accounts created in bulk in the spawned servers' database; tokens minted with their JWT secret"
            ),
            concurrency: args.concurrency,
            rate: args.rate,
            win_rule: win.describe(),
            figures: Figures::from(&stats),
            check,
        })
    }
    .await;
    deployment.remove().await;
    let report = result?;
    if !args.json {
        eprintln!("readers: {}; win rule: {}", report.readers, report.win_rule);
    }
    Ok(report)
}

/// What one measurement sends, and what `{event}` stands for in the warm-up and after.
struct Plan {
    target: Target,
    readers: Vec<Reader>,
    win: WinRule,
    /// Statuses whose answers are kept (nanum's 202s, to settle them).
    keep: Vec<u16>,
    requests: Option<u64>,
    event: Option<i64>,
    warm_event: Option<i64>,
}

/// Connects, warms up, measures.
async fn measure(args: &LoadtestArgs, plan: Plan) -> anyhow::Result<crate::engine::Stats> {
    let Plan { target, readers, win, keep, requests, event, warm_event } = plan;
    let readers_count = readers.len();
    let mut engine = Engine::connect(target, readers, win, keep, args.concurrency).await?;
    let load = Load { requests, duration: args.duration, rate: args.rate, timeout: args.timeout };
    if let Some(warmup) = args.warmup {
        let warm = match warmup {
            Warmup::Requests(n) => Load { requests: Some(n), duration: None, ..load },
            Warmup::For(d) => Load { requests: None, duration: Some(d), ..load },
        };
        // Readers after the measured ones where there are spare readers, so the warm-up
        // does not use up the measured readers' one application.
        let first_reader = requests.and_then(|n| usize::try_from(n).ok()).unwrap_or(0) % readers_count;
        engine
            .run(Phase { load: warm, event: warm_event, first_reader, record: false }, &ProgressBar::hidden())
            .await;
    }
    let total = requests.or_else(|| args.rate.zip(args.duration).map(|(r, d)| (r * d.as_secs_f64()) as u64));
    let progress = bar(total.unwrap_or(0), "sending");
    let stats = engine.run(Phase { load, event, first_reader: 0, record: true }, &progress).await;
    progress.finish_and_clear();
    if let Some(error) = &stats.first_error {
        eprintln!("{} requests failed; the first: {error}", stats.errors);
    }
    Ok(stats)
}

fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total).with_message(what.to_owned());
    let template = if total > 0 {
        "{msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec})"
    } else {
        "{msg} [{elapsed_precise}] {human_pos} ({per_sec})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_warmups_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err() && parse_duration("x").is_err());
        assert_eq!(parse_warmup("500"), Ok(Warmup::Requests(500)));
        assert_eq!(parse_warmup("2s"), Ok(Warmup::For(Duration::from_secs(2))));
    }
}
