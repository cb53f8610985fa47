//! Helpers shared by the end-to-end tests: run the real binary, read
//! Parquet with an independent reader, talk HTTP to a real server.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_overreach")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample() -> PathBuf {
    repo().join("tests/data/k8s-audit-perfspec/audit-logs.v1.jsonl.gz")
}

/// Runs `overreach ARGS`, fails the test with its output unless it
/// succeeds, and returns its standard output.
pub fn overreach(args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .env("OVERREACH_LOG", "warn")
        .output()
        .expect("run the overreach binary");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "overreach {args:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Row count and distinct `event_id` count of the events table, read by
/// pyarrow (PyPI), an implementation that shares no code with ours.
///
/// A table may hold partition directories and no file yet: an ingester
/// killed between creating a day's directory and renaming its first file
/// into it leaves one. pyarrow then infers an empty schema, so a table
/// without files counts as empty rather than as unreadable.
pub fn pyarrow_counts(data: &Path) -> (u64, u64) {
    let script = "import sys, pyarrow.dataset as ds\n\
        d = ds.dataset(sys.argv[1], format='parquet', partitioning='hive')\n\
        if not d.files:\n    print(0, 0); sys.exit(0)\n\
        t = d.to_table()\n\
        print(t.num_rows, len(set(t.column('event_id').to_pylist())))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(data.join("events"))
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "pyarrow could not read the events table: {}\n(install it with `python3 -m pip install pyarrow`, or run `bash scripts/test.sh`, which does)",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .split_whitespace()
        .map(|n| n.parse::<u64>().expect("a number"));
    (parts.next().unwrap(), parts.next().unwrap())
}

/// Distinct auditIDs in an audit log, read independently of the decoder.
pub fn distinct_audit_ids(path: &Path) -> usize {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["auditID"].as_str().unwrap().to_owned()
        })
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// `overreach serve` on a free port, killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn start(data: &Path) -> Server {
        let mut child = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("OVERREACH_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start overreach serve");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Server { child, base }
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let resp = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A topic name no other test uses.
pub fn topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Loads a page in headless Chromium and returns the DOM it rendered;
/// a screenshot is left at `screenshot`.
pub fn chromium_dom(url: &str, screenshot: &Path) -> String {
    let chromium = std::env::var("OVERREACH_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = tempfile::tempdir().unwrap();
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    let run = |extra: &[String]| {
        Command::new(&chromium)
            .args(flags)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {chromium}: {e}\n(install Debian's chromium: `apt-get install chromium`, \
                     or run `bash scripts/test.sh`, which does)"
                )
            })
    };
    let shot = run(&[
        format!("--screenshot={}", screenshot.display()),
        "--window-size=1280,1600".into(),
    ]);
    assert!(
        shot.status.success(),
        "chromium screenshot failed: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let dom = run(&["--dump-dom".into()]);
    assert!(
        dom.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

/// `n` native decision records with unique ids, starting at `first`.
pub fn write_records(path: &Path, first: u64, n: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in first..first + n {
        let (m, s, ms) = ((i / 600) % 60, (i / 10) % 60, (i % 10) * 100);
        writeln!(
            out,
            r#"{{"id":"r-{i}","time":"2026-11-30T{:02}:{m:02}:{s:02}.{ms:03}Z","subject":"spiffe://prod.example.org/ns/ns{}/sa/app{}","action":"GET","resource":"/v1/items/{i}","decision":"allow"}}"#,
            (i / 36_000) % 24,
            i % 7,
            i % 13
        )
        .unwrap();
    }
}

/// SIGTERM: the ingester flushes, commits and must exit 0.
pub fn terminate(child: Child) -> std::process::Output {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ingest did not exit cleanly on SIGTERM: {}",
        out.status
    );
    out
}
