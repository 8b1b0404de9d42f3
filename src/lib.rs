//! nanum: book-giveaway events where thousands of readers race for a few copies, served by
//! one actix-web binary whose concurrency control is chosen by configuration.
//!
//! # Layout
//!
//! - [`configuration`]: layered settings (`config/*.toml` → `APP__…` env → flags).
//! - [`startup`]: [`startup::Application`] — connect, migrate, bootstrap the admin, build the
//!   strategy, bind (port 0 in tests), serve until a signal.
//! - [`state`]: [`state::AppState`], what every request shares.
//! - [`routes`]: the HTTP contract of docs/API.md, one file per resource.
//! - [`event_cache`]: events by id in memory (they never change once created).
//! - [`logging`]: request ids, the access log, JSON or human log lines.
//! - [`bounded`]: request data as metric labels (closed sets) and log fields (cut short).
//! - [`error`]: [`error::ApiError`], one variant per status and error code.
//! - [`accounts`]: which account ids exist (a valid signature is not an account).
//! - [`auth`]: argon2id passwords, HS256 tokens, the `AuthUser` extractor, admin bootstrap.
//! - [`client_ip`]: the client's address — the TCP peer, or `X-Forwarded-For` when the
//!   peer is one of `server.trusted_proxies`.
//! - [`limits`]: abuse limits — rates per IP and per user, failed logins per email, the
//!   bound on concurrent password hashes; all bounded in memory.
//! - [`db`], [`migration`], [`entities`]: database access; the race tables themselves are
//!   defined in the `strategies` crate, which also holds every concurrency strategy.
//! - [`migrate`]: the migrations applied once under a lock, however many processes start.
//! - [`instance`]: `instance.index` from a StatefulSet pod's host name.
//! - [`management`]: the optional `server.management_port` listener (metrics, health).
//! - [`build_info`]: version and commit (`nanum --version`, `nanum_build_info`).
//! - [`search`]: catalogue search — the tantivy index, the outbox that keeps it following
//!   the database, and the `like` / `fulltext` / `tantivy` engines side by side.
//! - [`telemetry`]: Prometheus metrics (recorder, HTTP middleware, `GET /metrics`).
//! - [`text`]: what stored text and times may hold (no control characters, no leap second).
//! - [`throttle`]: the login throttle (per account and address; per account for addresses
//!   it has never signed in from).
//! - [`seed`]: a generated catalogue (Korean and English) for measuring search.
//! - [`web`]: the readers' pages (server-rendered Korean HTML, CSRF-protected forms).
//! - [`cli`]: the `nanum` command line; [`load_tools`]: `loadtest` and `compare`, from the
//!   `nanum-load` crate (with the multi-instance harness the tests use) when built with the
//!   cargo feature `load`.

pub mod accounts;
pub mod auth;
pub mod bounded;
pub mod breaker;
pub mod build_info;
pub mod cli;
pub mod client_ip;
pub mod configuration;
pub mod db;
pub mod entities;
pub mod error;
pub mod event_cache;
pub mod instance;
pub mod limits;
pub mod load_tools;
pub mod logging;
pub mod management;
pub mod migrate;
pub mod migration;
pub mod routes;
pub mod search;
pub mod seed;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod text;
pub mod throttle;
pub mod web;
