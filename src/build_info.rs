//! What this binary is: its version and the commit it was built from (`build.rs`), shown by
//! `nanum --version`, in `/health/ready`'s body and as the `nanum_build_info` metric.

use crate::configuration::Settings;

/// The crate's version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit the binary was built from, `unknown` when the build had neither `.git` nor
/// the `NANUM_GIT_COMMIT` variable.
pub const COMMIT: &str = env!("NANUM_GIT_COMMIT");

/// `nanum --version`: `nanum 0.1.0 (commit 0123456789ab)`.
pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("NANUM_GIT_COMMIT"), ")");

/// Gauge, always 1: `nanum_build_info{version, commit, strategy, role}` — one label set per
/// process, so a dashboard can tell which build and strategy each scraped instance runs.
pub const BUILD_INFO: &str = "nanum_build_info";

/// Registers [`BUILD_INFO`] for this process's settings (after the recorder is installed).
pub fn register(settings: &Settings) {
    let labels = [
        ("version", VERSION.to_owned()),
        ("commit", COMMIT.to_owned()),
        ("strategy", settings.concurrency.strategy.to_string()),
        ("role", settings.instance.role.to_string()),
    ];
    metrics::gauge!(BUILD_INFO, &labels).set(1.0);
}
