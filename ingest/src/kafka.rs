//! Ingest from a Kafka topic through a consumer group.
//!
//! The loop polls messages into a [`Batch`], flushes it when it is due
//! and only then commits, for each partition, the offset after the last
//! record the flushed files hold. A crash before the commit re-reads
//! records; a commit never covers a record that is not on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use overreach_model::DataDir;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::decode::{decode, DecodeOptions};
use crate::sink::{Batch, FlushPolicy, Summary};
use crate::{IngestError, Result};

const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// What to consume and where to put it.
#[derive(Debug, Clone)]
pub struct KafkaIngest {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub data: DataDir,
    pub decode: DecodeOptions,
    pub flush: FlushPolicy,
    /// Stop once every partition has reached the high watermark it had
    /// when the run started.
    pub until_caught_up: bool,
}

fn consumer(job: &KafkaIngest) -> Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", &job.brokers)
        .set("group.id", &job.group)
        .set("client.id", "overreach-ingest")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Report reaching the end of a partition, for --until-caught-up.
        .set("enable.partition.eof", "true")
        // Cap librdkafka's prefetch queue so memory stays bounded.
        .set("queued.max.messages.kbytes", "65536")
        .create()
        .map_err(IngestError::kafka(format!(
            "creating a consumer for {}",
            job.brokers
        )))
}

/// The offset each partition must reach to be caught up: the high
/// watermark at start, unless the partition is empty.
fn targets(consumer: &BaseConsumer, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(IngestError::kafka(format!(
            "reading metadata of topic {topic}"
        )))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(IngestError::KafkaSetup(format!(
            "topic {topic} does not exist or has no partitions"
        )));
    }
    let mut out = BTreeMap::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, METADATA_TIMEOUT)
            .map_err(IngestError::kafka(format!(
                "reading watermarks of {topic}/{p}"
            )))?;
        if high > low {
            out.insert(p, high);
        }
    }
    Ok(out)
}

/// Where the group stands on each partition (committed offsets).
fn committed(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &BTreeMap<i32, i64>,
) -> BTreeMap<i32, i64> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions.keys() {
        tpl.add_partition(topic, *p);
    }
    match consumer.committed_offsets(tpl, METADATA_TIMEOUT) {
        Ok(list) => list
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect(),
        Err(e) => {
            warn!(topic, error = %e, "could not read committed offsets; assuming none");
            BTreeMap::new()
        }
    }
}

fn commit(consumer: &BaseConsumer, topic: &str, next: &BTreeMap<i32, i64>) {
    if next.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (p, offset) in next {
        if let Err(e) = tpl.add_partition_offset(topic, *p, Offset::Offset(*offset)) {
            warn!(topic, partition = p, error = %e, "cannot build offset commit");
        }
    }
    if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
        // The data is durable; the records will be read again after a
        // restart. Exactly-once across restarts is the storage's job.
        warn!(topic, error = %e, "offset commit failed; records after the last commit may be read again");
    }
}

/// Consumes until `shutdown` is set (or, with `until_caught_up`, until
/// caught up), then flushes, commits and returns the totals.
pub fn run(job: &KafkaIngest, shutdown: Arc<AtomicBool>) -> Result<Summary> {
    let consumer = consumer(job)?;
    let topic = job.topic.as_str();
    let targets = if job.until_caught_up {
        let t = targets(&consumer, topic)?;
        info!(topic, partitions = ?t, "catching up to high watermarks");
        t
    } else {
        BTreeMap::new()
    };
    let mut position = committed(&consumer, topic, &targets);
    consumer
        .subscribe(&[topic])
        .map_err(IngestError::kafka(format!("subscribing to {topic}")))?;
    info!(brokers = %job.brokers, topic, group = %job.group, "consuming");

    let mut summary = Summary::default();
    let mut batch = Batch::new();
    let mut uncommitted: BTreeMap<i32, i64> = BTreeMap::new();
    let mut last_progress = Instant::now();
    // Partitions whose end the consumer reached after its last record.
    // Some brokers (Tansu 0.6) report a high watermark short of the last
    // batch, so reaching the watermark alone is not enough: the consumer
    // must also have been told it is at the end.
    let mut at_end: BTreeSet<i32> = BTreeSet::new();
    let caught_up = |position: &BTreeMap<i32, i64>, at_end: &BTreeSet<i32>| {
        targets
            .iter()
            .all(|(p, high)| at_end.contains(p) && position.get(p).is_some_and(|pos| pos >= high))
    };

    loop {
        if shutdown.load(Ordering::Relaxed) {
            info!("shutting down: flushing what was consumed");
            break;
        }
        if job.until_caught_up && caught_up(&position, &at_end) {
            info!(topic, "caught up");
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(e)) => warn!(topic, error = %e, "kafka error; librdkafka retries"),
            Some(Ok(msg)) => {
                let (partition, offset) = (msg.partition(), msg.offset());
                let payload = msg.payload().unwrap_or(&[]);
                let origin = format!("{topic}/{partition}/{offset}");
                let source = format!("{topic}/{partition}");
                batch.push(
                    decode(payload, &origin, &job.decode),
                    payload,
                    &source,
                    offset,
                    &origin,
                    &mut summary,
                );
                uncommitted.insert(partition, offset + 1);
                at_end.remove(&partition);
                let pos = position.entry(partition).or_insert(0);
                *pos = (*pos).max(offset + 1);
            }
        }
        if batch.is_due(&job.flush) {
            batch.flush(&job.data, &mut summary)?;
            commit(&consumer, topic, &uncommitted);
            uncommitted.clear();
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            info!(
                records = summary.records,
                stored = summary.stored,
                dead_lettered = summary.dead_lettered,
                "progress"
            );
        }
    }
    batch.flush(&job.data, &mut summary)?;
    commit(&consumer, topic, &uncommitted);
    Ok(summary)
}
