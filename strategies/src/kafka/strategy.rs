//! The Kafka strategies' [`ConcurrencyStrategy`]: produce the application to the
//! partition the strategy picks, then wait (bounded) for a consumer's answer.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use rskafka::{
    client::{Client, partition::PartitionClient},
    record::Record,
};
use sea_orm::DatabaseConnection;

use super::{
    KafkaConfig, Placement,
    client::{connect, ensure_topic, partition_client, partition_clients, within},
    producer::BatchProducer,
    waiters::{self, Waiters},
    wire::ApplyMessage,
    worker::Worker,
};
use crate::{
    ApplyOutcome, ApplyRequest, Backend, BuildError, ConcurrencyStrategy, StrategyError, StrategyName,
    probes::{StrategyProbes, probes},
    redis_lock::RedisLock,
    registry::Parts,
    sold_out::SoldOutBook,
};

/// The registry's constructor for the three Kafka strategies. `kafka-redis-lock` takes the
/// Redis lock in its consumers unless `concurrency.kafka_lock` is off (the team's bug).
pub(crate) async fn build(parts: &Parts<'_>) -> Result<Arc<dyn ConcurrencyStrategy>, BuildError> {
    let name = parts.name;
    let kafka = parts.kafka()?;
    let lock = if name == StrategyName::KafkaRedisLock && parts.config.kafka_lock {
        let config = parts.config.redis_lock.clone();
        let lock = RedisLock::new(parts.db.clone(), parts.redis()?, parts.redis_prefix.clone(), config);
        Some(Arc::new(lock.measured_as(name)))
    } else {
        None
    };
    let mut strategy = KafkaStrategy::connect(name, parts.db.clone(), kafka, parts.placement, lock)
        .await
        .map_err(|reason| BuildError::Backend { strategy: name, reason })?;
    strategy.book = parts.book.clone();
    Ok(Arc::new(strategy))
}

/// Produces applications and waits for their answers; starts the consumers this instance
/// owns in [`ConcurrencyStrategy::prepare`].
#[derive(Debug)]
pub(crate) struct KafkaStrategy {
    name: StrategyName,
    db: DatabaseConnection,
    config: KafkaConfig,
    placement: Placement,
    lock: Option<Arc<RedisLock>>,
    /// The sold-out shortcut, which the consumers ask (and teach) too.
    book: Option<Arc<SoldOutBook>>,
    /// Identifies this process in produced records (answers for it come back in-process).
    origin: String,
    client: Arc<Client>,
    /// One batching producer per partition of the applications topic.
    producers: Vec<BatchProducer>,
    /// Workers' answers for other processes are produced here.
    results: Arc<PartitionClient>,
    waiters: Arc<Waiters>,
    round_robin: AtomicUsize,
    probes: &'static StrategyProbes,
}

impl KafkaStrategy {
    /// Connects, creates (or checks) both topics, and opens a client per partition.
    ///
    /// # Errors
    ///
    /// One line naming the `kafka.*` setting to change.
    pub(crate) async fn connect(
        name: StrategyName,
        db: DatabaseConnection,
        config: KafkaConfig,
        placement: Placement,
        lock: Option<Arc<RedisLock>>,
    ) -> Result<Self, String> {
        let deadline = Duration::from_millis(config.deadline_ms);
        let client = connect(&config.brokers, deadline).await?;
        let partitions =
            if name == StrategyName::KafkaSinglePartition { 1 } else { config.partitions.max(1) };
        let results_topic = format!("{}.results", config.topic);
        let replicas = config.replication_factor.max(1);
        ensure_topic(&client, &config.topic, partitions, replicas, deadline).await?;
        ensure_topic(&client, &results_topic, 1, replicas, deadline).await?;
        let producers = partition_clients(&client, &config.topic, partitions, deadline)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|partition| BatchProducer::spawn(partition, deadline))
            .collect();
        let results = partition_clients(&client, &results_topic, 1, deadline)
            .await
            .map_err(|e| e.to_string())?
            .pop()
            .ok_or("the results topic has no partition")?;
        Ok(Self {
            name,
            db,
            config,
            placement,
            lock,
            book: None,
            origin: uuid::Uuid::new_v4().to_string(),
            client,
            producers,
            results,
            waiters: Arc::new(Waiters::new(probes(name).pending.clone())),
            round_robin: AtomicUsize::new(0),
            probes: probes(name),
        })
    }

    fn deadline(&self) -> Duration {
        Duration::from_millis(self.config.deadline_ms)
    }

    /// The partition an application goes to: the only one, the event's own, or the next.
    fn partition_for(&self, request: &ApplyRequest) -> usize {
        let n = self.producers.len();
        match self.name {
            StrategyName::KafkaKeyed => usize::try_from(request.event_id.rem_euclid(n as i64)).unwrap_or(0),
            StrategyName::KafkaRedisLock => self.round_robin.fetch_add(1, Ordering::Relaxed) % n,
            _ => 0,
        }
    }
}

#[async_trait]
impl ConcurrencyStrategy for KafkaStrategy {
    fn name(&self) -> StrategyName {
        self.name
    }

    async fn apply(&self, request: &ApplyRequest) -> Result<ApplyOutcome, StrategyError> {
        let message = ApplyMessage {
            event_id: request.event_id,
            user_id: request.user_id,
            request_id: request.request_id.clone(),
            origin: self.origin.clone(),
        };
        let value = serde_json::to_vec(&message)
            .map_err(|e| StrategyError::Unavailable(Backend::Kafka, format!("kafka record: {e}")))?;
        let record = Record {
            key: Some(request.event_id.to_string().into_bytes()),
            value: Some(value),
            headers: Default::default(),
            timestamp: rskafka::chrono::Utc::now(),
        };
        // Register before producing: a local consumer may answer before produce returns.
        let answer = self.waiters.register(&request.request_id);
        let producing = std::time::Instant::now();
        let produced = self.producers[self.partition_for(request)].produce(record).await;
        self.probes.produce.record(producing.elapsed().as_secs_f64());
        if let Err(e) = produced {
            self.waiters.forget(&request.request_id);
            return Err(e);
        }
        match tokio::time::timeout(Duration::from_millis(self.config.reply_timeout_ms), answer).await {
            Ok(Ok(outcome)) => Ok(outcome),
            _ => {
                self.waiters.gave_up(&request.request_id);
                Ok(ApplyOutcome::Pending)
            }
        }
    }

    async fn prepare(&self) -> Result<(), StrategyError> {
        // Every long-polling fetch loop gets a partition client of its own (a connection of
        // its own): a broker answers one request per connection at a time, so a fetch
        // waiting out `fetch_max_wait_ms` on a shared connection would hold back every
        // produce queued behind it.
        let deadline = self.deadline();
        if self.placement.role.serves() {
            let results = format!("{}.results", self.config.topic);
            let listener = partition_client(&self.client, &results, 0, deadline).await?;
            tokio::spawn(waiters::listen(
                listener,
                Arc::clone(&self.waiters),
                deadline,
                self.config.fetch_max_wait_ms,
            ));
        }
        let partitions = i32::try_from(self.producers.len()).unwrap_or(1);
        for partition in self.placement.owned(partitions) {
            let worker = Worker {
                db: self.db.clone(),
                topic: self.config.topic.clone(),
                partition: partition_client(&self.client, &self.config.topic, partition, deadline).await?,
                results: Arc::clone(&self.results),
                waiters: Arc::clone(&self.waiters),
                origin: self.origin.clone(),
                lock: self.lock.clone(),
                book: self.book.clone(),
                deadline,
                max_wait_ms: self.config.fetch_max_wait_ms,
                probes: self.probes,
            };
            tokio::spawn(worker.run());
        }
        Ok(())
    }

    async fn health(&self) -> Vec<(&'static str, Result<(), String>)> {
        let check = within(self.deadline(), "metadata", self.client.list_topics()).await.map(|_| ());
        vec![("kafka", check.map_err(|e| e.to_string()))]
    }
}
