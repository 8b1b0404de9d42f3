//! Which account ids exist. A token's signature proves the server (or whoever holds its
//! secret) issued it, not that its `sub` names an account: an apply must name a real one.
//! Accounts are never deleted through the API, so an id once found is remembered (in a
//! bounded set) and the apply path asks the database once per reader, not once per request.

use std::{
    collections::HashSet,
    sync::{Mutex, MutexGuard},
};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::error::ApiError;

/// Ids known to exist, at most `max` of them (then forgotten and asked again).
#[derive(Debug)]
pub struct KnownAccounts {
    max: usize,
    // std Mutex: held for a set lookup only, never across an await.
    ids: Mutex<HashSet<i64>>,
}

impl KnownAccounts {
    /// At most `max` ids remembered.
    pub fn new(max: usize) -> Self {
        Self { max: max.max(1), ids: Mutex::new(HashSet::new()) }
    }

    fn ids(&self) -> MutexGuard<'_, HashSet<i64>> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ok when account `id` exists.
    ///
    /// # Errors
    ///
    /// 401 when it does not; database errors.
    pub async fn confirm(&self, db: &DatabaseConnection, id: i64) -> Result<(), ApiError> {
        if self.ids().contains(&id) {
            return Ok(());
        }
        let backend = db.get_database_backend();
        let sql = "SELECT 1 FROM users WHERE id = ?";
        if db.query_one_raw(Statement::from_sql_and_values(backend, sql, [id.into()])).await?.is_none() {
            return Err(ApiError::Unauthorized("the access token names no account"));
        }
        let mut ids = self.ids();
        if ids.len() >= self.max {
            ids.clear();
        }
        ids.insert(id);
        Ok(())
    }
}
