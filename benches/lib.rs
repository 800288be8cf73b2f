//! Fixtures shared by the benchmarks: cached generated data sets and a single-thread
//! pipeline over the embedded components.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pf_datagen::{GenOptions, generate};
use pf_dlq::FileRecordDlq;
use pf_file_processor::{FileProcessor, FormatReaders, SharedParts};
use pf_indexer_stdout::{AlertTarget, LocalDestination, LocalIndexerFactory, NdjsonAlertSink};
use pf_metrics::Metrics;
use pf_reader_ndjson::NdjsonConfig;
use pf_reader_parquet::ParquetConfig;
use pf_storage::ObjectSources;
use pf_traits::{BulkLimits, IdentityTransform, IndexerFactory, TransformFactory};
use pf_types::{Compression, FileFormat};

/// A generated data set, cached across benchmark runs under the system temp dir.
pub fn dataset(rows: u64, files: usize, format: FileFormat, compression: Compression) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "paraflow-bench/{rows}-{files}-{}-{}",
        format.as_str(),
        compression.as_str()
    ));
    let done = dir.join(".complete");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        generate(&GenOptions {
            files,
            format,
            compression,
            seed: 1,
            ..GenOptions::new(dir.clone(), rows)
        })
        .expect("generate benchmark data");
        std::fs::write(&done, b"").expect("mark data set complete");
    }
    dir
}

/// The data files of a data set, in name order.
pub fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("data dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Shared parts of the embedded pipeline (local source, both readers, stats counters).
pub fn shared_parts(dlq_dir: &Path) -> SharedParts {
    SharedParts {
        source: Arc::new(ObjectSources::local_only()),
        readers: FormatReaders::default()
            .with(
                FileFormat::Parquet,
                Arc::new(ParquetConfig::default().build(65_536)),
            )
            .with(
                FileFormat::Ndjson,
                Arc::new(NdjsonConfig::default().build(65_536)),
            ),
        record_dlq: Arc::new(FileRecordDlq::new(dlq_dir)),
        alerts: Arc::new(NdjsonAlertSink::new(AlertTarget::Discard)),
        metrics: Metrics::new(),
        chunk_limits: BulkLimits::default(),
    }
}

/// A single-thread processor: reader → identity transform → stats destination.
pub fn stats_processor(parts: SharedParts) -> FileProcessor {
    let transform = IdentityTransform.create().expect("identity transform");
    let indexer = LocalIndexerFactory::new(LocalDestination::Stats)
        .create()
        .expect("stats indexer");
    FileProcessor::new(parts, transform, indexer)
}

/// Peak resident memory of this process in MiB (Linux).
pub fn peak_rss_mb() -> f64 {
    pf_worker::peak_rss_mb().unwrap_or(f64::NAN)
}
