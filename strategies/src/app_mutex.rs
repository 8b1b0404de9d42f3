//! `app-mutex`: one in-process mutex per event around the read-modify-write section.
//! Correct inside one process; a second instance has its own mutexes, so two servers race
//! exactly like `none` — the lesson the multi-instance harness demonstrates.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use sea_orm::DatabaseConnection;

use crate::{
    ApplyOutcome, ApplyRequest, ConcurrencyStrategy, StrategyError, StrategyName,
    section::{self, Gate},
};

/// Per-event in-process lock.
#[derive(Debug)]
pub(crate) struct AppMutex {
    db: DatabaseConnection,
    // The map's lock is a std Mutex: it is held only to look up or insert an entry, never
    // across an `.await`, and is cheaper than tokio's. The per-event lock is a tokio Mutex
    // because it *is* held across the transaction's awaits, and must not block a worker
    // thread while it waits.
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl AppMutex {
    pub(crate) fn new(db: DatabaseConnection) -> Self {
        Self { db, locks: Mutex::new(HashMap::new()) }
    }

    fn lock_for(&self, event_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        // A poisoned map only means another thread panicked while inserting; the map itself
        // is still valid, so keep using it.
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(event_id).or_default())
    }
}

#[async_trait]
impl ConcurrencyStrategy for AppMutex {
    fn name(&self) -> StrategyName {
        StrategyName::AppMutex
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        let lock = self.lock_for(request.event_id);
        let _guard = lock.lock().await;
        section::run_once(&self.db, request, Gate::ReadModifyWrite).await
    }
}
