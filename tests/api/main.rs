//! Black-box tests: each starts the real server on port 0 against its own fresh database
//! (a SQLite file, or a MariaDB database for the races and outages) and talks HTTP to it.

mod applications;
mod books;
mod cluster;
mod compare;
mod events;
mod health;
mod helpers;
mod kafka;
mod loadtest;
mod outage;
mod proxy;
mod search;
mod search_crash;
mod startup;
mod users;
mod web;
