//! Why an analysis run failed: the error type of the analytics stage.
//! Errors carry the path, window or query stage they concern; there is no
//! catch-all variant.

use std::path::PathBuf;

use arrow::error::ArrowError;
use chrono::{DateTime, Duration, Utc};
use datafusion::error::DataFusionError;
use overreach_model::table::TableError;

use crate::grants::GrantsError;

pub type Result<T, E = AnalyticsError> = std::result::Result<T, E>;

/// Everything that can stop `overreach analyze`.
///
/// User errors (nothing ingested yet, a bad window, a bad grants file) say
/// what to do about them; the rest carry the stage that failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("no events under {}: run `overreach ingest` first to store some", dir.display())]
    NoEvents { dir: PathBuf },
    #[error("week {week} holds no stored events: they run from {first} to {latest}")]
    WeekOutsideEvents {
        week: String,
        first: chrono::DateTime<chrono::Utc>,
        latest: chrono::DateTime<chrono::Utc>,
    },
    #[error("cannot list event files under {}: {source}", dir.display())]
    ListEvents {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("the events directory {} is not valid UTF-8, which the query engine needs", dir.display())]
    NonUtf8Path { dir: PathBuf },
    #[error("the {name} window must be longer than zero, got {value}")]
    InvalidWindow { name: &'static str, value: Duration },
    #[error("the {name} window reaches before the earliest representable time (now = {now})")]
    WindowOutOfRange {
        name: &'static str,
        now: DateTime<Utc>,
    },
    #[error(transparent)]
    Grants(#[from] GrantsError),
    #[error(transparent)]
    Rbac(#[from] crate::rbac::RbacError),
    #[error(transparent)]
    Opa(#[from] crate::opa_data::OpaError),
    #[error(transparent)]
    Istio(#[from] crate::istio::IstioError),
    #[error("generalization rule {rule:?}: {reason}")]
    GeneralizeRule { rule: String, reason: String },
    #[error("query for {stage} failed: {source}")]
    Query {
        stage: &'static str,
        source: DataFusionError,
    },
    #[error("reading the {stage} query result: {source}")]
    ResultBatch {
        stage: &'static str,
        source: ArrowError,
    },
    #[error("reading the {stage} query result: {source}")]
    ResultRows {
        stage: &'static str,
        source: serde_json::Error,
    },
    #[error("writing the suggested policy of {subject}: {source}")]
    Policy {
        subject: String,
        source: serde_yaml::Error,
    },
    #[error("writing analysis results: {0}")]
    Table(#[from] TableError),
    #[error("encoding run.json: {0}")]
    RunInfo(serde_json::Error),
}
