//! Ingest from NDJSON files, gzip files or standard input (`-`).
//! Each line is one record; its origin is `path:line`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use overreach_model::DataDir;
use tracing::info;

use crate::decode::{decode, DecodeOptions};
use crate::sink::{FlushPolicy, Sink, Summary};
use crate::{IngestError, Result};

/// What to ingest from files and where to put it.
#[derive(Debug, Clone)]
pub struct FileIngest {
    pub paths: Vec<PathBuf>,
    pub data: DataDir,
    pub decode: DecodeOptions,
    pub flush: FlushPolicy,
}

/// Opens a path as a line reader; gzip is recognised by its magic bytes.
pub fn open_lines(path: &Path) -> io::Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(path)?)
    };
    let mut reader = BufReader::new(raw);
    let is_gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if is_gzip {
        Box::new(BufReader::new(MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    })
}

/// Calls `f(line_number, bytes)` for every line, without its line ending.
/// Lines are bytes, so a line of invalid UTF-8 is a record to dead-letter,
/// not a read error.
pub fn for_each_line(path: &Path, mut f: impl FnMut(i64, &[u8]) -> Result<()>) -> Result<()> {
    let input_err = |source| IngestError::Input {
        path: path.to_owned(),
        source,
    };
    let mut reader = open_lines(path).map_err(input_err)?;
    let mut buf = Vec::new();
    let mut line_no = 0i64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(input_err)? == 0 {
            return Ok(());
        }
        line_no += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        f(line_no, &buf)?;
    }
}

/// Ingests every line of every path. Blank lines are skipped.
pub fn run(job: &FileIngest) -> Result<Summary> {
    let mut sink = Sink::new(job.data.clone(), job.flush.clone());
    for path in &job.paths {
        let name = if path == Path::new("-") {
            "stdin".to_owned()
        } else {
            path.display().to_string()
        };
        info!(file = %name, "ingesting file");
        for_each_line(path, |line, bytes| {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            let origin = format!("{name}:{line}");
            let result = decode(bytes, &origin, &job.decode);
            sink.push(result, bytes, &name, line, &origin)?;
            Ok(())
        })?;
    }
    sink.flush()?;
    Ok(sink.into_summary())
}
