//! Events by id, kept in memory: an event never changes after it is created (only its
//! stock does, and that lives in `event_stock`), so every apply after the first reads it
//! from here instead of the database.

use std::{collections::HashMap, sync::RwLock};

use crate::entities::event;

/// Events remembered; when full the cache starts over (a miss only costs one query).
const CAPACITY: usize = 10_000;

/// Immutable events by id. Only found events are kept: an id that is not there yet may
/// be created a moment later.
#[derive(Debug, Default)]
pub struct EventCache {
    // std lock: held only to copy an entry in or out, never across an `.await`.
    events: RwLock<HashMap<i64, event::Model>>,
}

impl EventCache {
    /// The cached event, if any.
    pub fn get(&self, id: i64) -> Option<event::Model> {
        self.events.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// Remembers an event read from (or just written to) the database.
    pub fn put(&self, event: &event::Model) {
        let mut events = self.events.write().unwrap_or_else(|p| p.into_inner());
        if events.len() >= CAPACITY {
            events.clear();
        }
        events.insert(event.id, event.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64) -> event::Model {
        let now = chrono::Utc::now();
        event::Model {
            id,
            book_id: 1,
            title: "t".into(),
            quantity: 1,
            opens_at: now,
            closes_at: None,
            created_at: now,
        }
    }

    #[test]
    fn a_cached_event_is_returned_and_the_cache_stays_bounded() {
        let cache = EventCache::default();
        assert!(cache.get(1).is_none());
        cache.put(&event(1));
        assert_eq!(cache.get(1).map(|e| e.id), Some(1));
        for id in 0..i64::try_from(CAPACITY).unwrap_or(0) + 5 {
            cache.put(&event(id));
        }
        assert!(cache.events.read().map(|e| e.len()).unwrap_or(0) <= CAPACITY);
    }
}
