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

use crate::as_i64;
use crate::error::{AnalyticsError, Result};
use crate::windows::Windows;
use overreach_model::results::BaselineEntry;

/// Which window a row covers: the first-ever window before the baseline
/// (`history`), the baseline or the detection window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Slot {
    History,
    Baseline,
    Detect,
}

/// The resource a reach key is built from, before the analytics' own
/// generalization: the ingest-time pattern (ids in paths already `{id}`),
/// except for Kubernetes, whose object names are kept so that the
/// generalizer can decide per identity whether they matter.
const KEY_RESOURCE: &str = "CASE WHEN format = 'k8s-audit' THEN resource ELSE resource_pattern END";

/// Hours since the Unix epoch, the bucket of the hourly counts.
const HOUR: &str = "CAST(time AS BIGINT) / 3600000000";

const SLOT: &str = "CASE WHEN time < $baseline_start THEN 'history' \
                         WHEN time < $detect_start THEN 'baseline' ELSE 'detect' END";

/// Use of one reach key in one window: a baseline row tagged with the
/// window it covers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct KeyStats {
    pub slot: Slot,
    #[serde(flatten)]
    pub usage: BaselineEntry,
    /// Distinct source addresses the key was used from.
    pub sources: i64,
    /// Distinct clock hours the key was used in.
    pub hours: i64,
}

impl std::ops::Deref for KeyStats {
    type Target = BaselineEntry;
    fn deref(&self) -> &BaselineEntry {
        &self.usage
    }
}

/// Calls of one subject in one clock hour of one window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct HourCount {
    pub slot: Slot,
    pub subject: String,
    /// Hours since the Unix epoch.
    pub hour: i64,
    pub count: i64,
    pub allow_count: i64,
    pub deny_count: i64,
}

/// Calls of one reach key (as stored) in one clock hour of the detection
/// window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct KeyHour {
    pub subject: String,
    pub action: String,
    pub resource_pattern: String,
    pub target: Option<String>,
    pub hour: i64,
    pub allow_count: i64,
}

/// Calls of one subject from one source address in the baseline window,
/// or of one reach key from one address in the detection window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct SourceCount {
    pub slot: Slot,
    pub subject: String,
    pub action: Option<String>,
    pub resource_pattern: Option<String>,
    pub target: Option<String>,
    pub source_address: String,
    pub count: i64,
}

/// Calls of one subject with one credential kind in the detection window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct CredentialStats {
    pub subject: String,
    pub credential_kind: String,
    pub count: i64,
    pub allow_count: i64,
    pub deny_count: i64,
    /// Calls made after the credential's `expires_at`.
    pub expired: i64,
    /// Calls whose credential has no expiry at all.
    pub no_expiry: i64,
    /// The longest remaining validity at call time, in microseconds.
    pub max_remaining_us: Option<i64>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// Which detection-window events are evidence of one finding: those of
/// `subject` between `start` and `until`, narrowed by the other fields
/// that are set.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct EvidenceQuery {
    pub subject: String,
    pub start: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub action: Option<String>,
    /// The store's key resources (see `KEY_RESOURCE`) to match; any when empty.
    pub resources: Vec<String>,
    /// `Some(target)` to match that target (`Some(None)`: no target).
    pub target: Option<Option<String>>,
    pub decision: Option<&'static str>,
    pub credential_kind: Option<String>,
    pub expired_only: bool,
}

/// Everything one subject did, over all stored events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct SubjectStats {
    pub subject: String,
    pub subject_kind: String,
    pub trust_domain: Option<String>,
    pub environment: Option<String>,
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
    /// The workload called; present only with the concrete resource.
    #[serde(default)]
    pub target: Option<String>,
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Distinct UTC days with such a call: a permission used on 3 days of
    /// 90 is a periodic job's, not a daily one's.
    pub days: i64,
    /// The id of the latest such call, evidence a reviewer can look up.
    pub sample_event_id: String,
}

/// How completely the store saw the observation window.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Coverage {
    /// Clock hours (since the epoch) with at least one stored event.
    pub hours: Vec<i64>,
    /// Stored events in the window.
    pub events: i64,
    /// Distinct UTC days on which each subject made any call.
    pub active_days: std::collections::HashMap<String, i64>,
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
        "SELECT {COLUMNS} \
         FROM ( \
           SELECT {COLUMNS}, \
                  row_number() OVER ( \
                    PARTITION BY event_id, subject, action, resource \
                    ORDER BY CASE WHEN decision = 'allow' THEN 0 ELSE 1 END, time DESC, origin \
                  ) AS copy \
           FROM events WHERE {filter} \
         ) AS copies WHERE copy = 1"
    )
}

/// The columns analysis reads.
const COLUMNS: &str = "event_id, time, subject, subject_kind, trust_domain, action, resource, \
     resource_pattern, target, decision, format, environment, source_address, credential_kind, \
     credential_expires_at, origin";

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
                    ("history_start", timestamp(w.history_start)),
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
                    MIN(environment) AS environment, \
                    COUNT(*) AS events, {ALLOW_COUNT} AS allow_count, {DENY_COUNT} AS deny_count, \
                    MIN(time) AS first_seen, MAX(time) AS last_seen \
             FROM ({events}) AS ev GROUP BY subject ORDER BY subject",
            events = deduped("TRUE"),
        );
        self.query("identities", &sql, None).await
    }

    /// Per reach key, its use in the first-ever, baseline and detection
    /// windows.
    pub async fn key_stats(&self, windows: &Windows) -> Result<Vec<KeyStats>> {
        let sql = format!(
            "SELECT slot, subject, action, key_resource AS resource_pattern, target, \
                    COUNT(*) AS \"count\", {ALLOW_COUNT} AS allow_count, {DENY_COUNT} AS deny_count, \
                    MIN(time) AS first_seen, MAX(time) AS last_seen, \
                    COUNT(DISTINCT source_address) AS sources, COUNT(DISTINCT hour) AS hours \
             FROM ( \
               SELECT {SLOT} AS slot, {KEY_RESOURCE} AS key_resource, {HOUR} AS hour, * \
               FROM ({events}) AS ev \
             ) AS slotted \
             GROUP BY slot, subject, action, key_resource, target \
             ORDER BY slot, subject, action, key_resource, target",
            events = deduped("time >= $history_start AND time <= $now"),
        );
        self.query("baselines and detection", &sql, Some(windows))
            .await
    }

    /// Calls per subject and clock hour in the baseline and detection
    /// windows (hours without calls are absent).
    pub async fn hourly(&self, windows: &Windows) -> Result<Vec<HourCount>> {
        let sql = format!(
            "SELECT slot, subject, hour, COUNT(*) AS \"count\", {ALLOW_COUNT} AS allow_count, \
                    {DENY_COUNT} AS deny_count \
             FROM (SELECT {SLOT} AS slot, {HOUR} AS hour, * FROM ({events}) AS ev) AS hours \
             GROUP BY slot, subject, hour ORDER BY subject, hour",
            events = deduped("time >= $baseline_start AND time <= $now"),
        );
        self.query("hourly rates", &sql, Some(windows)).await
    }

    /// Allowed calls per reach key and clock hour in the detection window.
    pub async fn key_hours(&self, windows: &Windows) -> Result<Vec<KeyHour>> {
        let sql = format!(
            "SELECT subject, action, key_resource AS resource_pattern, target, hour, \
                    COUNT(*) AS allow_count \
             FROM (SELECT {KEY_RESOURCE} AS key_resource, {HOUR} AS hour, * FROM ({events}) AS d) AS ev \
             GROUP BY subject, action, key_resource, target, hour",
            events = deduped("time >= $detect_start AND time <= $now AND decision = 'allow'"),
        );
        self.query("hourly key use", &sql, Some(windows)).await
    }

    /// Source addresses: per subject in the baseline window, per reach key
    /// in the detection window.
    pub async fn sources(&self, windows: &Windows) -> Result<Vec<SourceCount>> {
        let sql = format!(
            "SELECT 'baseline' AS slot, subject, CAST(NULL AS VARCHAR) AS action, \
                    CAST(NULL AS VARCHAR) AS resource_pattern, CAST(NULL AS VARCHAR) AS target, \
                    source_address, COUNT(*) AS \"count\" \
             FROM ({baseline}) AS ev GROUP BY subject, source_address \
             UNION ALL \
             SELECT 'detect' AS slot, subject, action, key_resource AS resource_pattern, target, \
                    source_address, COUNT(*) AS \"count\" \
             FROM (SELECT {KEY_RESOURCE} AS key_resource, * FROM ({detect}) AS d) AS ev \
             GROUP BY subject, action, key_resource, target, source_address",
            baseline = deduped(
                "time >= $baseline_start AND time < $detect_start AND source_address IS NOT NULL"
            ),
            detect =
                deduped("time >= $detect_start AND time <= $now AND source_address IS NOT NULL"),
        );
        self.query("source addresses", &sql, Some(windows)).await
    }

    /// Credentials used in the detection window, per subject and kind.
    pub async fn credentials(&self, windows: &Windows) -> Result<Vec<CredentialStats>> {
        let sql = format!(
            "SELECT subject, credential_kind, COUNT(*) AS \"count\", {ALLOW_COUNT} AS allow_count, \
                    {DENY_COUNT} AS deny_count, \
                    SUM(CASE WHEN credential_expires_at < time THEN 1 ELSE 0 END) AS expired, \
                    SUM(CASE WHEN credential_expires_at IS NULL THEN 1 ELSE 0 END) AS no_expiry, \
                    MAX(CAST(credential_expires_at AS BIGINT) - CAST(time AS BIGINT)) AS max_remaining_us, \
                    MIN(time) AS first_seen, MAX(time) AS last_seen \
             FROM ({events}) AS ev GROUP BY subject, credential_kind \
             ORDER BY subject, credential_kind",
            events = deduped("time >= $detect_start AND time <= $now AND credential_kind IS NOT NULL"),
        );
        self.query("credentials", &sql, Some(windows)).await
    }

    /// Distinct (subject, action, concrete resource, target) in the
    /// baseline and detection windows: the reach keys there would be with
    /// no generalization at all.
    pub async fn concrete_keys(&self, windows: &Windows) -> Result<i64> {
        #[derive(Deserialize)]
        struct Count {
            keys: i64,
        }
        let sql = format!(
            "SELECT COUNT(*) AS keys FROM ( \
               SELECT DISTINCT subject, action, resource, target FROM ({events}) AS ev \
             ) AS k",
            events = deduped("time >= $baseline_start AND time <= $now"),
        );
        let counts: Vec<Count> = self.query("concrete keys", &sql, Some(windows)).await?;
        Ok(counts.first().map_or(0, |c| c.keys))
    }

    /// The first `limit` events (by time, then id) matching each query:
    /// the evidence of findings. Returns the event ids of query `i` at
    /// index `i`.
    pub async fn evidence(
        &self,
        windows: &Windows,
        queries: &[EvidenceQuery],
        limit: usize,
    ) -> Result<Vec<Vec<String>>> {
        let mut out = vec![Vec::new(); queries.len()];
        if queries.is_empty() {
            return Ok(out);
        }
        let batch = evidence_batch(windows, queries)?;
        let register_err = |source| AnalyticsError::Query {
            stage: "evidence queries",
            source,
        };
        self.ctx
            .deregister_table("evidence_queries")
            .map_err(register_err)?;
        self.ctx
            .register_batch("evidence_queries", batch)
            .map_err(register_err)?;
        #[derive(Deserialize)]
        struct Row {
            query: i64,
            event_id: String,
        }
        let sql = format!(
            "SELECT query, event_id FROM ( \
               SELECT q.query, e.event_id, \
                      row_number() OVER (PARTITION BY q.query ORDER BY e.time, e.event_id) AS rank \
               FROM evidence_queries AS q \
               JOIN (SELECT {KEY_RESOURCE} AS key_resource, * FROM ({events}) AS d) AS e \
                 ON e.subject = q.subject \
               WHERE e.time >= q.start AND e.time <= q.until \
                 AND (q.action IS NULL OR e.action = q.action) \
                 AND (q.key_resource IS NULL OR e.key_resource = q.key_resource) \
                 AND (q.any_target OR e.target IS NOT DISTINCT FROM q.target) \
                 AND (q.decision IS NULL OR e.decision = q.decision) \
                 AND (q.credential_kind IS NULL OR e.credential_kind = q.credential_kind) \
                 AND (NOT q.expired_only OR e.credential_expires_at < e.time) \
             ) AS ranked WHERE rank <= {limit} ORDER BY query, rank",
            events = deduped("time >= $detect_start AND time <= $now"),
        );
        let rows: Vec<Row> = self.query("finding evidence", &sql, Some(windows)).await?;
        for row in rows {
            if let Some(ids) = usize::try_from(row.query).ok().and_then(|i| out.get_mut(i)) {
                ids.push(row.event_id);
            }
        }
        Ok(out)
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
                    "SELECT subject, action, resource_pattern, resource, target, \
                            COUNT(*) AS \"count\", {columns} \
                     FROM ({events}) AS ev \
                     GROUP BY subject, action, resource_pattern, resource, target \
                     ORDER BY subject, action, resource_pattern, resource, target",
                    events = deduped(&format!(
                        "{window} AND subject IN (SELECT subject FROM grant_subjects)"
                    )),
                    columns = usage_columns(),
                )
            }
            None => format!(
                "SELECT subject, action, resource_pattern, COUNT(*) AS \"count\", \
                        {columns} \
                 FROM ({events}) AS ev \
                 GROUP BY subject, action, resource_pattern \
                 ORDER BY subject, action, resource_pattern",
                events = deduped(window),
                columns = usage_columns(),
            ),
        };
        self.query("right-sizing usage", &sql, Some(windows)).await
    }

    /// Which clock hours of the observation window hold any stored event,
    /// and on how many days each subject was active in it.
    pub async fn coverage(&self, windows: &Windows) -> Result<Coverage> {
        #[derive(Deserialize)]
        struct Hour {
            hour: i64,
            events: i64,
        }
        #[derive(Deserialize)]
        struct Days {
            subject: String,
            days: i64,
        }
        let events = deduped("time >= $observe_start AND time <= $now");
        let hours: Vec<Hour> = self
            .query(
                "observation window hours",
                &format!(
                    "SELECT {HOUR} AS hour, COUNT(*) AS events FROM ({events}) AS ev \
                     GROUP BY hour ORDER BY hour"
                ),
                Some(windows),
            )
            .await?;
        let days: Vec<Days> = self
            .query(
                "active days",
                &format!(
                    "SELECT subject, COUNT(DISTINCT {DAY}) AS days FROM ({events}) AS ev \
                     GROUP BY subject"
                ),
                Some(windows),
            )
            .await?;
        Ok(Coverage {
            events: hours.iter().map(|h| h.events).sum(),
            hours: hours.into_iter().map(|h| h.hour).collect(),
            active_days: days.into_iter().map(|d| (d.subject, d.days)).collect(),
        })
    }
}

/// Days since the Unix epoch.
const DAY: &str = "CAST(time AS BIGINT) / 86400000000";

/// What right-sizing keeps of each usage group besides its count.
fn usage_columns() -> String {
    format!(
        "MIN(time) AS first_seen, MAX(time) AS last_seen, COUNT(DISTINCT {DAY}) AS days, \
         last_value(event_id ORDER BY time, event_id) AS sample_event_id"
    )
}

/// The evidence queries as a table, one row per query and key resource.
fn evidence_batch(windows: &Windows, queries: &[EvidenceQuery]) -> Result<RecordBatch> {
    use arrow::array::{ArrayRef, BooleanArray, Int64Array, TimestampMicrosecondArray};
    let mut query = Vec::new();
    let mut subject = Vec::new();
    let mut start = Vec::new();
    let mut until = Vec::new();
    let mut action = Vec::new();
    let mut resource = Vec::new();
    let mut any_target = Vec::new();
    let mut target = Vec::new();
    let mut decision = Vec::new();
    let mut credential = Vec::new();
    let mut expired = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let resources: Vec<Option<&str>> = if q.resources.is_empty() {
            vec![None]
        } else {
            q.resources.iter().map(|r| Some(r.as_str())).collect()
        };
        for r in resources {
            query.push(as_i64(i));
            subject.push(q.subject.as_str());
            start.push(q.start.unwrap_or(windows.detect_start).timestamp_micros());
            until.push(q.until.unwrap_or(windows.now).timestamp_micros());
            action.push(q.action.as_deref());
            resource.push(r);
            any_target.push(q.target.is_none());
            target.push(q.target.as_ref().and_then(|t| t.as_deref()));
            decision.push(q.decision);
            credential.push(q.credential_kind.as_deref());
            expired.push(q.expired_only);
        }
    }
    let ts = |values: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
    };
    let text = |values: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    let timestamp_type = DataType::Timestamp(
        arrow::datatypes::TimeUnit::Microsecond,
        Some(Arc::from("UTC")),
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("query", DataType::Int64, false),
        Field::new("subject", DataType::Utf8, false),
        Field::new("start", timestamp_type.clone(), false),
        Field::new("until", timestamp_type, false),
        Field::new("action", DataType::Utf8, true),
        Field::new("key_resource", DataType::Utf8, true),
        Field::new("any_target", DataType::Boolean, false),
        Field::new("target", DataType::Utf8, true),
        Field::new("decision", DataType::Utf8, true),
        Field::new("credential_kind", DataType::Utf8, true),
        Field::new("expired_only", DataType::Boolean, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(query)),
            Arc::new(StringArray::from(subject)),
            ts(start),
            ts(until),
            text(action),
            text(resource),
            Arc::new(BooleanArray::from(any_target)),
            text(target),
            text(decision),
            text(credential),
            Arc::new(BooleanArray::from(expired)),
        ],
    )
    .map_err(|source| AnalyticsError::ResultBatch {
        stage: "evidence queries",
        source,
    })
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
