//! The Parquet lakehouse destination: scored records pass through as Arrow (no JSON)
//! into Hive-partitioned Parquet files that DuckDB, Spark, pyarrow or Polars query.
//!
//! # Delivery
//!
//! Each pipeline thread writes one *part* of the input it holds at a time: a file per
//! partition (`date=YYYY-MM-DD/`), named `<hash of uri and etag>-<ordinal of its first
//! row>.parquet`, written under a hidden temporary name. At a resume point of the input
//! the part is *committed* once it reached `target_file_bytes` (and always after the
//! input's last row): every file is closed, fsynced and renamed into place, the
//! partition directories fsynced — and only then may the worker record the resume
//! point or acknowledge the work item ([`Indexer::commit`]).
//!
//! A resumed or retried input starts at its last recorded resume point, which is where
//! a part began; it cuts the same parts at the same rows and so writes the same file
//! names, replacing any file a dead attempt had renamed after that point. A file is
//! never visible half-written, and no row lands in two files. Temporary files of a
//! killed worker stay as `.…​.tmp` names that no `*.parquet` glob matches.
//!
//! Memory per thread is bounded by the row groups being encoded (`max_buffered_bytes`
//! over all open files), not by the input.
//!
//! Alerts have their own data set ([`ParquetAlertSink`]).

mod alerts;
mod config;
mod part;

pub use alerts::ParquetAlertSink;
pub use config::{MAX_S3_FILE_BYTES, ParquetCodec, ParquetSinkConfig};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parquet::file::properties::WriterProperties;
use pf_error::{ErrorClass, PfError, Result};
use pf_traits::{DocBatch, IndexOutcome, Indexer, IndexerFactory};
use pf_types::WorkItem;

use crate::part::Part;

/// The destination's name in logs, errors and the summary.
const NAME: &str = "parquet";

/// Builds one Parquet writer per pipeline thread over one data set directory.
#[derive(Debug)]
pub struct ParquetIndexerFactory {
    shared: Arc<Shared>,
}

/// Uploads a local file to an `s3://` URI, whole (one PutObject): how committed files
/// reach an S3 data set. Supplied by the deployment, so this crate needs no AWS client.
pub type UploadFile = Box<dyn Fn(&str, &Path) -> Result<()> + Send + Sync>;

/// Where committed files go.
pub(crate) enum Publish {
    /// Renamed into place under the staging root, which is the data set's directory.
    Rename,
    /// Uploaded under `prefix` (`s3://bucket/key-prefix`, no trailing slash), then removed
    /// from the staging root.
    Upload { prefix: String, upload: UploadFile },
}

impl std::fmt::Debug for Publish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Publish::Rename => f.write_str("Rename"),
            Publish::Upload { prefix, .. } => write!(f, "Upload({prefix})"),
        }
    }
}

/// What every thread's writer shares.
#[derive(Debug)]
struct Shared {
    /// Where files are written: the data set's directory, or the staging directory of
    /// an S3 data set.
    root: PathBuf,
    publish: Publish,
    config: ParquetSinkConfig,
    properties: WriterProperties,
    /// Distinguishes the temporary files of this process's threads.
    next_writer: AtomicU64,
    files_committed: AtomicU64,
    bytes_committed: AtomicU64,
}

impl ParquetIndexerFactory {
    /// A factory writing under `config.path` (created if missing), or, for an `s3://`
    /// path, staging files under `config.staging_dir` and publishing them with `upload`.
    pub fn build(config: &ParquetSinkConfig, upload: Option<UploadFile>) -> Result<Self> {
        config.validate()?;
        let root = config.staging_root();
        let (publish, key) = match (config.is_s3(), upload) {
            (false, _) => (Publish::Rename, "indexer.parquet.path"),
            (true, Some(upload)) => (
                Publish::Upload {
                    prefix: config.path.trim_end_matches('/').to_owned(),
                    upload,
                },
                "indexer.parquet.staging_dir",
            ),
            (true, None) => {
                return Err(PfError::config(
                    "indexer.parquet.path",
                    "an s3:// data set needs an S3 client, and none was given",
                ));
            }
        };
        std::fs::create_dir_all(&root)
            .map_err(|e| PfError::config(key, format!("cannot create {}: {e}", root.display())))?;
        let properties = WriterProperties::builder()
            .set_compression(config.compression.compression())
            .set_max_row_group_row_count(Some(config.row_group_rows))
            .set_dictionary_enabled(config.dictionary)
            .set_created_by(concat!("paraflow ", env!("CARGO_PKG_VERSION")).into())
            .build();
        Ok(ParquetIndexerFactory {
            shared: Arc::new(Shared {
                root,
                publish,
                config: config.clone(),
                properties,
                next_writer: AtomicU64::new(0),
                files_committed: AtomicU64::new(0),
                bytes_committed: AtomicU64::new(0),
            }),
        })
    }
}

impl IndexerFactory for ParquetIndexerFactory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn create(&self) -> Result<Box<dyn Indexer>> {
        let writer = self.shared.next_writer.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(ParquetIndexer {
            shared: self.shared.clone(),
            tmp_tag: format!("{}-{writer}", std::process::id()),
            part: None,
        }))
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            (
                "parquet_files_committed",
                self.shared.files_committed.load(Ordering::Relaxed),
            ),
            (
                "parquet_bytes_committed",
                self.shared.bytes_committed.load(Ordering::Relaxed),
            ),
        ]
    }
}

/// One pipeline thread's writer: at most one open part, of the input it holds.
struct ParquetIndexer {
    shared: Arc<Shared>,
    /// Makes this thread's temporary names unique on a shared directory.
    tmp_tag: String,
    part: Option<Part>,
}

impl Indexer for ParquetIndexer {
    fn index(&mut self, item: &WorkItem, docs: &[DocBatch]) -> Result<IndexOutcome> {
        let key = item.key();
        if self.part.as_ref().is_some_and(|p| p.item_key() != key) {
            // The earlier input stopped without committing (it failed, or its claim was
            // lost): its rows will be written again by whoever takes it.
            self.part = None;
        }
        let shared = &self.shared;
        let part = self
            .part
            .get_or_insert_with(|| Part::new(key, item, &shared.root, &self.tmp_tag));
        let mut rows = 0;
        for d in docs {
            part.write(d, &shared.config, &shared.properties)?;
            rows += d.num_rows() as u64;
        }
        part.bound_memory(shared.config.max_buffered_bytes)?;
        Ok(IndexOutcome {
            indexed: rows,
            failures: Vec::new(),
        })
    }

    fn begin(&mut self, _item: &WorkItem) {
        self.part = None;
    }

    fn commit(&mut self, item: &WorkItem, last: bool) -> Result<bool> {
        let Some(part) = self.part.take_if(|p| p.item_key() == item.key()) else {
            return Ok(true);
        };
        if !last && part.encoded_bytes() < self.shared.config.target_file_bytes {
            self.part = Some(part);
            return Ok(false);
        }
        let (files, bytes) = part.commit(&self.shared.root, &self.shared.publish)?;
        self.shared
            .files_committed
            .fetch_add(files, Ordering::Relaxed);
        self.shared
            .bytes_committed
            .fetch_add(bytes, Ordering::Relaxed);
        Ok(true)
    }
}

/// A failure of the Parquet writer itself: unwritable data is permanent (retrying the
/// same rows fails the same way); anything else is transient.
fn writer_error(location: &str, e: parquet::errors::ParquetError) -> PfError {
    use parquet::errors::ParquetError;
    let class = match e {
        ParquetError::ArrowError(_) | ParquetError::NYI(_) => ErrorClass::Permanent,
        _ => ErrorClass::Transient,
    };
    PfError::Indexer {
        destination: NAME,
        class,
        message: format!("{location}: {e}"),
    }
}

#[cfg(test)]
mod tests;
