//! The on-disk layout of a data directory.
//!
//! ```text
//! DIR/events/date=YYYY-MM-DD/*.parquet    decision events, by event day
//! DIR/dead-letter/*.jsonl                 records that could not be decoded
//! DIR/analytics/*.parquet, run.json       what `overreach analyze` wrote
//! DIR/reports/weekly/YYYY-Www.json        what `overreach report` wrote
//! DIR/.tmp/                               files being written; never read
//! ```
//!
//! Files appear in place only by rename from `.tmp/`, after they were
//! synced, so a reader never sees half a file. A day directory may exist
//! with no file in it (a writer stopped between creating it and renaming
//! its first file in); readers take it as a day without events.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn events(&self) -> PathBuf {
        self.root.join("events")
    }

    /// The Hive-style day partition that holds events of `day`.
    pub fn events_partition(&self, day: NaiveDate) -> PathBuf {
        self.events()
            .join(format!("date={}", day.format("%Y-%m-%d")))
    }

    pub fn dead_letter(&self) -> PathBuf {
        self.root.join("dead-letter")
    }

    pub fn analytics(&self) -> PathBuf {
        self.root.join("analytics")
    }

    pub fn tmp(&self) -> PathBuf {
        self.root.join(".tmp")
    }

    pub fn baselines(&self) -> PathBuf {
        self.analytics().join("baselines.parquet")
    }

    pub fn findings(&self) -> PathBuf {
        self.analytics().join("findings.parquet")
    }

    pub fn suggestions(&self) -> PathBuf {
        self.analytics().join("suggestions.parquet")
    }

    pub fn identities(&self) -> PathBuf {
        self.analytics().join("identities.parquet")
    }

    pub fn weekly_reports(&self) -> PathBuf {
        self.root.join("reports").join("weekly")
    }

    /// The stored weekly report of `week` (`2026-W48`).
    pub fn weekly_report(&self, week: &str) -> PathBuf {
        self.weekly_reports().join(format!("{week}.json"))
    }

    /// `run.json`: the parameters and totals of the last analysis.
    pub fn run_info(&self) -> PathBuf {
        self.analytics().join("run.json")
    }
}
