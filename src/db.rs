//! Connecting to the configured database: SQLite (embedded default) or MariaDB/MySQL,
//! chosen by the URL scheme, as sea-orm does.

use std::{path::Path, time::Duration};

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};

use crate::configuration::DatabaseSettings;

/// Opens the pool; for SQLite creates the file's folder first and turns on WAL so readers
/// never wait for the writer.
///
/// # Errors
///
/// One line naming `database.url` when the database cannot be reached.
pub async fn connect(cfg: &DatabaseSettings) -> Result<DatabaseConnection, String> {
    if let Some(rest) = cfg.url.strip_prefix("sqlite://") {
        let file = rest.split('?').next().unwrap_or_default();
        if let Some(dir) = Path::new(file).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("database.url: cannot create {}: {e}", dir.display()))?;
        }
    } else if !cfg.url.starts_with("mysql://") && !cfg.url.starts_with("mariadb://") {
        return Err(format!(
            "database.url = \"{}\" is not supported; use sqlite://… or mysql://… (APP__DATABASE__URL)",
            redact(&cfg.url)
        ));
    }
    let url = cfg.url.replacen("mariadb://", "mysql://", 1);
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(cfg.max_connections.max(1))
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    let db = Database::connect(opts).await.map_err(|e| {
        format!("database.url = \"{}\" is unreachable: {e} (APP__DATABASE__URL)", redact(&cfg.url))
    })?;
    if db.get_database_backend() == DbBackend::Sqlite {
        use sea_orm::ConnectionTrait;
        db.execute_unprepared("PRAGMA journal_mode=WAL").await.map_err(|e| format!("database.url: {e}"))?;
    }
    Ok(db)
}

/// The URL with any password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `sqlite` or `mysql`, for `/api/v1/strategy`.
pub fn backend_name(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DbBackend::Sqlite => "sqlite",
        DbBackend::MySql => "mysql",
        _ => "other",
    }
}

/// The database's name: the path of a `mysql://` URL, the file stem of a `sqlite://` one.
pub fn database_name(url: &str) -> String {
    let without_query = url.split('?').next().unwrap_or_default();
    let last = without_query.rsplit('/').next().unwrap_or_default();
    let name = last.split('.').next().unwrap_or_default();
    if name.is_empty() { "nanum".to_owned() } else { name.to_owned() }
}
