//! The pages' session, ended on the server at sign-out.
//!
//! The cookie is `<user id>.<generation>.<expiry>.<signature>`: an HMAC-SHA256 with the
//! server secret (`auth.jwt_secret`) over the rest, so it cannot be invented or altered; it
//! is not an API token (the API wants a JWT in `Authorization`). Each request re-reads the
//! account (`users.role`, `users.session_generation`): a cookie names an account that
//! exists, with its role as it is now, and only while its generation is the account's.
//! Signing out adds one to the generation, which ends every session of that account — in
//! every browser and on every instance, since the count lives in the database.

use hmac::{Hmac, KeyInit, Mac};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use sea_orm_migration::prelude::*;
use sha2::Sha256;

use crate::auth::AuthUser;

/// HMAC-SHA256 of `parts` under `secret`, for the purpose `domain` (a session and a CSRF
/// token can never stand for one another), in lower-case hex.
pub(super) fn sign(secret: &str, domain: &str, parts: &[&str]) -> String {
    let mac = mac(secret, domain, parts).finalize().into_bytes();
    mac.iter().map(|b| format!("{b:02x}")).collect()
}

/// True when `signature` is [`sign`]'s answer for the same input (compared in constant time).
pub(super) fn verify(secret: &str, domain: &str, parts: &[&str], signature: &str) -> bool {
    let Some(bytes) = unhex(signature) else { return false };
    mac(secret, domain, parts).verify_slice(&bytes).is_ok()
}

fn mac(secret: &str, domain: &str, parts: &[&str]) -> Hmac<Sha256> {
    // Any key length is accepted by HMAC; the fallback only satisfies the type.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| Hmac::<Sha256>::new_from_slice(&[0]).expect("a one-byte key"));
    mac.update(domain.as_bytes());
    for part in parts {
        // Length-prefixed: ("ab", "c") and ("a", "bc") sign differently.
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac
}

fn unhex(raw: &str) -> Option<Vec<u8>> {
    if raw.len() != 64 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..raw.len()).step_by(2).map(|i| u8::from_str_radix(&raw[i..i + 2], 16).ok()).collect()
}

/// A session cookie's value for `user_id` at `generation`, valid for `ttl_secs`.
pub(super) fn issue(secret: &str, user_id: i64, generation: i64, ttl_secs: u64) -> String {
    let expiry = chrono::Utc::now()
        .timestamp()
        .saturating_add(<i64 as TryFrom<u64>>::try_from(ttl_secs).unwrap_or(i64::MAX));
    let (id, generation, expiry) = (user_id.to_string(), generation.to_string(), expiry.to_string());
    let signature = sign(secret, "session", &[&id, &generation, &expiry]);
    format!("{id}.{generation}.{expiry}.{signature}")
}

/// (user id, generation) of a cookie that is signed and unexpired.
fn parse(secret: &str, cookie: &str) -> Option<(i64, i64)> {
    let mut parts = cookie.splitn(4, '.');
    let (id, generation, expiry, signature) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if !verify(secret, "session", &[id, generation, expiry], signature) {
        return None;
    }
    let expiry: i64 = expiry.parse().ok()?;
    (chrono::Utc::now().timestamp() < expiry).then_some(())?;
    Some((id.parse().ok()?, generation.parse().ok()?))
}

/// The signed-in user of `cookie`, when it is valid and its session was not ended.
///
/// # Errors
///
/// Database errors.
pub(super) async fn user_of(
    db: &DatabaseConnection,
    secret: &str,
    cookie: &str,
) -> Result<Option<AuthUser>, DbErr> {
    let Some((id, generation)) = parse(secret, cookie) else { return Ok(None) };
    Ok(account(db, id)
        .await?
        .filter(|(_, current)| *current == generation)
        .map(|(role, _)| AuthUser { id, role }))
}

/// (role, session generation) of account `id`.
///
/// # Errors
///
/// Database errors.
pub(super) async fn account(db: &DatabaseConnection, id: i64) -> Result<Option<(String, i64)>, DbErr> {
    let backend = db.get_database_backend();
    let sql = "SELECT role, session_generation FROM users WHERE id = ?";
    let row = db.query_one_raw(Statement::from_sql_and_values(backend, sql, [id.into()])).await?;
    row.map(|r| Ok((r.try_get_by_index::<String>(0)?, r.try_get_by_index::<i64>(1)?))).transpose()
}

/// Ends every session of account `id`.
///
/// # Errors
///
/// Database errors.
pub(super) async fn end_all(db: &DatabaseConnection, id: i64) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let sql = "UPDATE users SET session_generation = session_generation + 1 WHERE id = ?";
    db.execute_raw(Statement::from_sql_and_values(backend, sql, [id.into()])).await.map(|_| ())
}

#[derive(DeriveIden)]
enum Users {
    Table,
    SessionGeneration,
}

/// `users.session_generation` (0 for every existing account).
#[derive(Debug)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000100_users_session_generation"
    }
}

// sea-orm-migration's trait elides the lifetime; naming it here would not match.
#[expect(elided_lifetimes_in_paths, reason = "sea-orm-migration's trait elides the lifetime")]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.has_column("users", "session_generation").await? {
            return Ok(());
        }
        let column = ColumnDef::new(Users::SessionGeneration).big_integer().not_null().default(0).to_owned();
        m.alter_table(Table::alter().table(Users::Table).add_column(column).to_owned()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(Users::Table).drop_column(Users::SessionGeneration).to_owned())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_verifies_only_unaltered_and_under_its_secret() {
        let cookie = issue("secret", 7, 3, 60);
        assert_eq!(parse("secret", &cookie), Some((7, 3)));
        assert_eq!(parse("other secret", &cookie), None);
        let altered = cookie.replacen("7.3.", "8.3.", 1);
        assert_eq!(parse("secret", &altered), None);
        assert_eq!(parse("secret", "7.3.99999999999.not-hex"), None);
        assert_eq!(parse("secret", &issue("secret", 7, 3, 0)), None, "expired");
    }
}
