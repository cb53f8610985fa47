//! The batch between decoding and storage.
//!
//! Decoded events and dead letters accumulate in a [`Sink`]'s batch. A
//! batch holds events of one day only (a record of another day flushes the
//! batch first), so a flush writes exactly one events file: the dead
//! letters first, then the events file, whose Parquet footer records, per
//! source (`topic/partition` or file), the first and last position the
//! batch consumed. That footer is the commit point: once the file is in
//! place, every record up to those positions is stored or dead-lettered,
//! and [`stored_positions`] reads the positions back after a restart. A
//! batch of dead letters only still writes an (empty) events file, so its
//! progress is recorded too.

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
    /// Records dropped because storage already held them (re-read after a
    /// restart or a partition move).
    pub already_stored: u64,
    pub files: u64,
    pub bytes: u64,
    /// Batches written, and the time spent writing them.
    pub flushes: u64,
    pub flush_seconds: f64,
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
        if self.already_stored > 0 {
            write!(f, "; {} already stored", self.already_stored)?;
        }
        write!(f, "; {} files, {} bytes written", self.files, self.bytes)
    }
}

/// Events and dead letters waiting to be written.
struct Batch {
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
    /// The event day all events of the batch belong to.
    day: Option<NaiveDate>,
}

impl Batch {
    fn new() -> Self {
        Self {
            events: Vec::new(),
            ranks: Vec::new(),
            by_event_id: HashMap::new(),
            by_source_id: HashMap::new(),
            dead: Vec::new(),
            bytes: 0,
            started: None,
            ranges: BTreeMap::new(),
            day: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.dead.is_empty()
    }

    fn rows(&self) -> usize {
        self.events.len() + self.dead.len()
    }

    fn is_due(&self, policy: &FlushPolicy) -> bool {
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

    /// Adds the result of decoding one record of `raw` found at
    /// `position` of `source`.
    fn push(
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
                self.day.get_or_insert(event.time.date_naive());
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
}

/// Called with each flushed batch's dead letters once they are durable
/// (for example to copy them to a dead-letter topic).
pub type DeadLetterHook = Box<dyn FnMut(&[DeadLetter]) + Send>;

/// Where decoded records go: a batch, flushed to a data directory.
pub struct Sink {
    data: DataDir,
    policy: FlushPolicy,
    batch: Batch,
    summary: Summary,
    /// The day of the last events written, for batches without events.
    last_day: Option<NaiveDate>,
    dead_letter_hook: Option<DeadLetterHook>,
}

impl Sink {
    pub fn new(data: DataDir, policy: FlushPolicy) -> Self {
        Self {
            data,
            policy,
            batch: Batch::new(),
            summary: Summary::default(),
            last_day: None,
            dead_letter_hook: None,
        }
    }

    /// Also hands every batch's dead letters to `hook` after they are
    /// stored.
    pub fn with_dead_letter_hook(mut self, hook: DeadLetterHook) -> Self {
        self.dead_letter_hook = Some(hook);
        self
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Counts a record dropped because storage already holds it.
    pub fn note_already_stored(&mut self) {
        self.summary.already_stored += 1;
    }

    pub fn into_summary(self) -> Summary {
        self.summary
    }

    /// Adds the result of decoding one record of `raw` found at `position`
    /// of `source`. An event of another day than the batch's flushes the
    /// batch first; so does a full batch. Returns the last position per
    /// source that became durable (empty when nothing was flushed).
    pub fn push(
        &mut self,
        result: Result<Decoded, DecodeError>,
        raw: &[u8],
        source: &str,
        position: i64,
        origin: &str,
    ) -> Result<Flushed, TableError> {
        let other_day = match (&result, self.batch.day) {
            (Ok(d), Some(day)) => d.event.time.date_naive() != day,
            _ => false,
        };
        let mut flushed = if other_day {
            self.flush()?
        } else {
            Flushed::new()
        };
        self.batch
            .push(result, raw, source, position, origin, &mut self.summary);
        for (source, last) in self.flush_if_due()? {
            flushed.insert(source, last);
        }
        Ok(flushed)
    }

    /// Flushes when the batch is full or old enough.
    pub fn flush_if_due(&mut self) -> Result<Flushed, TableError> {
        if self.batch.is_due(&self.policy) {
            self.flush()
        } else {
            Ok(Flushed::new())
        }
    }

    /// Writes the batch durably and empties it. Returns the last position
    /// per source it covered (empty when there was nothing to write).
    pub fn flush(&mut self) -> Result<Flushed, TableError> {
        let batch = &mut self.batch;
        if batch.ranges.is_empty() {
            return Ok(Flushed::new());
        }
        let started = Instant::now();
        let ranges_json = serde_json::to_string(&batch.ranges).unwrap_or_default();
        let batch_id = stable_id(&[&ranges_json]);
        if !batch.dead.is_empty() {
            let dest = self
                .data
                .dead_letter()
                .join(format!("dead-{}.jsonl", &batch_id[..20]));
            let text = to_jsonl(&batch.dead);
            write_text_atomic(&dest, &self.data.tmp(), &text)?;
            self.summary.bytes += text.len() as u64;
            self.summary.files += 1;
            if let Some(hook) = self.dead_letter_hook.as_mut() {
                hook(&batch.dead);
            }
        }
        let day = batch
            .day
            .or(self.last_day)
            .unwrap_or_else(|| Utc::now().date_naive());
        let dest = self
            .data
            .events_partition(day)
            .join(format!("part-{}.parquet", &batch_id[..20]));
        let metadata = vec![(SOURCE_RANGES_KEY.to_owned(), ranges_json)];
        let bytes = write_rows_atomic(
            &dest,
            &self.data.tmp(),
            &event_schema(),
            &batch.events,
            &metadata,
        )?;
        self.summary.stored += batch.events.len() as u64;
        self.summary.files += 1;
        self.summary.bytes += bytes;
        self.summary.flushes += 1;
        self.summary.flush_seconds += started.elapsed().as_secs_f64();
        info!(
            events = batch.events.len(),
            dead_letters = batch.dead.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "flushed batch"
        );
        self.last_day = Some(day);
        let flushed = batch
            .ranges
            .iter()
            .map(|(s, (_, last))| (s.clone(), *last))
            .collect();
        *batch = Batch::new();
        Ok(flushed)
    }
}

/// The last position per source that a flush made durable.
pub type Flushed = BTreeMap<String, i64>;

/// The footer key holding a file's source ranges (JSON object
/// `{"topic/partition": [first, last], ...}`).
pub const SOURCE_RANGES_KEY: &str = "overreach.source_ranges";

/// The last stored position of every source, read from the footers of the
/// events files under `data`: every record at or before it is stored or
/// dead-lettered.
pub fn stored_positions(data: &DataDir) -> Result<BTreeMap<String, i64>, TableError> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for path in parquet_files(&data.events()).map_err(|source| TableError::Io {
        path: data.events(),
        source,
    })? {
        let Some(json) = overreach_model::table::footer_value(&path, SOURCE_RANGES_KEY)? else {
            continue;
        };
        let ranges: BTreeMap<String, (i64, i64)> =
            serde_json::from_str(&json).map_err(|e| TableError::Io {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?;
        for (source, (_, last)) in ranges {
            let entry = out.entry(source).or_insert(last);
            *entry = (*entry).max(last);
        }
    }
    Ok(out)
}

fn parquet_files(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(parquet_files(&path)?);
        } else if path.extension().is_some_and(|x| x == "parquet") {
            out.push(path);
        }
    }
    Ok(out)
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
