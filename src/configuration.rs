//! Layered configuration: `config/base.toml` → `config/{APP_ENV}.toml` → `APP__SECTION__KEY`
//! environment variables → command-line flags (applied by the caller as overrides).

use std::path::PathBuf;

use serde::Deserialize;
use strategies::{
    ConcurrencyConfig,
    kafka::{KafkaConfig, Role},
};

/// The development JWT secret of `config/base.toml`; production refuses to start with it.
pub const DEV_JWT_SECRET: &str = "dev-only-secret-change-me";
/// The development admin password of `config/base.toml`; production refuses it too.
pub const DEV_ADMIN_PASSWORD: &str = "admin-password";

/// Everything nanum reads at start-up.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `APP_ENV`: `local`, `test` or `production`.
    #[serde(default = "default_env")]
    pub environment: String,
    /// HTTP listener.
    pub server: ServerSettings,
    /// Database (SQLite or MariaDB/MySQL, picked by URL scheme).
    pub database: DatabaseSettings,
    /// Redis (only the Redis strategies need it).
    pub redis: RedisSettings,
    /// Kafka (only the Kafka strategies need it).
    pub kafka: KafkaConfig,
    /// Which concurrency strategy serialises applications.
    pub concurrency: ConcurrencyConfig,
    /// This instance's place among several (partition assignment).
    pub instance: InstanceSettings,
    /// Tokens, passwords and the bootstrap admin.
    pub auth: AuthSettings,
    /// Catalogue search.
    pub search: SearchSettings,
}

fn default_env() -> String {
    "local".into()
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    /// Interface to bind.
    pub host: String,
    /// Port; 0 = any free port.
    pub port: u16,
    /// Worker threads; 0 = one per core.
    #[serde(default)]
    pub workers: usize,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `mysql://…`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
}

/// `[redis]`
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// Empty when not configured.
    #[serde(default)]
    pub url: String,
    /// Namespace of this deployment's keys; empty = `nanum:<database name>`.
    #[serde(default)]
    pub key_prefix: String,
    /// Pool size.
    #[serde(default = "default_redis_pool")]
    pub max_connections: usize,
}

fn default_redis_pool() -> usize {
    64
}

/// `[instance]`
#[derive(Debug, Clone, Deserialize)]
pub struct InstanceSettings {
    /// 0-based index of this instance.
    pub index: u32,
    /// Number of instances.
    pub count: u32,
    /// `api`, `worker` or `all` (Kafka strategies: who produces, who consumes).
    #[serde(default)]
    pub role: Role,
}

/// A configured secret: `Debug` (and so every log line and error that formats settings)
/// shows `[redacted]`; the value is read only through [`Secret::expose`].
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it (signing, hashing).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// HMAC secret of access tokens.
    pub jwt_secret: Secret,
    /// Access-token lifetime.
    pub token_ttl_secs: u64,
    /// Account created (or promoted) as admin at start-up.
    pub admin_email: String,
    /// Its password when it is first created.
    pub admin_password: Secret,
    /// Failed logins per email within the window before 429.
    pub login_max_failures: u32,
    /// Window of that count.
    pub login_window_secs: u64,
    /// argon2id cost.
    pub argon2: Argon2Settings,
}

/// argon2id parameters (tests lower them; the algorithm never changes).
#[derive(Debug, Clone, Deserialize)]
pub struct Argon2Settings {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

/// `[search]`
#[derive(Debug, Clone, Deserialize)]
pub struct SearchSettings {
    /// tantivy index folder (one process owns it).
    pub index_dir: PathBuf,
    /// Whether this process keeps its index following the change log. Every instance should
    /// (each reads the log from its own position); `false` freezes this instance's index
    /// (searches still answer, from what it had).
    #[serde(default = "default_true")]
    pub sync_enabled: bool,
    /// How often the sync task looks at the outbox when no local write woke it.
    #[serde(default = "default_sync_interval_ms")]
    pub sync_interval_ms: u64,
    /// Outbox rows read per round.
    #[serde(default = "default_sync_batch")]
    pub batch_size: u64,
    /// Change-log rows older than this are pruned; an index that has not caught up for
    /// that long (an instance down longer) is rebuilt from the books table on start.
    #[serde(default = "default_log_retention_s")]
    pub log_retention_s: u64,
}

fn default_log_retention_s() -> u64 {
    3600
}

fn default_true() -> bool {
    true
}

fn default_sync_interval_ms() -> u64 {
    200
}

fn default_sync_batch() -> u64 {
    1000
}

/// The folder holding `base.toml`: `APP_CONFIG_DIR`, else `./config`, else the crate's own.
pub fn config_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("APP_CONFIG_DIR") {
        return dir.into();
    }
    let local = PathBuf::from("config");
    if local.join("base.toml").exists() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// Loads the layers for `APP_ENV` (default `local`), applying `overrides` (key, value) last.
///
/// # Errors
///
/// A missing `base.toml`, a malformed file, or a value of the wrong type — the message
/// names the key.
pub fn load(overrides: &[(&str, String)]) -> Result<Settings, config::ConfigError> {
    let environment = std::env::var("APP_ENV").unwrap_or_else(|_| default_env());
    load_for(&environment, overrides)
}

/// As [`load`], for an explicit environment name.
///
/// # Errors
///
/// See [`load`].
pub fn load_for(environment: &str, overrides: &[(&str, String)]) -> Result<Settings, config::ConfigError> {
    let dir = config_dir();
    let mut builder = config::Config::builder()
        .add_source(config::File::from(dir.join("base.toml")))
        .add_source(config::File::from(dir.join(format!("{environment}.toml"))).required(false))
        .add_source(
            config::Environment::with_prefix("APP").prefix_separator("__").separator("__").try_parsing(true),
        )
        .set_override("environment", environment)?;
    for (key, value) in overrides {
        builder = builder.set_override(*key, value.as_str())?;
    }
    builder.build()?.try_deserialize()
}

impl Settings {
    /// Refuses settings that must never reach production.
    ///
    /// # Errors
    ///
    /// One line naming the setting to change.
    pub fn check(&self) -> Result<(), String> {
        if self.environment == "production" {
            if self.auth.jwt_secret.expose() == DEV_JWT_SECRET || self.auth.jwt_secret.expose().len() < 32 {
                return Err("auth.jwt_secret has its development default (or is shorter than 32 \
                            bytes); set APP__AUTH__JWT_SECRET"
                    .into());
            }
            if self.auth.admin_password.expose() == DEV_ADMIN_PASSWORD {
                return Err("auth.admin_password has its development default; set \
                            APP__AUTH__ADMIN_PASSWORD"
                    .into());
            }
        }
        if self.search.sync_interval_ms == 0 || self.search.batch_size == 0 {
            return Err("search.sync_interval_ms and search.batch_size must be above 0; set \
                        APP__SEARCH__SYNC_INTERVAL_MS / APP__SEARCH__BATCH_SIZE"
                .into());
        }
        if self.search.log_retention_s < 60 {
            return Err("search.log_retention_s must be at least 60 (seconds; the late-commit window \
                        needs margin); set APP__SEARCH__LOG_RETENTION_S"
                .into());
        }
        if self.instance.count == 0 || self.instance.index >= self.instance.count {
            return Err(format!(
                "instance.index ({}) must be below instance.count ({}); set APP__INSTANCE__INDEX / \
                 APP__INSTANCE__COUNT",
                self.instance.index, self.instance.count
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod secret_tests {
    use super::Secret;

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let secret = Secret::from("hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(secret.expose(), "hunter2-hunter2");
    }
}
