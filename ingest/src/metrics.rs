//! The ingester's Prometheus metrics, all defined here, and the small
//! HTTP endpoint that serves them (`overreach ingest --metrics-listen`).
//!
//! Counters come from the run's [`Summary`]; consumer lag per partition
//! comes from librdkafka's statistics. Label values are bounded: reasons
//! are the fixed dead-letter reasons, partitions those of one topic.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use tracing::{info, warn};

use crate::sink::Summary;

/// What a scrape reads.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub summary: Summary,
    pub topic: String,
    /// Messages behind the high watermark, per partition.
    pub lag: BTreeMap<i32, i64>,
    /// The current wait before polling again after broker errors.
    pub backoff: std::time::Duration,
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Prometheus text exposition format 0.0.4.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let sum = &s.summary;
    for (name, help, value) in [
        (
            "overreach_ingest_records_total",
            "Records consumed.",
            sum.records,
        ),
        (
            "overreach_ingest_events_stored_total",
            "Events written to Parquet.",
            sum.stored,
        ),
        (
            "overreach_ingest_merged_stages_total",
            "Records merged into an event already in the batch (stages of one request).",
            sum.merged_stages,
        ),
        (
            "overreach_ingest_already_stored_total",
            "Records dropped because storage already held them.",
            sum.already_stored,
        ),
        (
            "overreach_ingest_reused_ids_total",
            "Source ids seen again for a different request.",
            sum.reused_ids,
        ),
        (
            "overreach_ingest_files_written_total",
            "Files written (events and dead letters).",
            sum.files,
        ),
        (
            "overreach_ingest_bytes_written_total",
            "Bytes written.",
            sum.bytes,
        ),
    ] {
        metric(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let name = "overreach_ingest_dead_letters_total";
    metric(
        &mut out,
        name,
        "counter",
        "Records dead-lettered, by reason.",
    );
    for (reason, n) in &sum.dead_letter_reasons {
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {n}");
    }
    let name = "overreach_ingest_flush_seconds";
    metric(&mut out, name, "summary", "Time spent writing batches.");
    let _ = writeln!(
        out,
        "{name}_sum {:.6}\n{name}_count {}",
        sum.flush_seconds, sum.flushes
    );
    let name = "overreach_ingest_backoff_seconds";
    metric(
        &mut out,
        name,
        "gauge",
        "Current wait before polling again after broker errors (0 when healthy).",
    );
    let _ = writeln!(out, "{name} {:.3}", s.backoff.as_secs_f64());
    let name = "overreach_ingest_consumer_lag";
    metric(
        &mut out,
        name,
        "gauge",
        "Messages between the consumer's position and the high watermark.",
    );
    for (p, lag) in &s.lag {
        let _ = writeln!(
            out,
            "{name}{{topic=\"{}\",partition=\"{p}\"}} {lag}",
            s.topic
        );
    }
    out
}

/// Serves `GET /metrics` on `addr` from a background thread, reading a
/// fresh snapshot per scrape. Returns the bound address.
pub fn serve(
    addr: SocketAddr,
    snapshot: Arc<dyn Fn() -> Snapshot + Send + Sync>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    info!(%bound, "serving ingest metrics at /metrics");
    std::thread::Builder::new()
        .name("ingest-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                // Read the whole request head before answering: closing a
                // socket with unread input resets the connection.
                let mut reader = BufReader::new(&stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 0) && header.trim() != "" {
                    header.clear();
                }
                let (status, body) = if request_line.starts_with("GET /metrics ") {
                    ("200 OK", render(&snapshot()))
                } else {
                    ("404 Not Found", "only GET /metrics is served here\n".to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                if let Err(e) = stream.write_all(response.as_bytes()) {
                    warn!(error = %e, "metrics response not sent");
                }
            }
        })?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_reasons_and_lag() {
        let mut summary = Summary {
            records: 10,
            stored: 7,
            dead_lettered: 3,
            flushes: 2,
            flush_seconds: 0.5,
            ..Summary::default()
        };
        summary.dead_letter_reasons.insert("invalid-json".into(), 3);
        let text = render(&Snapshot {
            summary,
            topic: "t".into(),
            lag: BTreeMap::from([(0, 5), (1, 0)]),
            backoff: std::time::Duration::from_millis(400),
        });
        assert!(text.contains("overreach_ingest_backoff_seconds 0.400\n"));
        assert!(text.contains("overreach_ingest_records_total 10\n"));
        assert!(text.contains("overreach_ingest_events_stored_total 7\n"));
        assert!(text.contains("overreach_ingest_dead_letters_total{reason=\"invalid-json\"} 3\n"));
        assert!(text.contains("overreach_ingest_flush_seconds_count 2\n"));
        assert!(text.contains("overreach_ingest_consumer_lag{topic=\"t\",partition=\"0\"} 5\n"));
        assert!(text.contains("# TYPE overreach_ingest_records_total counter\n"));
    }
}
