//! Writing and reading the Parquet tables of a data directory.
//!
//! Rows go in and out through serde and arrow-json, so every table is
//! described once, by its Arrow schema, and Parquet readers of any kind
//! (DuckDB, pyarrow, Spark) see ordinary typed columns.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::json::{ArrayWriter, ReaderBuilder};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub type Result<T, E = TableError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Parquet { path: PathBuf, source: ParquetError },
    #[error("{path}: converting rows: {source}")]
    Arrow { path: PathBuf, source: ArrowError },
    #[error("{path}: reading rows: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Turns serializable rows into one record batch of `schema`.
pub fn rows_to_batch<T: Serialize>(
    schema: &SchemaRef,
    rows: &[T],
) -> Result<RecordBatch, ArrowError> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.len().max(1))
        .build_decoder()?;
    decoder.serialize(rows)?;
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

/// Writes `rows` as a Parquet file at `dest`, atomically: the file is
/// written and synced under `tmp_dir`, then renamed into place, and the
/// destination directory is synced. Key-value metadata goes into the
/// Parquet footer.
pub fn write_rows_atomic<T: Serialize>(
    dest: &Path,
    tmp_dir: &Path,
    schema: &SchemaRef,
    rows: &[T],
    metadata: &[(String, String)],
) -> Result<u64> {
    let batch = rows_to_batch(schema, rows).map_err(|source| TableError::Arrow {
        path: dest.to_owned(),
        source,
    })?;
    write_batch_atomic(dest, tmp_dir, &batch, metadata)
}

/// Like [`write_rows_atomic`] for a ready batch. Returns the bytes written.
pub fn write_batch_atomic(
    dest: &Path,
    tmp_dir: &Path,
    batch: &RecordBatch,
    metadata: &[(String, String)],
) -> Result<u64> {
    publish(dest, tmp_dir, |tmp| {
        let parquet_err = |source| TableError::Parquet {
            path: tmp.to_owned(),
            source,
        };
        let file = File::create(tmp).map_err(io_err(tmp))?;
        let kv = metadata
            .iter()
            .map(|(k, v)| parquet::file::metadata::KeyValue::new(k.clone(), v.clone()))
            .collect::<Vec<_>>();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_key_value_metadata((!kv.is_empty()).then_some(kv))
            .build();
        let mut writer =
            ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(parquet_err)?;
        writer.write(batch).map_err(parquet_err)?;
        writer.into_inner().map_err(parquet_err)
    })
}

/// Writes a small text file atomically (same protocol as Parquet files).
pub fn write_text_atomic(dest: &Path, tmp_dir: &Path, text: &str) -> Result<()> {
    publish(dest, tmp_dir, |tmp| {
        let mut file = File::create(tmp).map_err(io_err(tmp))?;
        file.write_all(text.as_bytes()).map_err(io_err(tmp))?;
        Ok(file)
    })
    .map(|_| ())
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TableError {
    let path = path.to_owned();
    move |source| TableError::Io { path, source }
}

/// The one way a file appears in a data directory: `write` fills a
/// temporary file under `tmp_dir`, which is synced, renamed to `dest`, and
/// the destination directory synced. Returns the file's size.
fn publish(dest: &Path, tmp_dir: &Path, write: impl FnOnce(&Path) -> Result<File>) -> Result<u64> {
    fs::create_dir_all(tmp_dir).map_err(io_err(tmp_dir))?;
    let parent = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let tmp = tmp_name(tmp_dir, dest);
    let file = write(&tmp)?;
    file.sync_all().map_err(io_err(&tmp))?;
    let bytes = file.metadata().map_err(io_err(&tmp))?.len();
    drop(file);
    fs::rename(&tmp, dest).map_err(io_err(dest))?;
    sync_dir(parent).map_err(io_err(parent))?;
    Ok(bytes)
}

/// A temporary name no other writer of this process or another uses.
fn tmp_name(tmp_dir: &Path, dest: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tmp_dir.join(format!(
        "{file_name}.{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The value of one key of a Parquet file's footer metadata.
pub fn footer_value(path: &Path, key: &str) -> Result<Option<String>> {
    let file = File::open(path).map_err(io_err(path))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| TableError::Parquet {
            path: path.to_owned(),
            source,
        })?;
    Ok(builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == key))
        .and_then(|e| e.value.clone()))
}

/// Reads every row of one Parquet file into `T`.
pub fn read_rows<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let file = File::open(path).map_err(|source| TableError::Io {
        path: path.to_owned(),
        source,
    })?;
    let parquet_err = |source| TableError::Parquet {
        path: path.to_owned(),
        source,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(parquet_err)?
        .build()
        .map_err(parquet_err)?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|source| TableError::Arrow {
            path: path.to_owned(),
            source,
        })?;
        rows.extend(batch_to_rows(path, &batch)?);
    }
    Ok(rows)
}

fn batch_to_rows<T: DeserializeOwned>(path: &Path, batch: &RecordBatch) -> Result<Vec<T>> {
    let arrow_err = |source| TableError::Arrow {
        path: path.to_owned(),
        source,
    };
    let mut writer = ArrayWriter::new(Vec::new());
    writer.write(batch).map_err(arrow_err)?;
    writer.finish().map_err(arrow_err)?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|source| TableError::Json {
        path: path.to_owned(),
        source,
    })
}
