//! Proof that the Kafka broker path works with rskafka before any strategy is built on it:
//! create a topic, produce, fetch back, and measure the round trip.
//!
//! Skips (with a printed reason) when Kafka is absent; fails under `CI=true`.

use std::{
    collections::BTreeMap,
    fmt::Display,
    future::Future,
    time::{Duration, Instant},
};

use rskafka::{
    BackoffConfig,
    chrono::Utc,
    client::{
        Client, ClientBuilder,
        partition::{Compression, PartitionClient, UnknownTopicHandling},
    },
    record::Record,
};
use strategies::contract::service_absent;

/// Broker list used when `NANUM_TEST_KAFKA_BROKERS` is unset (what `scripts/services-up` starts).
const DEFAULT_TEST_KAFKA_BROKERS: &str = "127.0.0.1:9092";

/// Hard bound on every broker call, so a wedged broker fails the test instead of hanging it.
/// Must stay above `FETCH_MAX_WAIT_MS`, or an empty fetch would look like a hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for the first connection before declaring Kafka absent.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Server-side timeout for topic creation and deletion.
const ADMIN_TIMEOUT_MS: i32 = 5_000;

/// The broker holds a fetch open this long when no data is there yet; data that is
/// already there is returned at once.
const FETCH_MAX_WAIT_MS: i32 = 1_000;

/// Fetch size window: at least one byte (so the broker waits for data rather than
/// answering empty), at most 1 MiB.
const FETCH_BYTES: std::ops::Range<i32> = 1..1_048_576;

/// Produce→fetch round trips timed for the printed latency figure.
const ROUND_TRIPS: usize = 20;

/// The brokers tests use; override with `NANUM_TEST_KAFKA_BROKERS` (comma-separated).
fn test_kafka_brokers() -> Vec<String> {
    std::env::var("NANUM_TEST_KAFKA_BROKERS")
        .unwrap_or_else(|_| DEFAULT_TEST_KAFKA_BROKERS.to_owned())
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(str::to_owned)
        .collect()
}

/// rskafka's default backoff has no deadline: a refused connection or a missing topic is
/// retried forever. A deadline turns that into an error the test can report. It counts
/// only the summed sleeps, not the time spent in attempts, hence the outer timeouts too.
fn bounded_backoff() -> BackoffConfig {
    BackoffConfig {
        init_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
        base: 3.0,
        deadline: Some(Duration::from_secs(3)),
    }
}

/// Awaits one broker call under [`CALL_TIMEOUT`], panicking with `what` on error or timeout.
async fn within<T, E: Display>(what: &str, call: impl Future<Output = Result<T, E>>) -> T {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("{what} failed: {e}"),
        Err(_) => panic!("{what} got no answer within {CALL_TIMEOUT:?}"),
    }
}

/// A client connected to the test brokers, or `None` (after [`service_absent`]) when Kafka
/// cannot be reached. `build` already fetches cluster metadata, so success means a broker
/// really answered, not merely that a socket opened.
async fn connect() -> Option<Client> {
    let brokers = test_kafka_brokers();
    let build = ClientBuilder::new(brokers.clone()).backoff_config(bounded_backoff()).build();
    let why = match tokio::time::timeout(CONNECT_TIMEOUT, build).await {
        Ok(Ok(client)) => return Some(client),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
    };
    service_absent("Kafka", &format!("{}: {why}", brokers.join(",")));
    None
}

fn record(key: &str, value: &str, headers: &[(&str, &str)]) -> Record {
    Record {
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: headers.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())).collect(),
        timestamp: Utc::now(),
    }
}

/// Produces one record and returns the offset the broker assigned to it.
async fn produce_one(partition: &PartitionClient, record: Record) -> i64 {
    let offsets = within("produce", partition.produce(vec![record], Compression::NoCompression)).await;
    assert_eq!(offsets.len(), 1, "one record produced, so one offset back: {offsets:?}");
    offsets[0]
}

/// Times `ROUND_TRIPS` produce→fetch cycles and returns the median.
async fn p50_round_trip(partition: &PartitionClient, first_offset: i64) -> Duration {
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS {
        let started = Instant::now();
        let offset = produce_one(partition, record("latency", &i.to_string(), &[])).await;
        let (fetched, _) =
            within("fetch", partition.fetch_records(offset, FETCH_BYTES, FETCH_MAX_WAIT_MS)).await;
        samples.push(started.elapsed());
        // A round trip only counts if it read back what it wrote, at the offset it expected.
        assert_eq!(offset, first_offset + i64::try_from(i).expect("small loop index"));
        let got = fetched.first().expect("a fetch from a just-produced offset returns it");
        assert_eq!((got.offset, got.record.value.as_deref()), (offset, Some(i.to_string().as_bytes())));
    }
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn a_record_produced_to_a_new_topic_is_fetched_back() {
    let Some(client) = connect().await else { return };

    // A fresh topic per run, so the offsets asserted below cannot collide with earlier runs.
    let topic = format!("nanum-test-{}", uuid::Uuid::new_v4());
    let controller = client.controller_client().expect("a controller client is only a handle");
    within("create topic", controller.create_topic(&topic, 1, 1, ADMIN_TIMEOUT_MS)).await;

    // `Retry` rides out the window where the new topic is not yet in every broker's
    // metadata; `Error` would fail here sporadically with UnknownTopicOrPartition.
    let partition =
        within("partition client", client.partition_client(topic.clone(), 0, UnknownTopicHandling::Retry))
            .await;

    let sent = record("applicant-42", "applied", &[("trace-id", "abc-123")]);
    let offset = produce_one(&partition, sent.clone()).await;
    assert_eq!(offset, 0, "the first record in a new partition lands at offset 0");

    let (fetched, high_watermark) =
        within("fetch", partition.fetch_records(0, FETCH_BYTES, FETCH_MAX_WAIT_MS)).await;
    // rskafka produces with acks=all, so the record is committed and visible when produce returns.
    assert_eq!(high_watermark, 1, "exactly one record is committed");
    assert_eq!(fetched.len(), 1, "exactly one record comes back: {fetched:?}");
    let got = &fetched[0];
    assert_eq!(got.offset, 0);
    assert_eq!(got.record.key, sent.key);
    assert_eq!(got.record.value, sent.value);
    assert_eq!(
        got.record.headers,
        BTreeMap::from([("trace-id".to_owned(), b"abc-123".to_vec())]),
        "headers survive the round trip"
    );

    let p50 = p50_round_trip(&partition, offset + 1).await;
    println!("kafka produce→fetch round trip: p50 {p50:?} over {ROUND_TRIPS} trips (topic {topic})");

    // Best effort: a leftover topic only costs the dev broker a little disk, so failing to
    // delete it should not fail a test whose point was proven above.
    match tokio::time::timeout(CALL_TIMEOUT, controller.delete_topic(&topic, ADMIN_TIMEOUT_MS)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("could not delete test topic {topic}: {e}"),
        Err(_) => eprintln!("deleting test topic {topic} got no answer within {CALL_TIMEOUT:?}"),
    }
}
