//! Black-box tests: each starts the real server on port 0 against its own fresh database
//! (a SQLite file, or a MariaDB database for the races and outages) and talks HTTP to it.

mod applications;
mod balancer;
mod books;
mod cluster;
mod compare;
mod deploy;
mod docs;
mod events;
mod hardening;
mod health;
mod helpers;
mod inputs;
mod kafka;
mod kafka_cluster;
mod kafka_redis_restart;
mod loadtest;
mod logs;
mod memory;
mod metrics;
mod outage;
mod page_defences;
mod proxy;
mod redis_ha;
mod search;
mod search_cluster;
mod search_crash;
mod search_korean;
mod sentinel;
mod startup;
mod throttle;
mod users;
mod web;
