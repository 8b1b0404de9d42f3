//! Layered configuration: `config/base.toml` → `config/{APP_ENV}.toml` → `APP__SECTION__KEY`
//! environment variables → command-line flags (applied by the caller as overrides).

use std::path::PathBuf;

use serde::Deserialize;
use strategies::{
    ConcurrencyConfig,
    kafka::{KafkaConfig, Role},
};

/// The development JWT secret of `config/base.toml`; refused off loopback (see [`Settings::check`]).
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
    /// Request rates per client IP and per user (`[rate_limit]`).
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    /// Log format.
    #[serde(default)]
    pub log: LogSettings,
}

/// `[rate_limit]`: requests per minute per key (a burst of that size, refilled evenly);
/// 0 switches one limit off, `enabled = false` all of them. The benchmark tools switch them
/// off, since thousands of readers from one address are what they measure.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RateLimitSettings {
    /// Master switch.
    pub enabled: bool,
    /// `POST /auth/login` per client IP.
    pub login_per_ip_per_minute: u32,
    /// `POST /users` per client IP.
    pub register_per_ip_per_minute: u32,
    /// `POST /events/{id}/applications` per client IP.
    pub apply_per_ip_per_minute: u32,
    /// `POST /events/{id}/applications` per user.
    pub apply_per_user_per_minute: u32,
    /// Most keys (addresses, users, emails) one limiter remembers.
    pub max_keys: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            login_per_ip_per_minute: 60,
            register_per_ip_per_minute: 20,
            apply_per_ip_per_minute: 600,
            apply_per_user_per_minute: 30,
            max_keys: 100_000,
        }
    }
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
    /// A second listener (same host) for `/metrics` and the health probes; when set,
    /// `/metrics` leaves the public port (`src/management.rs`). Unset: everything on `port`.
    #[serde(default)]
    pub management_port: Option<u16>,
    /// Load balancers whose `X-Forwarded-For` names the client (addresses or CIDR networks;
    /// `src/client_ip.rs`). Empty: the TCP peer is the client and forwarding headers are
    /// ignored.
    #[serde(default)]
    pub trusted_proxies: crate::client_ip::TrustedProxies,
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
    /// Take `index` from the host name's trailing `-<n>` (a StatefulSet pod's ordinal;
    /// `src/instance.rs`).
    #[serde(default)]
    pub index_from_hostname: bool,
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
    /// Account created as admin at start-up when absent (never promoted from a reader).
    pub admin_email: String,
    /// Its password when it is first created.
    pub admin_password: Secret,
    /// Failed logins per email within the window before 429.
    pub login_max_failures: u32,
    /// Window of that count.
    pub login_window_secs: u64,
    /// argon2 runs at once (each holds `argon2.memory_kib`); 0 = one per core.
    #[serde(default)]
    pub hash_concurrency: usize,
    /// How long a login or sign-up waits for a hashing slot before 503 `overloaded`.
    #[serde(default = "default_hash_max_wait_ms")]
    pub hash_max_wait_ms: u64,
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

fn default_hash_max_wait_ms() -> u64 {
    10_000
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

/// The defaults, compiled in: the binary starts wherever it is copied, with no
/// `config/` folder beside it; files and `APP__…` variables override them.
const BUILT_IN_BASE: &str = include_str!("../config/base.toml");

/// The environment files shipped in `config/`, compiled in for when the folder is absent.
const BUILT_IN_ENVIRONMENTS: [(&str, &str); 3] = [
    ("local", include_str!("../config/local.toml")),
    ("test", include_str!("../config/test.toml")),
    ("production", include_str!("../config/production.toml")),
];

/// The folder of the on-disk layers: `APP_CONFIG_DIR`, else `./config`.
pub fn config_dir() -> PathBuf {
    std::env::var("APP_CONFIG_DIR").map_or_else(|_| PathBuf::from("config"), PathBuf::from)
}

/// Loads the layers for `APP_ENV` (default `local`), applying `overrides` (key, value) last.
///
/// # Errors
///
/// A malformed file, or a value of the wrong type — the message names the key.
pub fn load(overrides: &[(&str, String)]) -> Result<Settings, config::ConfigError> {
    let environment = std::env::var("APP_ENV").unwrap_or_else(|_| default_env());
    load_for(&environment, overrides)
}

/// As [`load`], for an explicit environment name. Layers, later winning: the compiled-in
/// `base.toml`, `<config dir>/base.toml` if present, `<config dir>/{environment}.toml` (or
/// the compiled-in one of that name), `APP__SECTION__KEY` variables, `overrides`.
///
/// # Errors
///
/// See [`load`].
pub fn load_for(environment: &str, overrides: &[(&str, String)]) -> Result<Settings, config::ConfigError> {
    use config::{File, FileFormat};
    let dir = config_dir();
    let env_file = dir.join(format!("{environment}.toml"));
    let mut builder = config::Config::builder()
        .add_source(File::from_str(BUILT_IN_BASE, FileFormat::Toml))
        .add_source(File::from(dir.join("base.toml")).required(false));
    let built_in = BUILT_IN_ENVIRONMENTS.iter().find(|(name, _)| *name == environment);
    builder = match built_in {
        Some((_, text)) if !env_file.exists() => builder.add_source(File::from_str(text, FileFormat::Toml)),
        _ => builder.add_source(File::from(env_file).required(false)),
    };
    builder = builder
        .add_source(
            config::Environment::with_prefix("APP").prefix_separator("__").separator("__").try_parsing(true),
        )
        .set_override("environment", environment)?;
    for (key, value) in overrides {
        builder = builder.set_override(*key, value.as_str())?;
    }
    let mut settings: Settings = builder.build()?.try_deserialize()?;
    let hostname = crate::instance::hostname();
    crate::instance::resolve(&mut settings.instance, hostname.as_deref())
        .map_err(config::ConfigError::Message)?;
    Ok(settings)
}

/// True for a host that only this machine can reach.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why `secret` cannot sign tokens that others can reach, if it cannot.
fn weak_secret(secret: &str) -> Option<&'static str> {
    if secret == DEV_JWT_SECRET {
        Some("has its public development default")
    } else if secret.len() < MIN_JWT_SECRET_LEN {
        Some("is shorter than 32 bytes")
    } else if secret.chars().all(|c| secret.starts_with(c)) {
        Some("is one repeated character")
    } else {
        None
    }
}

/// Shortest JWT secret accepted off loopback.
pub const MIN_JWT_SECRET_LEN: usize = 32;

impl Settings {
    /// Refuses settings that must never reach production.
    ///
    /// # Errors
    ///
    /// One line naming the setting to change.
    pub fn check(&self) -> Result<(), String> {
        // Anything reachable from another machine (or any production) must not accept tokens
        // signed with a secret that is public or guessable, nor the public admin password.
        if self.environment == "production" || !is_loopback(&self.server.host) {
            if let Some(why) = weak_secret(self.auth.jwt_secret.expose()) {
                return Err(format!(
                    "auth.jwt_secret {why}; server.host = \"{}\" is reachable from other machines, so \
                     set APP__AUTH__JWT_SECRET to 32 or more random bytes (or listen on 127.0.0.1)",
                    self.server.host
                ));
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

/// `log.format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default; colours only on a terminal).
    #[default]
    Human,
    /// One JSON object per line, with the request span's fields.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogSettings {
    /// `human` or `json` (`config/production.toml` sets `json`).
    #[serde(default)]
    pub format: LogFormat,
}

#[cfg(test)]
mod trusted_proxy_tests {
    #[test]
    fn no_proxy_is_trusted_by_default() {
        let settings = super::load_for("test", &[]).expect("the test settings");
        assert!(settings.server.trusted_proxies.is_empty());
    }

    #[test]
    fn trusted_proxies_read_from_one_comma_separated_string_as_the_environment_gives_it() {
        let list = ("server.trusted_proxies", "10.0.0.0/8, 127.0.0.1".to_owned());
        let settings = super::load_for("test", &[list]).expect("a valid list");
        let trusted = &settings.server.trusted_proxies;
        assert!(trusted.contains("10.4.5.6".parse().unwrap()));
        assert!(trusted.contains("127.0.0.1".parse().unwrap()));
        assert!(!trusted.contains("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn a_malformed_trusted_proxy_stops_the_load_naming_the_setting() {
        let list = ("server.trusted_proxies", "10.0.0.0/40".to_owned());
        let e = super::load_for("test", &[list]).expect_err("a prefix past 32");
        assert!(e.to_string().contains("trusted_proxies"), "{e}");
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
