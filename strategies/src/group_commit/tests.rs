use super::*;
use crate::{ConcurrencyConfig, schema, section::tests::db_with_event};

async fn group_commit(db: &DatabaseConnection, config: GroupCommitConfig) -> Arc<dyn ConcurrencyStrategy> {
    let config =
        ConcurrencyConfig { strategy: StrategyName::GroupCommit, group_commit: config, ..Default::default() };
    crate::build_strategy(&config, db.clone()).await.expect("group-commit")
}

fn request(user: i64) -> ApplyRequest {
    ApplyRequest { event_id: 1, user_id: user, request_id: format!("r-{user}-{}", uuid::Uuid::new_v4()) }
}

#[tokio::test]
async fn requests_queued_together_win_in_arrival_order_and_a_twin_is_already_applied() {
    let db = db_with_event(10).await;
    let strategy = group_commit(&db, GroupCommitConfig { max_batch: 7, ..Default::default() }).await;
    // spawned in this order on one thread: they join the queue in this order
    let users: Vec<i64> = (1..=30).chain([3]).collect();
    let tasks: Vec<_> = users
        .iter()
        .map(|&user| {
            let strategy = Arc::clone(&strategy);
            tokio::spawn(async move { strategy.apply(&request(user)).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task").expect("answer"));
    }
    let names: Vec<_> = outcomes.iter().map(|o| o.as_str()).collect();
    assert!(names[..10].iter().all(|n| *n == "won"), "{names:?}");
    assert!(names[10..30].iter().all(|n| *n == "sold_out"), "{names:?}");
    assert_eq!(names[30], "already_applied", "reader 3's twin");
    let ids: Vec<_> = outcomes[..10].iter().map(|o| o.application_id()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids follow the arrival order: {ids:?}");
    assert_eq!(schema::remaining(&db, 1).await.expect("stock"), Some(0));
    assert_eq!(schema::winners(&db, 1).await.expect("winners").len(), 10);
}

#[tokio::test]
async fn a_batch_takes_at_most_max_batch_in_order_and_a_withdrawn_request_leaves_the_queue() {
    let db = db_with_event(5).await;
    let shared = Shared {
        db,
        book: None,
        probes: probes(StrategyName::GroupCommit),
        config: GroupCommitConfig { max_batch: 3, queue_timeout_ms: 1 },
        queues: Mutex::default(),
        tickets: AtomicU64::new(0),
    };
    let mut receivers = Vec::new();
    for user in 1..=5 {
        let (answer, receiver) = oneshot::channel();
        let waiter = Waiter {
            ticket: shared.tickets.fetch_add(1, Ordering::Relaxed),
            user,
            request_id: user.to_string(),
            answer,
        };
        shared.queues().entry(1).or_default().waiting.push_back(waiter);
        receivers.push(receiver);
    }
    assert!(shared.withdraw(1, 1), "ticket 1 (reader 2) was still queued");
    assert!(!shared.withdraw(1, 1), "and is gone now");
    let first: Vec<_> = shared.next_batch(1).expect("a batch").iter().map(|w| w.user).collect();
    assert_eq!(first, [1, 3, 4]);
    assert!(!shared.withdraw(1, 0), "a request taken into a batch (reader 1) cannot be withdrawn");
    let second: Vec<_> = shared.next_batch(1).expect("a batch").iter().map(|w| w.user).collect();
    assert_eq!(second, [5]);
    assert!(shared.next_batch(1).is_none(), "an empty queue ends the leader's turn");
    assert!(shared.queues().is_empty(), "and goes");
}

#[tokio::test]
async fn an_unknown_event_answers_unknown_event_to_the_whole_batch() {
    let db = db_with_event(5).await;
    let strategy = group_commit(&db, GroupCommitConfig::default()).await;
    let request = ApplyRequest { event_id: 99, ..request(1) };
    assert!(matches!(strategy.apply(&request).await, Err(StrategyError::UnknownEvent(99))));
    assert_eq!(schema::winners(&db, 99).await.expect("winners").len(), 0);
}
