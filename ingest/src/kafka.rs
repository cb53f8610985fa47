//! Ingest from a Kafka topic through a consumer group, exactly once into
//! storage.
//!
//! Storage, not Kafka, says what has been ingested: every events file's
//! footer records the last offset per partition its batch consumed (see
//! [`crate::sink`]). On start and on every partition assignment the
//! ingester reads those positions back and drops records at or before
//! them, so a restart after a crash, a failed commit or a rebalance never
//! stores a record twice. Committed group offsets follow storage (after
//! each flush, and when partitions are revoked) so a restart re-reads
//! little and lag stays visible to Kafka tools.
//!
//! Revocation flushes the batch before the partitions move, so the next
//! owner finds everything consumed so far in storage.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use overreach_model::table::TableError;
use overreach_model::DataDir;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::decode::{decode, DecodeOptions};
use crate::metrics::Snapshot;
use crate::sink::{
    stored_positions, DeadLetter, DeadLetterHook, FlushPolicy, Flushed, Sink, Summary,
};
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
    /// How long the group waits for a silent member before moving its
    /// partitions.
    pub session_timeout: Duration,
    /// Serve Prometheus metrics on this address.
    pub metrics_listen: Option<SocketAddr>,
    /// Also send every dead letter (as JSON, keyed by its origin) to this
    /// topic.
    pub dead_letter_topic: Option<String>,
}

/// Sends dead letters to a topic. The dead-letter store on disk is the
/// record of truth; a failed send is logged, not fatal.
fn dead_letter_producer(brokers: &str, topic: &str) -> Result<DeadLetterHook> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("client.id", "overreach-dead-letters")
        .set("message.max.bytes", "2000000")
        .create()
        .map_err(IngestError::kafka(format!(
            "creating a dead-letter producer for {brokers}"
        )))?;
    let topic = topic.to_owned();
    Ok(Box::new(move |dead: &[DeadLetter]| {
        for letter in dead {
            let payload = serde_json::to_vec(letter).unwrap_or_default();
            let record = BaseRecord::<str, [u8]>::to(&topic)
                .key(letter.origin.as_str())
                .payload(&payload);
            if let Err((e, _)) = producer.send(record) {
                warn!(topic = %topic, origin = %letter.origin, error = %e, "dead letter not sent to topic");
            }
        }
        if let Err(e) = producer.flush(Duration::from_secs(30)) {
            warn!(topic = %topic, error = %e, "dead letters not confirmed by the broker");
        }
    }))
}

/// What the poll loop and the rebalance callbacks share. Both run on the
/// polling thread, so the lock is never contended.
struct Shared {
    sink: Sink,
    /// Last stored offset per partition of the topic.
    stored: BTreeMap<i32, i64>,
    /// Offsets made durable by a flush but not yet committed.
    to_commit: BTreeMap<i32, i64>,
    /// A storage failure inside a rebalance callback, reported by the loop.
    failure: Option<TableError>,
    topic_prefix: String,
    /// Consumer lag per assigned partition, from librdkafka's statistics.
    lag: BTreeMap<i32, i64>,
    /// How long the loop waits before polling again after broker errors.
    backoff: Duration,
}

/// Exponential backoff after `errors` broker errors in a row: 100 ms,
/// doubling, at most 5 s.
fn backoff_after(errors: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << errors.saturating_sub(1).min(6)))
        .min(Duration::from_secs(5))
}

impl Shared {
    /// Records what a flush made durable: stored, and committable.
    fn flushed(&mut self, flushed: Flushed) {
        for (source, last) in flushed {
            let Some(partition) = source
                .strip_prefix(&self.topic_prefix)
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            let stored = self.stored.entry(partition).or_insert(last);
            *stored = (*stored).max(last);
            self.to_commit.insert(partition, last + 1);
        }
    }

    fn flush(&mut self) -> std::result::Result<(), TableError> {
        let flushed = self.sink.flush()?;
        self.flushed(flushed);
        Ok(())
    }

    fn reload_stored(&mut self, data: &DataDir, topic: &str) {
        match stored_partitions(data, topic) {
            Ok(stored) => {
                for (p, last) in stored {
                    let entry = self.stored.entry(p).or_insert(last);
                    *entry = (*entry).max(last);
                }
            }
            Err(e) => self.failure = Some(e),
        }
    }
}

struct IngestContext {
    topic: String,
    data: DataDir,
    shared: Arc<Mutex<Shared>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic while holding the lock leaves plain data behind; keep going.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ClientContext for IngestContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        // Partition -1 is librdkafka's internal "unassigned" partition;
        // a lag of -1 means unknown.
        let lag = topic
            .partitions
            .values()
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| (p.partition, p.consumer_lag))
            .collect();
        lock(&self.shared).lag = lag;
    }
}

impl ConsumerContext for IngestContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            info!(
                partitions = partitions.count(),
                "partitions revoked: flushing before they move"
            );
            let mut shared = lock(&self.shared);
            if let Err(e) = shared.flush() {
                shared.failure = Some(e);
                return;
            }
            let to_commit = std::mem::take(&mut shared.to_commit);
            commit(consumer, &self.topic, &to_commit);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            // Another member may have stored more of these partitions;
            // start each one after what storage holds, whatever the
            // group's committed offset says.
            let mut shared = lock(&self.shared);
            shared.reload_stored(&self.data, &self.topic);
            for element in partitions.elements_for_topic(&self.topic) {
                let p = element.partition();
                let offset = match shared.stored.get(&p) {
                    Some(last) => Offset::Offset(last + 1),
                    // Nothing stored: the partition's first record. (An
                    // explicit offset: Tansu 0.6 stalls on a seek to the
                    // logical "beginning".)
                    None => match consumer.fetch_watermarks(&self.topic, p, METADATA_TIMEOUT) {
                        Ok((low, _)) => Offset::Offset(low),
                        Err(e) => {
                            warn!(topic = %self.topic, partition = p, error = %e, "cannot read the low watermark; starting from the committed offset");
                            continue;
                        }
                    },
                };
                if let Err(e) = consumer.seek(&self.topic, p, offset, Duration::ZERO) {
                    // Records before the position are still dropped on
                    // arrival; only the re-read costs time.
                    warn!(topic = %self.topic, partition = p, error = %e, "cannot seek to the stored position");
                }
            }
            info!(partitions = partitions.count(), stored = ?shared.stored, "partitions assigned");
        }
    }
}

/// The last stored offset per partition of `topic`.
fn stored_partitions(
    data: &DataDir,
    topic: &str,
) -> std::result::Result<BTreeMap<i32, i64>, TableError> {
    let prefix = format!("{topic}/");
    Ok(stored_positions(data)?
        .into_iter()
        .filter_map(|(source, last)| {
            let partition = source.strip_prefix(&prefix)?.parse().ok()?;
            Some((partition, last))
        })
        .collect())
}

fn consumer(job: &KafkaIngest, context: IngestContext) -> Result<BaseConsumer<IngestContext>> {
    ClientConfig::new()
        .set("bootstrap.servers", &job.brokers)
        .set("group.id", &job.group)
        .set("client.id", "overreach-ingest")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            job.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (job.session_timeout.as_millis() / 3).max(100).to_string(),
        )
        // Report reaching the end of a partition, for --until-caught-up.
        .set("enable.partition.eof", "true")
        // Cap librdkafka's prefetch queue so memory stays bounded.
        .set("queued.max.messages.kbytes", "65536")
        // Statistics carry the consumer lag per partition, for metrics.
        .set(
            "statistics.interval.ms",
            if job.metrics_listen.is_some() {
                "5000"
            } else {
                "0"
            },
        )
        .create_with_context(context)
        .map_err(IngestError::kafka(format!(
            "creating a consumer for {}",
            job.brokers
        )))
}

/// The offset each partition must reach to be caught up: the high
/// watermark at start, unless the partition is empty.
fn targets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<BTreeMap<i32, i64>> {
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

fn commit<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, next: &BTreeMap<i32, i64>) {
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
        // Storage holds the records and the positions; a failed commit
        // only means re-reading (and dropping) them after a restart.
        warn!(topic, error = %e, "offset commit failed; storage positions still prevent duplicates");
    }
}

/// Consumes until `shutdown` is set (or, with `until_caught_up`, until
/// caught up), then flushes, commits and returns the totals.
pub fn run(job: &KafkaIngest, shutdown: Arc<AtomicBool>) -> Result<Summary> {
    let topic = job.topic.as_str();
    let mut sink = Sink::new(job.data.clone(), job.flush.clone());
    if let Some(dl_topic) = &job.dead_letter_topic {
        sink = sink.with_dead_letter_hook(dead_letter_producer(&job.brokers, dl_topic)?);
    }
    let mut initial = Shared {
        sink,
        stored: BTreeMap::new(),
        to_commit: BTreeMap::new(),
        failure: None,
        topic_prefix: format!("{topic}/"),
        lag: BTreeMap::new(),
        backoff: Duration::ZERO,
    };
    initial.reload_stored(&job.data, topic);
    if let Some(e) = initial.failure.take() {
        return Err(e.into());
    }
    info!(topic, stored = ?initial.stored, "positions already in storage");
    let shared = Arc::new(Mutex::new(initial));
    if let Some(addr) = job.metrics_listen {
        let (shared, topic) = (shared.clone(), job.topic.clone());
        let snapshot = move || {
            let s = lock(&shared);
            Snapshot {
                summary: s.sink.summary().clone(),
                topic: topic.clone(),
                lag: s.lag.clone(),
                backoff: s.backoff,
            }
        };
        let bound = crate::metrics::serve(addr, Arc::new(snapshot))
            .map_err(|e| IngestError::KafkaSetup(format!("cannot serve metrics on {addr}: {e}")))?;
        info!(%bound, "metrics");
    }
    let consumer = consumer(
        job,
        IngestContext {
            topic: job.topic.clone(),
            data: job.data.clone(),
            shared: shared.clone(),
        },
    )?;
    let targets = if job.until_caught_up {
        let t = targets(&consumer, topic)?;
        info!(topic, partitions = ?t, "catching up to high watermarks");
        t
    } else {
        BTreeMap::new()
    };
    consumer
        .subscribe(&[topic])
        .map_err(IngestError::kafka(format!("subscribing to {topic}")))?;
    info!(brokers = %job.brokers, topic, group = %job.group, "consuming");

    // Partitions whose end the consumer reached after its last record.
    // Some brokers (Tansu 0.6) report a high watermark short of the last
    // batch, so reaching the watermark alone is not enough: the consumer
    // must also have been told it is at the end.
    let mut at_end: BTreeSet<i32> = BTreeSet::new();
    // The next offset per partition: consumed, or already in storage.
    let mut position: BTreeMap<i32, i64> = lock(&shared)
        .stored
        .iter()
        .map(|(p, last)| (*p, last + 1))
        .collect();
    let mut last_progress = Instant::now();
    let mut errors_in_a_row = 0u32;

    loop {
        if shutdown.load(Ordering::Relaxed) {
            info!("shutting down: flushing what was consumed");
            break;
        }
        let caught_up = targets.iter().all(|(p, high)| {
            at_end.contains(p) && position.get(p).is_some_and(|next| next >= high)
        });
        if job.until_caught_up && caught_up {
            info!(topic, "caught up");
            break;
        }
        let polled = consumer.poll(Duration::from_millis(200));
        let mut guard = lock(&shared);
        let shared = &mut *guard;
        if let Some(e) = shared.failure.take() {
            return Err(e.into());
        }
        match polled {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
                errors_in_a_row = 0;
                shared.backoff = Duration::ZERO;
            }
            Some(Err(e)) => {
                // librdkafka retries by itself; we also slow down, so a dead
                // broker does not turn the loop into a stream of errors.
                errors_in_a_row += 1;
                let backoff = backoff_after(errors_in_a_row);
                shared.backoff = backoff;
                warn!(topic, error = %e, retry_in_ms = backoff.as_millis() as u64, "kafka error; waiting for the broker");
                drop(guard);
                std::thread::sleep(backoff);
                continue;
            }
            Some(Ok(msg)) => {
                errors_in_a_row = 0;
                shared.backoff = Duration::ZERO;
                let (partition, offset) = (msg.partition(), msg.offset());
                at_end.remove(&partition);
                let next = position.entry(partition).or_insert(0);
                *next = (*next).max(offset + 1);
                if shared
                    .stored
                    .get(&partition)
                    .is_some_and(|last| offset <= *last)
                {
                    // Already in storage: re-read after a restart or a move.
                    shared.sink.note_already_stored();
                } else {
                    let payload = msg.payload().unwrap_or(&[]);
                    let origin = format!("{topic}/{partition}/{offset}");
                    let source = format!("{topic}/{partition}");
                    let result = decode(payload, &origin, &job.decode);
                    let flushed = shared
                        .sink
                        .push(result, payload, &source, offset, &origin)?;
                    shared.flushed(flushed);
                }
            }
        }
        let flushed = shared.sink.flush_if_due()?;
        shared.flushed(flushed);
        if last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            let s = shared.sink.summary();
            info!(
                records = s.records,
                stored = s.stored,
                dead_lettered = s.dead_lettered,
                already_stored = s.already_stored,
                "progress"
            );
        }
        let to_commit = std::mem::take(&mut shared.to_commit);
        drop(guard);
        commit(&consumer, topic, &to_commit);
    }
    let mut shared = lock(&shared);
    shared.flush()?;
    let to_commit = std::mem::take(&mut shared.to_commit);
    commit(&consumer, topic, &to_commit);
    Ok(shared.sink.summary().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let waits: Vec<u64> = (1..=9)
            .map(|n| backoff_after(n).as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }
}
