//! Connecting to the broker and managing topics, with a deadline on everything.
//!
//! rskafka's default backoff retries without a deadline, so a broker outage would hang a
//! request forever: the client gets a bounded backoff, and every call is additionally wrapped
//! in [`within`] because the backoff deadline only counts the sleeps between retries.

use std::{future::Future, sync::Arc, time::Duration};

use rskafka::{
    BackoffConfig,
    client::{
        Client, ClientBuilder,
        partition::{PartitionClient, UnknownTopicHandling},
    },
};

use crate::{Backend, StrategyError};

/// Runs `call` with a deadline; an error or a timeout is [`StrategyError::Unavailable`].
///
/// # Errors
///
/// `Unavailable` naming `what`.
pub async fn within<T, E: std::fmt::Display>(
    deadline: Duration,
    what: &str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, StrategyError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(StrategyError::Unavailable(Backend::Kafka, format!("kafka {what}: {e}"))),
        Err(_) => Err(StrategyError::Unavailable(
            Backend::Kafka,
            format!("kafka {what}: no answer within {deadline:?}"),
        )),
    }
}

/// Connects to `brokers` (comma-separated).
///
/// # Errors
///
/// One line naming `kafka.brokers` when the broker cannot be reached in time.
pub async fn connect(brokers: &str, deadline: Duration) -> Result<Arc<Client>, String> {
    let bootstrap: Vec<String> =
        brokers.split(',').map(|b| b.trim().to_owned()).filter(|b| !b.is_empty()).collect();
    if bootstrap.is_empty() {
        return Err("kafka.brokers is empty; set APP__KAFKA__BROKERS, e.g. 127.0.0.1:9092".into());
    }
    let backoff = BackoffConfig {
        init_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
        base: 3.0,
        deadline: Some(deadline),
    };
    let build = ClientBuilder::new(bootstrap).backoff_config(backoff).build();
    within(deadline, "connect", build)
        .await
        .map(Arc::new)
        .map_err(|e| format!("kafka.brokers = \"{brokers}\" is unreachable: {e} (APP__KAFKA__BROKERS)"))
}

/// Creates `topic` with `partitions`, each on `replication_factor` brokers, when missing; an
/// existing topic with another partition count is an error (re-partitioning would move
/// events between consumers mid-flight).
///
/// # Errors
///
/// One line naming `kafka.topic` / `kafka.partitions`.
pub async fn ensure_topic(
    client: &Client,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    deadline: Duration,
) -> Result<(), String> {
    let existing = within(deadline, "list topics", client.list_topics()).await.map_err(|e| e.to_string())?;
    if let Some(found) = existing.iter().find(|t| t.name == topic) {
        let count = i32::try_from(found.partitions.len()).unwrap_or(i32::MAX);
        if count != partitions {
            return Err(format!(
                "kafka topic `{topic}` exists with {count} partitions but {partitions} are configured; \
                 set APP__KAFKA__PARTITIONS={count} or use another APP__KAFKA__TOPIC"
            ));
        }
        return Ok(());
    }
    let controller = client.controller_client().map_err(|e| format!("kafka controller: {e}"))?;
    let timeout_ms = i32::try_from(deadline.as_millis()).unwrap_or(i32::MAX);
    match within(
        deadline,
        "create topic",
        controller.create_topic(topic, partitions, replication_factor, timeout_ms),
    )
    .await
    {
        Ok(()) => Ok(()),
        // Another instance created it between our list and create: check its count.
        Err(e) if e.to_string().contains("TopicAlreadyExists") => {
            Box::pin(ensure_topic(client, topic, partitions, replication_factor, deadline)).await
        }
        Err(e) => Err(format!(
            "creating kafka topic `{topic}` ({partitions} partitions, replication factor \
             {replication_factor}): {e} (APP__KAFKA__REPLICATION_FACTOR must not exceed the brokers)"
        )),
    }
}

/// One client per partition of `topic`.
///
/// # Errors
///
/// `Unavailable` when a partition cannot be reached in time.
pub async fn partition_clients(
    client: &Client,
    topic: &str,
    partitions: i32,
    deadline: Duration,
) -> Result<Vec<Arc<PartitionClient>>, StrategyError> {
    let mut clients = Vec::new();
    for partition in 0..partitions {
        clients.push(partition_client(client, topic, partition, deadline).await?);
    }
    Ok(clients)
}

/// A client of one partition, with its own connection to the partition's leader.
///
/// # Errors
///
/// `Unavailable` when the partition cannot be reached in time.
pub async fn partition_client(
    client: &Client,
    topic: &str,
    partition: i32,
    deadline: Duration,
) -> Result<Arc<PartitionClient>, StrategyError> {
    let pc = within(
        deadline,
        "partition client",
        client.partition_client(topic.to_owned(), partition, UnknownTopicHandling::Retry),
    )
    .await?;
    Ok(Arc::new(pc))
}
