//! Ingest: the first stage. Decision logs come in from Kafka topics or
//! files, are decoded into the canonical [`DecisionEvent`] and land as
//! Parquet files in a data directory; records that cannot be decoded land
//! in the dead-letter store with the reason and where they came from.
//!
//! Invariants:
//! - a record is data, never a reason to stop: a bad one is counted and
//!   dead-lettered, and the good records around it are kept;
//! - a Kafka offset is committed only after the Parquet file holding the
//!   record is durable (written, synced, renamed into place);
//! - credentials never reach storage (see [`decode::mask`]).
//!
//! Ingest never runs analytics and never serves HTTP.
//!
//! [`DecisionEvent`]: overreach_model::DecisionEvent
#![forbid(unsafe_code)]

pub mod decode;
pub mod files;
pub mod kafka;
pub mod metrics;
pub mod produce;
pub mod sink;

use std::path::PathBuf;

pub use decode::{DecodeOptions, Format};
pub use sink::{FlushPolicy, Summary};

pub type Result<T, E = IngestError> = std::result::Result<T, E>;

/// What stops an ingest run. Bad records are not here: they are data.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read {path}: {source}")]
    Input {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing to the data directory: {0}")]
    Store(#[from] overreach_model::table::TableError),
    #[error("kafka: {context}: {source}")]
    Kafka {
        context: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("kafka: {0}")]
    KafkaSetup(String),
}

impl IngestError {
    pub(crate) fn kafka(
        context: impl Into<String>,
    ) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let context = context.into();
        move |source| IngestError::Kafka { context, source }
    }
}
