//! The events table as DataFusion sees it, and the few aggregate queries
//! the analysis needs. Everything that scales with the number of events
//! happens here, in SQL; what comes back is bounded by the number of reach
//! keys and subjects.
//!
//! This module only reads `DIR/events/`; it never writes there and never
//! looks at `DIR/.tmp/`.

use std::path::Path;
use std::sync::Arc;

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::json::ArrayWriter;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use overreach_model::event::event_schema;
use overreach_model::DataDir;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{AnalyticsError, Result};
use crate::windows::Windows;
use overreach_model::results::BaselineEntry;

/// Which window a [`KeyStats`] row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Slot {
    Baseline,
    Detect,
}

/// Use of one reach key in one window: a baseline row tagged with the
/// window it covers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct KeyStats {
    pub slot: Slot,
    #[serde(flatten)]
    pub usage: BaselineEntry,
}

impl std::ops::Deref for KeyStats {
    type Target = BaselineEntry;
    fn deref(&self) -> &BaselineEntry {
        &self.usage
    }
}

/// One of the first few events of a reach key or of a subject in the
/// detection window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Sample {
    pub subject: String,
    pub action: String,
    pub resource_pattern: String,
    pub target: Option<String>,
    pub event_id: String,
    /// 1 for the key's earliest event.
    pub rank_in_key: u64,
    /// 1 for the subject's earliest event.
    pub rank_in_subject: u64,
}

/// Everything one subject did, over all stored events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct SubjectStats {
    pub subject: String,
    pub subject_kind: String,
    pub trust_domain: Option<String>,
    pub events: i64,
    pub allow_count: i64,
    pub deny_count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// Allowed calls of one subject in the observation window, grouped by
/// action and resource pattern, and by concrete resource when asked for.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Usage {
    pub subject: String,
    pub action: String,
    pub resource_pattern: String,
    /// Present only when usage was grouped by concrete resource.
    pub resource: Option<String>,
    pub count: i64,
    pub last_seen: DateTime<Utc>,
}

/// The stored events, registered as the DataFusion table `events`.
pub(crate) struct EventStore {
    ctx: SessionContext,
}

/// Copies of one event (the same `event_id` *and* the same request:
/// subject, action, resource) are kept once. An id reused for a different
/// request is a different event and stays, as DESIGN.md requires: the
/// source id can be chosen by the caller, so merging on it alone would let
/// a caller hide a request. When copies disagree, the allowed one wins: it
/// keeps a grant counted as used and a finding scored as allowed, the
/// cautious reading for both.
///
/// `filter` is applied before de-duplication so each query only reads and
/// sorts its own window (copies of one event carry the same time; if they
/// did not, an event straddling a window edge would be counted once in
/// each window, never twice in one).
fn deduped(filter: &str) -> String {
    format!(
        "SELECT event_id, time, subject, subject_kind, trust_domain, action, resource, \
                resource_pattern, target, decision \
         FROM ( \
           SELECT event_id, time, subject, subject_kind, trust_domain, action, resource, \
                  resource_pattern, target, decision, \
                  row_number() OVER ( \
                    PARTITION BY event_id, subject, action, resource \
                    ORDER BY CASE WHEN decision = 'allow' THEN 0 ELSE 1 END, time DESC, origin \
                  ) AS copy \
           FROM events WHERE {filter} \
         ) AS copies WHERE copy = 1"
    )
}

const ALLOW_COUNT: &str = "SUM(CASE WHEN decision = 'allow' THEN 1 ELSE 0 END)";
const DENY_COUNT: &str = "SUM(CASE WHEN decision = 'deny' THEN 1 ELSE 0 END)";

fn timestamp(t: DateTime<Utc>) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(Some(t.timestamp_micros()), Some(Arc::from("UTC")))
}

impl EventStore {
    /// Registers every `*.parquet` file under `data.events()`, at any depth
    /// (the Hive `date=` directories included). Fails with `NoEvents` when
    /// there is none.
    pub async fn open(data: &DataDir) -> Result<Self> {
        let dir = data.events();
        if !has_parquet_file(&dir)? {
            return Err(AnalyticsError::NoEvents { dir });
        }
        let url = dir
            .to_str()
            .map(|d| format!("{}/", d.trim_end_matches('/')))
            .ok_or_else(|| AnalyticsError::NonUtf8Path { dir: dir.clone() })?;
        let config = SessionConfig::new()
            // Read files at any depth, not only in partition directories.
            .set_bool(
                "datafusion.execution.listing_table_ignore_subdirectory",
                false,
            );
        let ctx = SessionContext::new_with_config(config);
        let schema = event_schema();
        // The canonical schema, not the one inferred from the files: old
        // files missing a newer nullable column still read, and every file
        // is read with the same types.
        let options = ParquetReadOptions::default().schema(&schema);
        ctx.register_parquet("events", &url, options)
            .await
            .map_err(|source| AnalyticsError::Query {
                stage: "registering events",
                source,
            })?;
        Ok(Self { ctx })
    }

    async fn query<T: DeserializeOwned>(
        &self,
        stage: &'static str,
        sql: &str,
        windows: Option<&Windows>,
    ) -> Result<Vec<T>> {
        let query_err = |source| AnalyticsError::Query { stage, source };
        let mut frame = self.ctx.sql(sql).await.map_err(query_err)?;
        if let Some(w) = windows {
            frame = frame
                .with_param_values(vec![
                    ("now", timestamp(w.now)),
                    ("detect_start", timestamp(w.detect_start)),
                    ("baseline_start", timestamp(w.baseline_start)),
                    ("observe_start", timestamp(w.observe_start)),
                ])
                .map_err(query_err)?;
        }
        let batches = frame.collect().await.map_err(query_err)?;
        let mut rows = Vec::new();
        for batch in &batches {
            rows.extend(decode::<T>(stage, batch)?);
        }
        Ok(rows)
    }

    /// Rows in the stored files, copies included.
    pub async fn stored_rows(&self) -> Result<i64> {
        #[derive(Deserialize)]
        struct Count {
            stored: i64,
        }
        let counts: Vec<Count> = self
            .query(
                "counting stored rows",
                "SELECT COUNT(*) AS stored FROM events",
                None,
            )
            .await?;
        Ok(counts.first().map_or(0, |c| c.stored))
    }

    /// One row per subject over all (de-duplicated) events, by subject.
    pub async fn subjects(&self) -> Result<Vec<SubjectStats>> {
        let sql = format!(
            "SELECT subject, MIN(subject_kind) AS subject_kind, MIN(trust_domain) AS trust_domain, \
                    COUNT(*) AS events, {ALLOW_COUNT} AS allow_count, {DENY_COUNT} AS deny_count, \
                    MIN(time) AS first_seen, MAX(time) AS last_seen \
             FROM ({events}) AS ev GROUP BY subject ORDER BY subject",
            events = deduped("TRUE"),
        );
        self.query("identities", &sql, None).await
    }

    /// Per reach key, its use in the baseline and in the detection window.
    pub async fn key_stats(&self, windows: &Windows) -> Result<Vec<KeyStats>> {
        let sql = format!(
            "SELECT slot, subject, action, resource_pattern, target, COUNT(*) AS \"count\", \
                    {ALLOW_COUNT} AS allow_count, {DENY_COUNT} AS deny_count, \
                    MIN(time) AS first_seen, MAX(time) AS last_seen \
             FROM ( \
               SELECT CASE WHEN time < $detect_start THEN 'baseline' ELSE 'detect' END AS slot, * \
               FROM ({events}) AS ev \
             ) AS slotted \
             GROUP BY slot, subject, action, resource_pattern, target \
             ORDER BY slot, subject, action, resource_pattern, target",
            events = deduped("time >= $baseline_start AND time <= $now"),
        );
        self.query("baselines and detection", &sql, Some(windows))
            .await
    }

    /// The first `limit` events (by time, then id) of every reach key and
    /// of every subject in the detection window: the evidence of findings.
    pub async fn detect_samples(&self, windows: &Windows, limit: usize) -> Result<Vec<Sample>> {
        let sql = format!(
            "SELECT subject, action, resource_pattern, target, event_id, rank_in_key, rank_in_subject \
             FROM ( \
               SELECT subject, action, resource_pattern, target, event_id, \
                 row_number() OVER (PARTITION BY subject, action, resource_pattern, target \
                                    ORDER BY time, event_id) AS rank_in_key, \
                 row_number() OVER (PARTITION BY subject ORDER BY time, event_id) AS rank_in_subject \
               FROM ({events}) AS ev \
             ) AS ranked \
             WHERE rank_in_key <= {limit} OR rank_in_subject <= {limit}",
            events = deduped("time >= $detect_start AND time <= $now"),
        );
        self.query("finding samples", &sql, Some(windows)).await
    }

    /// Allowed calls in the observation window. With `subjects`, only
    /// those subjects' calls, grouped by concrete resource as well (a grant
    /// may name one object); without, every subject's, by pattern only.
    pub async fn usage(&self, windows: &Windows, subjects: Option<&[&str]>) -> Result<Vec<Usage>> {
        let window = "decision = 'allow' AND time >= $observe_start AND time <= $now";
        let sql = match subjects {
            Some(subjects) => {
                let names = StringArray::from_iter_values(subjects.iter().copied());
                let schema = Arc::new(Schema::new(vec![Field::new(
                    "subject",
                    DataType::Utf8,
                    false,
                )]));
                let batch =
                    RecordBatch::try_new(schema, vec![Arc::new(names)]).map_err(|source| {
                        AnalyticsError::ResultBatch {
                            stage: "grant subjects",
                            source,
                        }
                    })?;
                let register_err = |source| AnalyticsError::Query {
                    stage: "grant subjects",
                    source,
                };
                self.ctx
                    .deregister_table("grant_subjects")
                    .map_err(register_err)?;
                self.ctx
                    .register_batch("grant_subjects", batch)
                    .map_err(register_err)?;
                format!(
                    "SELECT subject, action, resource_pattern, resource, COUNT(*) AS \"count\", \
                            MAX(time) AS last_seen \
                     FROM ({events}) AS ev \
                     GROUP BY subject, action, resource_pattern, resource \
                     ORDER BY subject, action, resource_pattern, resource",
                    events = deduped(&format!(
                        "{window} AND subject IN (SELECT subject FROM grant_subjects)"
                    )),
                )
            }
            None => format!(
                "SELECT subject, action, resource_pattern, COUNT(*) AS \"count\", \
                        MAX(time) AS last_seen \
                 FROM ({events}) AS ev \
                 GROUP BY subject, action, resource_pattern \
                 ORDER BY subject, action, resource_pattern",
                events = deduped(window),
            ),
        };
        self.query("right-sizing usage", &sql, Some(windows)).await
    }
}

/// Converts a result batch into rows through arrow-json, the same path the
/// model's `read_rows` takes, so column names are the only contract.
fn decode<T: DeserializeOwned>(stage: &'static str, batch: &RecordBatch) -> Result<Vec<T>> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let batch_err = |source| AnalyticsError::ResultBatch { stage, source };
    let mut writer = ArrayWriter::new(Vec::new());
    writer.write(batch).map_err(batch_err)?;
    writer.finish().map_err(batch_err)?;
    serde_json::from_slice(&writer.into_inner())
        .map_err(|source| AnalyticsError::ResultRows { stage, source })
}

/// True when some `*.parquet` file exists under `dir`, at any depth.
fn has_parquet_file(dir: &Path) -> Result<bool> {
    let list_err = |source| AnalyticsError::ListEvents {
        dir: dir.to_owned(),
        source,
    };
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(list_err(e)),
        };
        for entry in entries {
            let entry = entry.map_err(list_err)?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(list_err)?;
            if file_type.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
