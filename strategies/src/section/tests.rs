use sea_orm::{ConnectOptions, Database};

use super::*;

/// Some strategy's handles (no-ops: no recorder in unit tests).
fn p() -> &'static StrategyProbes {
    crate::probes::probes(crate::StrategyName::PessimisticLock)
}
use crate::{contract, schema};

/// An in-memory SQLite database with the race tables and event 1 holding `copies`.
pub(crate) async fn db_with_event(copies: i32) -> DatabaseConnection {
    let mut opts = ConnectOptions::new("sqlite::memory:");
    // one connection: every connection to `:memory:` is a database of its own
    opts.max_connections(1).sqlx_logging(false);
    let db = Database::connect(opts).await.expect("in-memory SQLite");
    contract::migrate(&db).await.expect("race tables");
    schema::insert_stock(&db, 1, copies).await.expect("stock row");
    db
}

fn request(user: i64) -> ApplyRequest {
    ApplyRequest { event_id: 1, user_id: user, request_id: format!("r-{user}-{}", uuid::Uuid::new_v4()) }
}

const GATES: [Gate; 5] =
    [Gate::ReadModifyWrite, Gate::ForUpdate, Gate::Versioned, Gate::Atomic, Gate::Fenced(1)];

#[tokio::test]
async fn every_gate_gives_the_copies_in_order_then_says_sold_out_or_already_applied() {
    for gate in GATES {
        let db = db_with_event(2).await;
        let gate_for = |i: i64| if let Gate::Fenced(_) = gate { Gate::Fenced(i) } else { gate };
        let first = run(&db, None, &request(10), gate_for(1), p()).await.expect("first");
        let second = run(&db, None, &request(11), gate_for(2), p()).await.expect("second");
        assert!(matches!(first, Attempt::Done(ApplyOutcome::Won { .. })), "{gate:?}: {first:?}");
        assert!(matches!(second, Attempt::Done(ApplyOutcome::Won { .. })), "{gate:?}: {second:?}");
        let again = run(&db, None, &request(10), gate_for(3), p()).await.expect("again");
        assert_eq!(again, Attempt::Done(ApplyOutcome::AlreadyApplied), "{gate:?}");
        let late = run(&db, None, &request(12), gate_for(4), p()).await.expect("late");
        assert_eq!(late, Attempt::Done(ApplyOutcome::SoldOut), "{gate:?}");
        assert_eq!(schema::remaining(&db, 1).await.expect("stock"), Some(0), "{gate:?}");
        assert_eq!(schema::winners(&db, 1).await.expect("winners").len(), 2, "{gate:?}");
    }
}

#[tokio::test]
async fn a_reader_who_holds_a_copy_gets_already_applied_and_the_decrement_is_rolled_back() {
    let db = db_with_event(5).await;
    run(&db, None, &request(7), Gate::ForUpdate, p()).await.expect("win");
    let again = run(&db, None, &request(7), Gate::ForUpdate, p()).await.expect("again");
    assert_eq!(again, Attempt::Done(ApplyOutcome::AlreadyApplied));
    assert_eq!(schema::remaining(&db, 1).await.expect("stock"), Some(4), "the unique index undid the take");
}

#[tokio::test]
async fn a_loser_leaves_no_row_and_does_not_teach_the_shortcut_that_it_holds_a_copy() {
    // the section records first and rolls back on sold out: inside its transaction the
    // loser sees its own row, which must not count as a holder
    for gate in GATES {
        let db = db_with_event(1).await;
        let book = crate::sold_out::SoldOutBook::new(db.clone());
        let gate_for = |i: i64| if let Gate::Fenced(_) = gate { Gate::Fenced(i) } else { gate };
        run(&db, Some(&book), &request(1), gate_for(1), p()).await.expect("win");
        let lost = run(&db, Some(&book), &request(2), gate_for(2), p()).await.expect("lose");
        assert_eq!(lost, Attempt::Done(ApplyOutcome::SoldOut), "{gate:?}");
        assert_eq!(schema::winners(&db, 1).await.expect("winners").len(), 1, "{gate:?}");
        assert_eq!(book.answer_from_memory(&request(2)), Some(ApplyOutcome::SoldOut), "{gate:?}");
        assert_eq!(book.answer_from_memory(&request(1)), Some(ApplyOutcome::AlreadyApplied), "{gate:?}");
    }
}

#[tokio::test]
async fn an_unknown_event_is_record_not_found_for_every_gate() {
    let db = db_with_event(1).await;
    for gate in GATES {
        let req = ApplyRequest { event_id: 99, ..request(1) };
        assert!(matches!(run(&db, None, &req, gate, p()).await, Err(DbErr::RecordNotFound(_))), "{gate:?}");
    }
}

#[tokio::test]
async fn a_stale_fencing_token_writes_nothing() {
    let db = db_with_event(3).await;
    run(&db, None, &request(1), Gate::Fenced(5), p()).await.expect("token 5 wins");
    let stale = run(&db, None, &request(2), Gate::Fenced(4), p()).await.expect("token 4");
    assert_eq!(stale, Attempt::Fenced);
    assert_eq!(schema::remaining(&db, 1).await.expect("stock"), Some(2));
}

#[tokio::test]
async fn a_batch_is_decided_in_log_order_with_duplicates_and_holders_rejected() {
    let db = db_with_event(3).await;
    run(&db, None, &request(1), Gate::ReadModifyWrite, p()).await.expect("reader 1 already holds one");
    let tx = begin(&db).await.expect("tx");
    let applicants: Vec<_> = [(1, "a"), (2, "b"), (2, "c"), (3, "d"), (4, "e"), (5, "f")]
        .into_iter()
        .map(|(user, request_id)| Applicant { event: if user == 5 { 99 } else { 1 }, user, request_id })
        .collect();
    let no_tokens = Default::default();
    let attempt =
        steps(&tx, &applicants, Gates::Tokens(&no_tokens), Ending::Commit, None).await.expect("batch");
    tx.commit().await.expect("commit");
    let Batch::Done { outcomes, unknown } = attempt else { panic!("not fenced: {attempt:?}") };
    assert_eq!(unknown, [99].into(), "the event without a stock row");
    let names: Vec<_> = outcomes.iter().map(|o| o.as_str()).collect();
    assert_eq!(names, ["already_applied", "won", "already_applied", "won", "sold_out", "sold_out"]);
    // the winners' ids follow the log order
    assert!(outcomes[1].application_id() < outcomes[3].application_id());
    assert_eq!(schema::remaining(&db, 1).await.expect("stock"), Some(0));
    assert_eq!(schema::winners(&db, 1).await.expect("winners").len(), 3);
}

#[tokio::test]
async fn a_batch_over_several_events_keeps_each_events_stock_and_a_stale_token_is_fenced() {
    let db = db_with_event(1).await;
    schema::insert_stock(&db, 2, 2).await.expect("second event");
    let tx = begin(&db).await.expect("tx");
    let applicants: Vec<_> = [(1, 10, "a"), (2, 10, "b"), (1, 11, "c"), (2, 11, "d"), (2, 12, "e")]
        .into_iter()
        .map(|(event, user, request_id)| Applicant { event, user, request_id })
        .collect();
    let tokens = std::collections::BTreeMap::from([(1, 5), (2, 5)]);
    let attempt = steps(&tx, &applicants, Gates::Tokens(&tokens), Ending::Commit, None).await.expect("batch");
    tx.commit().await.expect("commit");
    let Batch::Done { outcomes, .. } = attempt else { panic!("not fenced: {attempt:?}") };
    let names: Vec<_> = outcomes.iter().map(|o| o.as_str()).collect();
    assert_eq!(names, ["won", "won", "sold_out", "won", "sold_out"]);
    assert_eq!(schema::remaining(&db, 1).await.expect("stock"), Some(0));
    assert_eq!(schema::remaining(&db, 2).await.expect("stock"), Some(0));

    // token 5 wrote; token 4 is a holder whose lease expired: it writes nothing
    let tx = begin(&db).await.expect("tx");
    let late = [Applicant { event: 2, user: 20, request_id: "z" }];
    let stale = std::collections::BTreeMap::from([(2, 4)]);
    assert_eq!(
        steps(&tx, &late, Gates::Tokens(&stale), Ending::Commit, None).await.expect("batch"),
        Batch::Fenced
    );
}

#[tokio::test]
async fn a_losing_section_teaches_the_sold_out_book_which_then_answers_from_memory() {
    let db = db_with_event(1).await;
    let book = SoldOutBook::new(db.clone());
    run(&db, Some(&book), &request(1), Gate::ForUpdate, p()).await.expect("win");
    assert_eq!(book.answer_from_memory(&request(2)), None, "not sold out yet as far as it knows");
    let lost = run(&db, Some(&book), &request(2), Gate::ForUpdate, p()).await.expect("lose");
    assert_eq!(lost, Attempt::Done(ApplyOutcome::SoldOut));
    assert_eq!(book.answer_from_memory(&request(1)), Some(ApplyOutcome::AlreadyApplied));
    assert_eq!(book.answer_from_memory(&request(3)), Some(ApplyOutcome::SoldOut));
}
