//! A guard on the one patch nanum carries in sqlx-core (`vendor/sqlx-core`): connections to
//! MariaDB set `TCP_NODELAY`.
//!
//! Without it, a statement that follows a packet the server never answers waits for the
//! server's delayed ACK (~40 ms on Linux). sqlx sends such a packet whenever its
//! prepared-statement cache (100 per connection) evicts a statement (`COM_STMT_CLOSE`), and
//! the Kafka consumers' batch statements (`IN` lists and multi-row inserts of varying
//! length) are new texts all the time: found as 130 ms batch transactions (three 44 ms
//! statements) that slowed a consumer from ~14,000 to ~1,000 records/s.
//!
//! Skips (with a printed reason) when MariaDB is absent; fails under `CI=true`.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use strategies::contract::fresh_mariadb;

/// A statement slower than this on an idle loopback connection waited for an ACK.
const STALL: Duration = Duration::from_millis(35);

#[tokio::test]
async fn statements_after_a_statement_cache_eviction_do_not_wait_for_a_delayed_ack() {
    let Some(db) = fresh_mariadb("nodelay", 1).await else { return };
    // 300 distinct texts on one connection: past the cache's 100, each one evicts another
    let mut stalls = 0;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for i in 0..300 {
        let sql = format!("SELECT ? + {i}");
        let sent = Instant::now();
        db.query_one_raw(Statement::from_sql_and_values(DbBackend::MySql, &sql, [1i64.into()]))
            .await
            .expect("select");
        let took = sent.elapsed();
        stalls += usize::from(took >= STALL);
        slowest = slowest.max(took);
    }
    println!(
        "300 distinct statements in {:?}; slowest {slowest:?}; {stalls} over {STALL:?}",
        started.elapsed()
    );
    // with Nagle on, about 200 of them stall; a loaded machine may add a few of its own
    assert!(stalls < 20, "{stalls} statements waited ≥ {STALL:?}: is TCP_NODELAY set (vendor/sqlx-core)?");
}
