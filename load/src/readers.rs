//! Many distinct readers, fast. Signing 10,000 readers up over the API costs two argon2
//! hashes each (minutes); against nanum the load tools instead
//!
//! - create the accounts in bulk, straight in the database (one multi-row `INSERT` per
//!   1,000), with a password hash no login accepts — they exist, they just cannot sign in;
//! - mint their access tokens with the server's JWT secret, through a [`Mint`] the `nanum`
//!   binary passes in (so this crate never depends on the server's library).
//!
//! Applications have no foreign key to `users` (the race tables live in the `strategies`
//! crate, apart from the catalogue), so minted tokens for ids with no account are accepted
//! too; `nanum loadtest` says which of the two it did.

use std::sync::Arc;

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};

use crate::target::Reader;

/// Signs an access token for `(secret, user id, role)` exactly as the server does.
pub type Mint = Arc<dyn Fn(&str, i64, &str) -> anyhow::Result<String> + Send + Sync>;

/// Rows per `INSERT`: 4 placeholders each stays far below MariaDB's 65,535 and SQLite's 32,766
/// placeholders.
const CHUNK: usize = 1000;

/// Stored instead of an argon2 hash: not a PHC string, so every login with it fails.
const NO_LOGIN: &str = "!bulk-created-by-nanum-load";

/// Inserts `count` reader accounts (emails `load-<run>-<i>@load.test`) and returns their
/// ids in insertion order.
///
/// # Errors
///
/// Any database error (a database without nanum's `users` table, for one).
pub async fn create_users(db: &DatabaseConnection, count: usize) -> anyhow::Result<Vec<i64>> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let backend = db.get_database_backend();
    let now = chrono::Utc::now();
    for start in (0..count).step_by(CHUNK) {
        let end = (start + CHUNK).min(count);
        let rows = vec!["(?, ?, ?, 'reader', ?)"; end - start].join(", ");
        let sql = format!("INSERT INTO users (email, password_hash, name, role, created_at) VALUES {rows}");
        let mut values: Vec<Value> = Vec::with_capacity((end - start) * 4);
        for i in start..end {
            values.push(format!("load-{run}-{i}@load.test").into());
            values.push(NO_LOGIN.into());
            values.push(format!("load reader {i}").into());
            values.push(now.into());
        }
        db.execute_raw(Statement::from_sql_and_values(backend, &sql, values))
            .await
            .context("creating reader accounts (does the database have nanum's users table?)")?;
    }
    let sql = "SELECT id FROM users WHERE email LIKE ? ORDER BY id";
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, [format!("load-{run}-%").into()]))
        .await?;
    let ids = rows.iter().map(|r| r.try_get_by_index::<i64>(0)).collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(ids.len() == count, "created {count} readers but found {}", ids.len());
    Ok(ids)
}

/// Readers with minted tokens for `ids`.
///
/// # Errors
///
/// A signing failure.
pub fn minted(mint: &Mint, secret: &str, ids: &[i64]) -> anyhow::Result<Vec<Reader>> {
    ids.iter().map(|&id| Ok(Reader { id, token: Some(mint(secret, id, "reader")?) })).collect()
}

/// Readers `first..first + count` with no token (targets that identify readers by id).
pub fn numbered(first: i64, count: usize) -> Vec<Reader> {
    (0..count).map(|i| Reader { id: first + i64::try_from(i).unwrap_or(i64::MAX), token: None }).collect()
}
