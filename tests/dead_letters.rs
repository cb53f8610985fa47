//! Bad records mixed with good ones: every good one is stored, every bad
//! one is dead-lettered with its reason and origin, from files and Kafka.

mod common;

use std::io::Write;
use std::path::Path;

use common::*;
use overreach_ingest::sink::read_dead_letters;
use overreach_model::DataDir;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::Duration;

/// Lines of a mixed input and, for bad ones, the reason we expect.
fn corpus() -> Vec<(Vec<u8>, Option<&'static str>)> {
    let native = r#"{"id":"n-1","time":"2026-11-30T12:00:00Z","subject":"spiffe://prod.example.org/ns/payments/sa/api","action":"GET","resource":"/v1/accounts/4711","decision":"allow"}"#;
    let k8s = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"033d17af-082d-4b24-aa22-627752e83d71","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods","verb":"list","user":{"username":"system:admin"},"impersonatedUser":{"username":"system:serviceaccount:ns1:sa1"},"sourceIPs":["::1"],"objectRef":{"resource":"pods","namespace":"default","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":403},"requestReceivedTimestamp":"2017-09-11T19:55:05Z"}"#;
    let opa = r#"{"decision_id":"80e5491b-7629-4d63-872a-25cc8ba4b820","path":"envoy/authz/allow","input":{"attributes":{"source":{"principal":"spiffe://cluster.local/ns/kube-flannel/sa/flannel"},"request":{"http":{"method":"GET","path":"/api/v1/nodes","host":"kubernetes.default.svc","headers":{"authorization":"Bearer abc"}}}}},"result":{"allowed":true},"timestamp":"2023-01-27T18:28:08.314899Z"}"#;
    vec![
        (native.as_bytes().to_vec(), None),
        (native.as_bytes()[..60].to_vec(), Some("invalid-json")),
        (
            b"{\"subject\": \"\xff\xfe\"}".to_vec(),
            Some("invalid-utf8"),
        ),
        (k8s.as_bytes().to_vec(), None),
        (
            native.replace("\"GET\"", "404").into_bytes(),
            Some("wrong-type"),
        ),
        (
            native
                .replace(
                    "spiffe://prod.example.org/ns",
                    "spiffe://prod.example.org//ns",
                )
                .into_bytes(),
            Some("invalid-spiffe-id"),
        ),
        (br#"{"hello": "world"}"#.to_vec(), Some("unknown-format")),
        (opa.as_bytes().to_vec(), None),
        (
            native
                .replace("2026-11-30T12:00:00Z", "30/11/2026")
                .into_bytes(),
            Some("invalid-timestamp"),
        ),
        (native.replace("\"n-1\"", "\"n-2\"").into_bytes(), None),
    ]
}

fn check(data: &Path, origin_of: impl Fn(usize) -> String, extra: &[(String, &str)]) {
    let corpus = corpus();
    let good = corpus.iter().filter(|(_, r)| r.is_none()).count() as u64;
    let (rows, _) = pyarrow_counts(data);
    assert_eq!(rows, good, "every good record stored");
    let mut dead = read_dead_letters(&DataDir::new(data)).unwrap();
    dead.sort_by_key(|d| {
        d.origin
            .rsplit([':', '/'])
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    });
    let mut expected: Vec<(String, &str)> = corpus
        .iter()
        .enumerate()
        .filter_map(|(i, (_, r))| r.map(|r| (origin_of(i), r)))
        .collect();
    expected.extend(extra.iter().cloned());
    let got: Vec<(String, &str)> = dead
        .iter()
        .map(|d| (d.origin.clone(), d.reason.as_str()))
        .collect();
    assert_eq!(got, expected);
    for d in &dead {
        assert!(!d.error.is_empty());
        assert!(d.size > 0 || d.reason == "empty");
    }
    // Credentials in headers never reach storage.
    let bytes: Vec<u8> = walk(&data.join("events"));
    assert!(!bytes.windows(10).any(|w| w == b"Bearer abc"));
}

fn walk(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.extend(std::fs::read(&p).unwrap());
        }
    }
    out
}

/// The corpus as a file of lines.
fn write_corpus(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("mixed.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    for (line, _) in corpus() {
        f.write_all(&line).unwrap();
        f.write_all(b"\n").unwrap();
    }
    path
}

#[test]
fn file_ingest_dead_letters_bad_lines_and_keeps_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_corpus(dir.path());
    let data = dir.path().join("data");
    let out = overreach(&[
        "ingest",
        "--file",
        input.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(out.contains("10 records: 4 events stored"), "{out}");
    assert!(out.contains("6 dead-lettered"), "{out}");
    let name = input.display().to_string();
    check(&data, |i| format!("{name}:{}", i + 1), &[]);
    // Events land in the partition of their own day, one file per day.
    let mut days: Vec<String> = std::fs::read_dir(data.join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    days.sort();
    assert_eq!(
        days,
        ["date=2017-09-11", "date=2023-01-27", "date=2026-11-30"]
    );
}

#[test]
fn kafka_ingest_dead_letters_bad_messages_with_their_offsets() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let topic = topic("poison");
    cluster.create_topic(&topic, 1, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_corpus(dir.path());
    overreach(&[
        "produce",
        "--brokers",
        &brokers,
        "--topic",
        &topic,
        input.to_str().unwrap(),
    ]);
    // What a file cannot carry: an empty message, a 4 MiB one (the mock
    // cluster drops a partition's oldest records past 5 MiB, so not 10),
    // and a time a century off, produced straight to the topic.
    let mut huge = br#"{"subject": ""#.to_vec();
    huge.resize(4 << 20, b'x');
    let ancient = String::from_utf8(corpus()[0].0.clone())
        .unwrap()
        .replace("2026-11-30", "1925-11-30");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("message.max.bytes", "16000000")
        .create()
        .unwrap();
    for payload in [&b""[..], &huge, ancient.as_bytes()] {
        producer
            .send(BaseRecord::<(), [u8]>::to(&topic).payload(payload))
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let data = dir.path().join("data");
    let out = overreach(&[
        "ingest",
        "--brokers",
        &brokers,
        "--topic",
        &topic,
        "--data",
        data.to_str().unwrap(),
        "--until-caught-up",
        "--dead-letter-topic",
        &format!("{topic}-dead"),
    ]);
    assert!(out.contains("4 events stored"), "{out}");
    let extra = [
        (format!("{topic}/0/10"), "empty"),
        (format!("{topic}/0/11"), "too-large"),
        (format!("{topic}/0/12"), "implausible-timestamp"),
    ];
    check(&data, |i| format!("{topic}/0/{i}"), &extra);
    // The oversized record is kept as its size and first bytes only.
    let dead = read_dead_letters(&DataDir::new(&data)).unwrap();
    let too_large = dead.iter().find(|d| d.reason == "too-large").unwrap();
    assert_eq!(too_large.size, 4 << 20);
    assert!(too_large.payload_truncated);

    // The same dead letters went to the dead-letter topic, keyed by origin.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&format!("{topic}-dead")]).unwrap();
    let mut keys = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while keys.len() < dead.len() && std::time::Instant::now() < deadline {
        if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(200)) {
            let letter: serde_json::Value = serde_json::from_slice(msg.payload().unwrap()).unwrap();
            let key = String::from_utf8(msg.key().unwrap().to_vec()).unwrap();
            assert_eq!(letter["origin"], key.as_str());
            keys.push(key);
        }
    }
    keys.sort();
    let mut origins: Vec<String> = dead.iter().map(|d| d.origin.clone()).collect();
    origins.sort();
    assert_eq!(keys, origins);
    assert!(too_large.payload.len() <= 4096);
    assert!(
        too_large.error.contains("4194304 bytes"),
        "{}",
        too_large.error
    );
}

#[test]
fn a_10_mb_record_is_dead_lettered_as_its_size_and_first_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.jsonl");
    let good = String::from_utf8(corpus()[0].0.clone()).unwrap();
    let mut huge = br#"{"subject": ""#.to_vec();
    huge.resize(10 << 20, b'x');
    let mut bytes = good.clone().into_bytes();
    bytes.push(b'\n');
    bytes.extend_from_slice(&huge);
    bytes.push(b'\n');
    bytes.extend_from_slice(good.replace("\"n-1\"", "\"n-3\"").as_bytes());
    std::fs::write(&input, bytes).unwrap();
    let data = dir.path().join("data");
    let out = overreach(&[
        "ingest",
        "--file",
        input.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(out.contains("3 records: 2 events stored"), "{out}");
    let dead = read_dead_letters(&DataDir::new(&data)).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "too-large");
    assert_eq!(dead[0].origin, format!("{}:2", input.display()));
    assert_eq!(dead[0].size, 10 << 20);
    assert!(dead[0].payload.len() <= 4096 && dead[0].payload_truncated);
    // The dead-letter store holds the first bytes, not a copy of 10 MB.
    let stored: u64 = std::fs::read_dir(data.join("dead-letter"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(stored < 16 << 10, "dead-letter store holds {stored} bytes");
}
