//! A setting that cannot work stops the start with one line naming what to change —
//! never a panic, never a silent fallback.

use nanum::{configuration, startup::Application};
use strategies::StrategyName;

async fn start_error(configure: impl FnOnce(&mut configuration::Settings)) -> String {
    let mut settings = configuration::load_for("test", &[]).expect("test settings");
    let file = std::env::temp_dir().join(format!("nanum-startup-{}.db", uuid::Uuid::new_v4().simple()));
    settings.database.url = format!("sqlite://{}?mode=rwc", file.display());
    configure(&mut settings);
    match Application::build(settings).await {
        Ok(_) => panic!("the start should have been refused"),
        Err(e) => {
            let message = format!("{e:#}");
            assert_eq!(message.lines().count(), 1, "one line, got: {message}");
            message
        }
    }
}

#[tokio::test]
async fn a_redis_strategy_without_redis_names_the_setting_to_change() {
    let message = start_error(|s| s.concurrency.strategy = StrategyName::RedisLock).await;
    assert!(message.contains("APP__REDIS__URL"), "{message}");
}

#[tokio::test]
async fn a_kafka_strategy_without_brokers_names_the_setting_to_change() {
    let message = start_error(|s| s.concurrency.strategy = StrategyName::KafkaKeyed).await;
    assert!(message.contains("APP__KAFKA__BROKERS"), "{message}");
}

#[tokio::test]
async fn an_unreachable_redis_for_a_redis_strategy_is_refused_at_start() {
    let message = start_error(|s| {
        s.concurrency.strategy = StrategyName::RedisAtomic;
        s.redis.url = "redis://127.0.0.1:1".into();
    })
    .await;
    assert!(message.contains("unreachable") && message.contains("APP__REDIS__URL"), "{message}");
}

#[tokio::test]
async fn production_refuses_the_development_jwt_secret() {
    let message = start_error(|s| s.environment = "production".into()).await;
    assert!(message.contains("APP__AUTH__JWT_SECRET"), "{message}");
}

#[tokio::test]
async fn an_unsupported_database_url_names_the_setting() {
    let message = start_error(|s| s.database.url = "postgres://localhost/nanum".into()).await;
    assert!(message.contains("APP__DATABASE__URL"), "{message}");
}
