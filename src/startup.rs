//! Building the app: connect, migrate, bootstrap the admin, build the strategy, open the
//! search index and start its sync task, bind the listener (port 0 picks a free one — tests
//! rely on it), and serve until a signal.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{App, HttpServer, dev::Server, middleware, web};
use sea_orm::DatabaseConnection;
use strategies::{Backends, StrategyName, build_strategy, kafka::Placement, redis_pool};
use utoipa_actix_web::AppExt;

use crate::{
    auth::{PasswordService, TokenService, bootstrap_admin},
    breaker::{self, Breakers},
    configuration::Settings,
    db,
    event_cache::EventCache,
    limits::{HashGate, RateLimits},
    logging, routes,
    search::{
        SearchIndex, WriterBudget,
        outbox::{self, SyncConfig},
    },
    state::AppState,
    telemetry,
    throttle::LoginThrottle,
};

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    management: Option<crate::management::Management>,
}

impl Application {
    /// Everything up to binding the port. Errors are one line naming the setting to change.
    ///
    /// # Errors
    ///
    /// Invalid settings, an unreachable database, a failed migration, a strategy whose
    /// backend is missing, or a port in use.
    // Long on purpose: start-up in its real order (settings, database, migrations, strategy,
    // search, listeners), one call per step; the order is the point.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.check().map_err(anyhow::Error::msg)?;
        // before anything registers a metric (the strategy's handles are taken when built)
        let metrics = telemetry::install();
        crate::build_info::register(&settings);
        let db = db::connect(&settings.database).await.map_err(anyhow::Error::msg)?;
        crate::migrate::apply(&db, &settings.database).await?;
        let gate = HashGate::new(
            settings.auth.hash_concurrency,
            Duration::from_millis(settings.auth.hash_max_wait_ms),
        );
        let passwords = PasswordService::gated(&settings.auth.argon2, gate).map_err(anyhow::Error::msg)?;
        bootstrap_admin(&db, &settings.auth, &passwords)
            .await
            .map_err(|e| anyhow::anyhow!("creating the admin account failed: {e}"))?;
        let redis = connect_redis(&settings).await?;
        let strategy = connect_strategy(&settings, &db, redis.clone()).await?;
        let search = open_search(&settings, &db)?;

        let listener = bind(&settings)?;
        let port = listener.local_addr()?.port();
        let workers = settings.server.workers;
        let settings_max_keys = settings.rate_limit.max_keys;
        let breakers = Breakers::new(db.clone(), redis.clone(), Arc::clone(&strategy));
        let state = web::Data::new(AppState {
            tokens: Arc::new(TokenService::new(&settings.auth)),
            logins: LoginThrottle::new(
                settings.auth.login_max_failures,
                Duration::from_secs(settings.auth.login_window_secs),
                settings.rate_limit.max_keys,
            ),
            limits: RateLimits::new(&settings.rate_limit),
            db,
            strategy,
            redis,
            settings,
            passwords,
            search,
            events: EventCache::default(),
            breakers: Arc::clone(&breakers),
            accounts: crate::accounts::KnownAccounts::new(settings_max_keys),
            metrics,
        });
        let management = crate::management::bind(&state)?;
        // Built once from the same registration every worker does below.
        let api = routes::openapi_document();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::Data::from(Arc::clone(&state.breakers)))
                .app_data(web::Data::from(Arc::clone(&state.tokens)))
                // the last `wrap` runs first: every answer, a breaker's included, is logged
                // and measured
                .wrap(middleware::from_fn(breaker::fail_fast))
                .wrap(middleware::from_fn(telemetry::measure))
                .wrap(middleware::from_fn(logging::log_request))
                .into_utoipa_app()
                .configure(routes::configure)
                .into_app()
                .configure(|cfg| routes::docs(cfg, api.clone()))
                .configure(crate::web::configure)
        })
        .shutdown_timeout(10);
        if workers > 0 {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self { port, server, management })
    }

    /// The bound port (useful when configured as 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The management listener's port, when `server.management_port` is set.
    pub fn management_port(&self) -> Option<u16> {
        self.management.as_ref().map(crate::management::Management::port)
    }

    /// Serves until SIGINT/SIGTERM (actix-web's signal handling drains in-flight requests
    /// for up to `shutdown_timeout` seconds).
    ///
    /// # Errors
    ///
    /// I/O errors of the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        crate::management::run_beside(self.server, self.management).await
    }
}

/// Opens the index and, when `search.sync_enabled`, starts the task that follows the change
/// log into it from its own position (or first builds it from the database).
fn open_search(settings: &Settings, db: &DatabaseConnection) -> anyhow::Result<Arc<SearchIndex>> {
    let search = Arc::new(SearchIndex::open(&settings.search.index_dir, WriterBudget::SERVER)?);
    if settings.search.sync_enabled {
        let config = SyncConfig {
            interval: Duration::from_millis(settings.search.sync_interval_ms),
            batch_size: settings.search.batch_size,
            retention: Duration::from_secs(settings.search.log_retention_s),
        };
        outbox::spawn(db.clone(), Arc::clone(&search), config);
    }
    Ok(search)
}

/// The Redis pool when `redis.url` is set. Unreachable Redis stops the start only when the
/// strategy needs it; otherwise it is reported by readiness.
async fn connect_redis(settings: &Settings) -> anyhow::Result<Option<strategies::redis_pool::Pool>> {
    let url = settings.redis.url.as_str();
    if url.is_empty() {
        return Ok(None);
    }
    // The URL may carry a password: every message shows it redacted.
    let shown = db::redact(url);
    let pool = redis_pool::build(url, settings.redis.max_connections)
        .map_err(|e| anyhow::anyhow!(e.replace(url, &shown)))?;
    if let Err(e) = redis_pool::ping(&pool).await {
        let message = format!("redis.url = \"{shown}\" is unreachable: {e} (APP__REDIS__URL)");
        let strategy = settings.concurrency.strategy;
        // kafka-redis-lock with its lock switched off runs without Redis
        let lock_off = strategy == StrategyName::KafkaRedisLock && !settings.concurrency.kafka_lock;
        if strategy.needs().redis && !lock_off {
            anyhow::bail!(message);
        }
        tracing::warn!("{message}; continuing, the strategy does not need Redis");
    }
    Ok(Some(pool))
}

/// The configured strategy over the connected backends, prepared (its consumers started).
async fn connect_strategy(
    settings: &Settings,
    db: &DatabaseConnection,
    redis: Option<strategies::redis_pool::Pool>,
) -> anyhow::Result<Arc<dyn strategies::ConcurrencyStrategy>> {
    let redis_prefix = match settings.redis.key_prefix.as_str() {
        "" => format!("nanum:{}", db::database_name(&settings.database.url)),
        prefix => prefix.to_owned(),
    };
    let placement = Placement {
        role: settings.instance.role,
        index: settings.instance.index,
        count: settings.instance.count,
    };
    let backends = Backends { db: db.clone(), redis, redis_prefix, kafka: settings.kafka.clone(), placement };
    let strategy = build_strategy(&settings.concurrency, backends).await?;
    strategy
        .prepare()
        .await
        .map_err(|e| anyhow::anyhow!("preparing strategy {}: {e}", settings.concurrency.strategy))?;
    Ok(strategy)
}

/// The listening socket (port 0: any free port, as the tests use).
fn bind(settings: &Settings) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port)).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}:{}: {e} (server.port / APP__SERVER__PORT)",
            settings.server.host,
            settings.server.port
        )
    })?;
    Ok(listener)
}
