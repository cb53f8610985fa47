//! Replaying files into a topic, one message per line: for demos, tests
//! and backfills.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::ClientContext;
use tracing::{info, warn};

use crate::files::for_each_line;
use crate::{IngestError, Result};

/// What to replay where.
#[derive(Debug, Clone)]
pub struct Produce {
    pub brokers: String,
    pub topic: String,
    pub paths: Vec<PathBuf>,
    /// At most this many records per produced batch (librdkafka's
    /// `batch.num.messages`); `None` leaves librdkafka's default.
    pub batch_records: Option<u32>,
}

#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((e, _)) = result {
            warn!(error = %e, "message not delivered");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Creates `topic` with `partitions` partitions unless it exists.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(IngestError::kafka("creating an admin client"))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .map_err(IngestError::kafka(format!("creating topic {topic}")))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(IngestError::Kafka {
                    context: format!("creating topic {name}"),
                    source: KafkaError::AdminOp(code),
                })
            }
        }
    }
    Ok(())
}

/// Sends every non-blank line as one message; returns how many were
/// delivered. Fails if any message could not be delivered.
pub fn run(job: &Produce) -> Result<u64> {
    let mut config = ClientConfig::new();
    if let Some(n) = job.batch_records {
        config.set("batch.num.messages", n.max(1).to_string());
    }
    let producer: BaseProducer<Deliveries> = config
        .set("bootstrap.servers", &job.brokers)
        .set("client.id", "overreach-produce")
        .set("linger.ms", "20")
        // Spread keyless records over all partitions instead of filling
        // one partition per batch.
        .set("sticky.partitioning.linger.ms", "0")
        .create_with_context(Deliveries::default())
        .map_err(IngestError::kafka(format!(
            "creating a producer for {}",
            job.brokers
        )))?;
    let mut sent = 0u64;
    for path in &job.paths {
        for_each_line(path, |_, line| {
            if line.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            let mut record = BaseRecord::<(), [u8]>::to(&job.topic).payload(line);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => {
                        return Err(IngestError::Kafka {
                            context: format!("sending to {}", job.topic),
                            source: e,
                        })
                    }
                }
            }
            sent += 1;
            if sent.is_multiple_of(10_000) {
                producer.poll(Duration::ZERO);
                info!(sent, "producing");
            }
            Ok(())
        })?;
    }
    // Wait for every delivery report for as long as the broker keeps
    // acknowledging; give up after a minute without progress.
    let mut waiting = producer.in_flight_count();
    let mut stalled_since = std::time::Instant::now();
    while let Err(e) = producer.flush(Duration::from_secs(5)) {
        let now_waiting = producer.in_flight_count();
        info!(
            in_flight = now_waiting,
            "waiting for the broker to acknowledge"
        );
        if now_waiting < waiting {
            waiting = now_waiting;
            stalled_since = std::time::Instant::now();
        } else if stalled_since.elapsed() > Duration::from_secs(60) {
            return Err(IngestError::Kafka {
                context: format!(
                    "{now_waiting} messages to {} unacknowledged for a minute",
                    job.topic
                ),
                source: e,
            });
        }
    }
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(IngestError::KafkaSetup(format!(
            "{failed} of {sent} messages to {} were not delivered",
            job.topic
        )));
    }
    Ok(sent)
}
