//! The ingester's Prometheus endpoint, scraped over real HTTP while it
//! consumes, and its clean exit on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::mocking::MockCluster;

fn scrape(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

#[test]
fn metrics_count_records_dead_letters_and_lag() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let topic = topic("metrics");
    cluster.create_topic(&topic, 2, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let good = r#"{"id":"m-ID","time":"2026-11-30T12:00:00Z","subject":"spiffe://prod.example.org/ns/a/sa/b","action":"GET","resource":"/x","decision":"allow"}"#;
    let mut lines: Vec<String> = (0..40)
        .map(|i| good.replace("ID", &i.to_string()))
        .collect();
    lines.extend(["{not json".to_string(), r#"{"hello": 1}"#.to_string()]);
    std::fs::write(&input, lines.join("\n")).unwrap();
    overreach(&[
        "produce",
        "--brokers",
        &brokers,
        "--topic",
        &topic,
        input.to_str().unwrap(),
    ]);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let data = dir.path().join("data");
    let child = Command::new(bin())
        .args([
            "ingest",
            "--brokers",
            &brokers,
            "--topic",
            &topic,
            "--flush-interval",
            "1s",
        ])
        .args([
            "--session-timeout",
            "3s",
            "--metrics-listen",
            &addr,
            "--data",
        ])
        .arg(&data)
        .env("OVERREACH_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        if let Some(text) = scrape(&addr) {
            if text.contains("overreach_ingest_records_total 42\n")
                && text.contains("overreach_ingest_events_stored_total 40\n")
                && text.contains("overreach_ingest_consumer_lag{")
            {
                break text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed all records: {:?}",
            scrape(&addr)
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(text.starts_with("HTTP/1.1 200 OK"));
    assert!(text.contains("overreach_ingest_dead_letters_total{reason=\"invalid-json\"} 1\n"));
    assert!(text.contains("overreach_ingest_dead_letters_total{reason=\"unknown-format\"} 1\n"));
    for p in 0..2 {
        assert!(
            text.contains(&format!(
                "overreach_ingest_consumer_lag{{topic=\"{topic}\",partition=\"{p}\"}} 0\n"
            )),
            "{text}"
        );
    }

    // SIGTERM: flush, commit, print the summary, exit 0.
    let out = terminate(child);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("42 records: 40 events stored"), "{stdout}");
    let (rows, _) = pyarrow_counts(&data);
    assert_eq!(rows, 40);
}
