//! One in-process, first-come-first-served queue per event: `app-mutex`'s whole mechanism,
//! and the front of `redis-lock`'s queue (so only one request per process polls Redis for
//! the lock, and the rest are woken the moment it is released instead of polling too).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::OwnedMutexGuard;

/// Per-event async mutexes, created on first use.
#[derive(Debug, Default)]
pub(crate) struct EventLocks {
    // The map's lock is a std Mutex: it is held only to look up or insert an entry, never
    // across an `.await`. The per-event lock is a tokio Mutex because it *is* held across
    // the transaction's awaits, and it queues waiters fairly (FIFO).
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl EventLocks {
    /// Waits for the event's turn; the turn ends when the guard drops.
    pub(crate) async fn lock(&self, event_id: i64) -> OwnedMutexGuard<()> {
        let lock = {
            // A poisoned map only means another thread panicked while inserting; the map
            // itself is still valid, so keep using it.
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(event_id).or_default())
        };
        lock.lock_owned().await
    }
}
