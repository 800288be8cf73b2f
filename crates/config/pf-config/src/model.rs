//! The configuration model: one struct per YAML section.
//!
//! Every struct has a default for every field so an empty file is a valid
//! configuration, and rejects unknown keys so a typo fails loudly instead of being
//! silently ignored.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use pf_coordinator::ValkeyConfig;
pub use pf_dlq::RecordDlqConfig;
pub use pf_indexer_es::ElasticsearchConfig;
pub use pf_indexer_flight::FlightSinkConfig;
pub use pf_indexer_parquet::ParquetSinkConfig;
pub use pf_metrics::MetricsConfig;
pub use pf_queue_sqs::SqsConfig;
pub use pf_reader_ndjson::NdjsonConfig;
pub use pf_reader_parquet::ParquetConfig;
pub use pf_storage::LocalConfig;
pub use pf_storage_s3::S3Config;
pub use pf_transform::TransformConfig;
pub use pf_worker::WorkerConfig;

/// The whole Paraflow configuration, as read from `worker.yaml` or `demo.yaml`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `worker`: thread pool, retries, shutdown and progress display.
    pub worker: WorkerConfig,
    /// `queue`: where work items come from.
    pub queue: QueueConfig,
    /// `storage`: how files are fetched (S3 connection settings).
    pub storage: StorageConfig,
    /// `reader`: batch size and per-format reader settings.
    pub reader: ReaderConfig,
    /// `indexer`: where documents go and how bulk requests are sized.
    pub indexer: IndexerConfig,
    /// `record_dlq`: where records that fail on their own are written.
    pub record_dlq: RecordDlqConfig,
    /// `coordinator`: where batch/file metadata is kept.
    pub coordinator: CoordinatorConfig,
    /// `metrics`: the Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// `transform`: the Rhai script, fraud rules and enrichment tables.
    pub transform: TransformConfig,
    /// `alerts`: where fraud alerts go.
    pub alerts: AlertsConfig,
}

/// `queue`: the source of work items.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// `queue.kind`: `stdin`, `memory` or `sqs`. Default `stdin`.
    pub kind: QueueKind,
    /// `queue.sqs`: SQS settings, used when `kind` is `sqs`.
    pub sqs: SqsConfig,
}

/// `queue.kind`: where work items come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    /// One JSON work item per line on standard input (`pf-discoverer … | pf-worker`).
    #[default]
    Stdin,
    /// An in-process queue, filled by the same process (demo, tests).
    Memory,
    /// An SQS queue shared by any number of workers.
    Sqs,
}

/// `storage`: how input files are fetched.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `storage.local`: which local paths work items may name.
    pub local: LocalConfig,
    /// `storage.s3`: S3 connection settings for `s3://` URIs.
    pub s3: S3Config,
}

/// `reader`: how files are decoded into Arrow batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReaderConfig {
    /// `reader.batch_size`: rows per Arrow batch; bounds memory per thread. Default
    /// `65536`.
    pub batch_size: usize,
    /// `reader.parquet`: Parquet reader settings.
    pub parquet: ParquetConfig,
    /// `reader.ndjson`: NDJSON reader settings.
    pub ndjson: NdjsonConfig,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            batch_size: 65_536,
            parquet: ParquetConfig::default(),
            ndjson: NdjsonConfig::default(),
        }
    }
}

/// `indexer`: the destination of documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexerConfig {
    /// `indexer.destination`: `stats`, `stdout`, `null`, `elasticsearch`, `parquet` or
    /// `flight`. Default `stats`.
    pub destination: Destination,
    /// `indexer.bulk_max_docs`: a bulk request is sent once it holds this many
    /// documents. Default `5000`.
    pub bulk_max_docs: usize,
    /// `indexer.bulk_max_bytes`: … or once its body reaches this many bytes. Default
    /// `5242880` (5 MiB).
    pub bulk_max_bytes: usize,
    /// `indexer.elasticsearch`: Elasticsearch settings, used when `destination` is
    /// `elasticsearch`.
    pub elasticsearch: ElasticsearchConfig,
    /// `indexer.parquet`: Parquet lakehouse settings, used when `destination` is
    /// `parquet`.
    pub parquet: ParquetSinkConfig,
    /// `indexer.flight`: Arrow Flight settings, used when `destination` is `flight`.
    pub flight: FlightSinkConfig,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        IndexerConfig {
            destination: Destination::Stats,
            bulk_max_docs: 5000,
            bulk_max_bytes: 5 * 1024 * 1024,
            elasticsearch: ElasticsearchConfig::default(),
            parquet: ParquetSinkConfig::default(),
            flight: FlightSinkConfig::default(),
        }
    }
}

/// `indexer.destination`: where documents go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// Count documents and bytes only; measures the pipeline without a sink.
    #[default]
    Stats,
    /// NDJSON documents on standard output.
    Stdout,
    /// Discard documents.
    Null,
    /// Elasticsearch bulk API.
    Elasticsearch,
    /// Hive-partitioned Parquet files in `indexer.parquet.path`.
    Parquet,
    /// Arrow record batches to a Flight server (`DoPut`).
    Flight,
}

/// `coordinator`: the metadata store.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// `coordinator.valkey`: the Valkey connection.
    pub valkey: ValkeyConfig,
}

/// `alerts`: the destination of fraud alerts (one NDJSON line per alert).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// `alerts.destination`: `none`, `stdout`, `file`, `elasticsearch` or `parquet`.
    /// Default `none`.
    pub destination: AlertDestination,
    /// `alerts.path`: the file for `destination: file`. Default `./alerts.ndjson`.
    pub path: PathBuf,
    /// `alerts.dir`: the data set directory for `destination: parquet` (partitioned
    /// `date=YYYY-MM-DD/` by the day alerts were written; codec
    /// `indexer.parquet.compression`). Default `./alerts`.
    pub dir: PathBuf,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            destination: AlertDestination::None,
            path: PathBuf::from("./alerts.ndjson"),
            dir: PathBuf::from("./alerts"),
        }
    }
}

/// `alerts.destination`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertDestination {
    /// Alerts are counted but not written.
    #[default]
    None,
    /// NDJSON on standard output.
    Stdout,
    /// NDJSON appended to `alerts.path`.
    File,
    /// The Elasticsearch index `indexer.elasticsearch.alerts_index` (needs
    /// `indexer.destination: elasticsearch`).
    Elasticsearch,
    /// Parquet files under `alerts.dir`.
    Parquet,
}
