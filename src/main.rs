//! The `nanum` binary: sets up logging from the configuration's `log.format`, then runs the
//! command line of `nanum::cli` (serve by default) and exits non-zero on an error.

use clap::Parser;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let cli = nanum::cli::Cli::parse();
    // `log.format` from the configuration layers (`APP_ENV=production` → json); a broken
    // configuration is reported by the command itself, in the default format.
    let format = nanum::configuration::load(&[]).map(|s| s.log.format).unwrap_or_default();
    nanum::logging::init(format, cli.default_log_filter());
    match nanum::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nanum: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
