//! The batch between decoding and storage.
//!
//! Decoded events and dead letters accumulate in a [`Batch`]; a flush
//! writes the events as one Parquet file per event day and the dead
//! letters as one JSON-lines file, each atomically. The caller moves its
//! source position (Kafka offsets) only after `flush` returned.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use overreach_model::event::event_schema;
use overreach_model::table::{write_rows_atomic, write_text_atomic, TableError};
use overreach_model::{DataDir, DecisionEvent};
use serde::Serialize;
use tracing::{info, warn};

use crate::decode::{stable_id, DecodeError, Decoded};

/// When a batch is written out.
#[derive(Debug, Clone)]
pub struct FlushPolicy {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self {
            max_rows: 100_000,
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(5),
        }
    }
}

/// How much of a dead record's payload is kept.
const DEAD_LETTER_PAYLOAD_BYTES: usize = 4096;

/// One record that could not be decoded, as stored in `dead-letter/`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct DeadLetter {
    pub origin: String,
    pub reason: String,
    pub error: String,
    /// Size of the whole record in bytes.
    pub size: usize,
    /// The first bytes of the record (lossy UTF-8).
    pub payload: String,
    pub payload_truncated: bool,
    pub ingested_at: chrono::DateTime<Utc>,
}

/// Totals of an ingest run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub records: u64,
    pub stored: u64,
    /// Records that were another stage of a request already in the batch.
    pub merged_stages: u64,
    /// Source ids (auditID, decision_id) seen again for a different request.
    pub reused_ids: u64,
    pub dead_lettered: u64,
    pub dead_letter_reasons: BTreeMap<String, u64>,
    pub files: u64,
    pub bytes: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records: {} events stored, {} merged stages of one request, {} dead-lettered",
            self.records, self.stored, self.merged_stages, self.dead_lettered
        )?;
        if !self.dead_letter_reasons.is_empty() {
            let reasons: Vec<String> = self
                .dead_letter_reasons
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            write!(f, " ({})", reasons.join(", "))?;
        }
        write!(f, "; {} files, {} bytes written", self.files, self.bytes)
    }
}

/// Events and dead letters waiting to be written.
pub struct Batch {
    events: Vec<DecisionEvent>,
    ranks: Vec<u8>,
    by_event_id: HashMap<String, usize>,
    /// Source id -> event id, to notice an id reused for another request.
    by_source_id: HashMap<String, String>,
    dead: Vec<DeadLetter>,
    bytes: usize,
    started: Option<Instant>,
    /// Per source (`topic/partition` or file), the first and last position.
    ranges: BTreeMap<String, (i64, i64)>,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub fn new() -> Self {
        Self {
            events: Vec::new(),
            ranks: Vec::new(),
            by_event_id: HashMap::new(),
            by_source_id: HashMap::new(),
            dead: Vec::new(),
            bytes: 0,
            started: None,
            ranges: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.dead.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.events.len() + self.dead.len()
    }

    pub fn is_due(&self, policy: &FlushPolicy) -> bool {
        self.rows() >= policy.max_rows
            || self.bytes >= policy.max_bytes
            || self
                .started
                .is_some_and(|t| !self.is_empty() && t.elapsed() >= policy.max_age)
    }

    fn note(&mut self, source: &str, position: i64, size: usize) {
        self.started.get_or_insert_with(Instant::now);
        self.bytes += size;
        self.ranges
            .entry(source.to_owned())
            .and_modify(|(lo, hi)| {
                *lo = (*lo).min(position);
                *hi = (*hi).max(position);
            })
            .or_insert((position, position));
    }

    /// Adds the result of decoding one record of `size` bytes found at
    /// `position` of `source`.
    pub fn push(
        &mut self,
        result: Result<Decoded, DecodeError>,
        raw: &[u8],
        source: &str,
        position: i64,
        origin: &str,
        summary: &mut Summary,
    ) {
        summary.records += 1;
        self.note(source, position, raw.len());
        match result {
            Ok(decoded) => self.push_event(decoded, summary),
            Err(e) => self.push_dead(e, raw, origin, summary),
        }
    }

    fn push_event(&mut self, decoded: Decoded, summary: &mut Summary) {
        let Decoded { event, stage_rank } = decoded;
        if let Some(source_id) = &event.source_id {
            match self.by_source_id.get(source_id) {
                Some(known) if *known != event.event_id => {
                    summary.reused_ids += 1;
                    warn!(
                        source_id = %source_id,
                        origin = %event.origin,
                        "source id reused for a different request; kept as a separate event"
                    );
                }
                Some(_) => {}
                None => {
                    self.by_source_id
                        .insert(source_id.clone(), event.event_id.clone());
                }
            }
        }
        match self.by_event_id.get(&event.event_id) {
            Some(&i) => {
                summary.merged_stages += 1;
                if stage_rank >= self.ranks[i] {
                    self.events[i] = event;
                    self.ranks[i] = stage_rank;
                }
            }
            None => {
                self.by_event_id
                    .insert(event.event_id.clone(), self.events.len());
                self.events.push(event);
                self.ranks.push(stage_rank);
            }
        }
    }

    fn push_dead(&mut self, e: DecodeError, raw: &[u8], origin: &str, summary: &mut Summary) {
        warn!(origin, reason = %e.reason, error = %e.detail, "dead-lettered undecodable record");
        summary.dead_lettered += 1;
        *summary
            .dead_letter_reasons
            .entry(e.reason.as_str().to_owned())
            .or_default() += 1;
        let kept = &raw[..raw.len().min(DEAD_LETTER_PAYLOAD_BYTES)];
        self.dead.push(DeadLetter {
            origin: origin.to_owned(),
            reason: e.reason.as_str().to_owned(),
            error: e.detail,
            size: raw.len(),
            payload: String::from_utf8_lossy(kept).into_owned(),
            payload_truncated: kept.len() < raw.len(),
            ingested_at: Utc::now(),
        });
    }

    /// The highest position per source in this batch.
    pub fn ranges(&self) -> &BTreeMap<String, (i64, i64)> {
        &self.ranges
    }

    /// Writes the batch durably and empties it.
    pub fn flush(&mut self, data: &DataDir, summary: &mut Summary) -> Result<(), TableError> {
        if self.ranges.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let ranges_json = serde_json::to_string(&self.ranges).unwrap_or_default();
        let batch_id = stable_id(&[&ranges_json]);
        let metadata = vec![("overreach.source_ranges".to_owned(), ranges_json)];
        let mut by_day: BTreeMap<NaiveDate, Vec<DecisionEvent>> = BTreeMap::new();
        for event in self.events.drain(..) {
            by_day
                .entry(event.time.date_naive())
                .or_default()
                .push(event);
        }
        let schema = event_schema();
        for (day, events) in &by_day {
            let dest = data
                .events_partition(*day)
                .join(format!("part-{}.parquet", &batch_id[..20]));
            let bytes = write_rows_atomic(&dest, &data.tmp(), &schema, events, &metadata)?;
            summary.stored += events.len() as u64;
            summary.files += 1;
            summary.bytes += bytes;
        }
        if !self.dead.is_empty() {
            let dest = data
                .dead_letter()
                .join(format!("dead-{}.jsonl", &batch_id[..20]));
            let text = to_jsonl(&self.dead);
            write_text_atomic(&dest, &data.tmp(), &text)?;
            summary.bytes += text.len() as u64;
            summary.files += 1;
        }
        info!(
            events = by_day.values().map(Vec::len).sum::<usize>(),
            dead_letters = self.dead.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "flushed batch"
        );
        *self = Batch::new();
        Ok(())
    }
}

fn to_jsonl<T: Serialize>(rows: &[T]) -> String {
    let mut out = String::new();
    for row in rows {
        // Serializing plain structs of strings and numbers cannot fail.
        out.push_str(&serde_json::to_string(row).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Reads every dead letter under `data` (for tests and tools).
pub fn read_dead_letters(data: &DataDir) -> std::io::Result<Vec<DeadLetter>> {
    let mut out = Vec::new();
    let dir = data.dead_letter();
    if !dir.exists() {
        return Ok(out);
    }
    let mut paths: Vec<_> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    for path in paths {
        for line in fs::read_to_string(&path)?.lines() {
            let dl: DeadLetter = serde_json::from_str(line)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            out.push(dl);
        }
    }
    Ok(out)
}
