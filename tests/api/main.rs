//! Black-box tests: each starts the real server on port 0 against its own fresh database
//! (a SQLite file, or a MariaDB database for the races and outages) and talks HTTP to it.

mod applications;
mod books;
mod cluster;
mod compare;
mod docs;
mod events;
mod hardening;
mod health;
mod helpers;
mod kafka;
mod kafka_cluster;
mod kafka_redis_restart;
mod loadtest;
mod logs;
mod memory;
mod metrics;
mod outage;
mod proxy;
mod redis_ha;
mod search;
mod search_cluster;
mod search_crash;
mod sentinel;
mod startup;
mod users;
mod web;
