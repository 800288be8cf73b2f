//! The configuration model: one struct per YAML section.
//!
//! Every struct has a default for every field so an empty file is a valid
//! configuration, and rejects unknown keys so a typo fails loudly instead of being
//! silently ignored.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use pf_error::PfError;
use serde::{Deserialize, Serialize};

use crate::mask::{MASK, mask_url_userinfo};

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

/// `worker`: how a worker process runs its pipelines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// `worker.threads`: number of pipeline threads, each processing one file at a time.
    /// Default `null`: one per CPU core (see [`WorkerConfig::thread_count`]).
    pub threads: Option<usize>,
    /// `worker.id`: name recorded in Valkey for the files this worker holds, so stale
    /// items can be traced to a machine. Default `null`: the binary uses
    /// `<hostname>-<pid>`.
    pub id: Option<String>,
    /// `worker.max_attempts`: how many times a file is attempted before it goes to the
    /// queue DLQ. Default `5`.
    pub max_attempts: u32,
    /// `worker.retry_base_ms`: first delay of the exponential backoff (with jitter) after
    /// a transient failure. Default `500`.
    pub retry_base_ms: u64,
    /// `worker.retry_max_ms`: ceiling of the backoff delay. Default `60000`.
    pub retry_max_ms: u64,
    /// `worker.idle_exit_secs`: stop once the queue has stayed empty this long, for
    /// batch runs that should end when the backlog is drained. Default `null`: run until
    /// stopped (or until a stdin/memory queue is closed).
    pub idle_exit_secs: Option<u64>,
    /// `worker.shutdown_grace_secs`: after SIGINT/SIGTERM, how long in-flight files may
    /// finish before they are released back to the queue. Default `30`.
    pub shutdown_grace_secs: u64,
    /// `worker.progress`: whether to draw a progress bar. Default `auto`.
    pub progress: Progress,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            threads: None,
            id: None,
            max_attempts: 5,
            retry_base_ms: 500,
            retry_max_ms: 60_000,
            idle_exit_secs: None,
            shutdown_grace_secs: 30,
            progress: Progress::Auto,
        }
    }
}

impl WorkerConfig {
    /// The effective thread count: `threads`, else the number of CPU cores (1 when the
    /// platform cannot tell).
    pub fn thread_count(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(NonZeroUsize::get)
                .unwrap_or(1)
        })
    }
}

/// `worker.progress`: when to draw a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    /// Only when stderr is a terminal, so logs shipped from servers stay clean.
    #[default]
    Auto,
    /// Always, even when stderr is redirected.
    Always,
    /// Never.
    Never,
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

/// `queue.sqs`: the SQS queue and how it is polled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqsConfig {
    /// `queue.sqs.queue_url`: URL of the work queue. Default `null`; required when
    /// `queue.kind` is `sqs`.
    pub queue_url: Option<String>,
    /// `queue.sqs.dlq_url`: URL of the dead-letter queue for items that failed
    /// permanently or `worker.max_attempts` times. Default `null`: rely on the queue's
    /// own redrive policy.
    pub dlq_url: Option<String>,
    /// `queue.sqs.endpoint`: custom endpoint (LocalStack, moto). Default `null`: AWS.
    pub endpoint: Option<String>,
    /// `queue.sqs.region`: AWS region. Default `null`: the AWS default chain
    /// (`AWS_REGION`, profile).
    pub region: Option<String>,
    /// `queue.sqs.wait_time_secs`: long-poll duration, 0–20 (SQS limit). Default `20`.
    pub wait_time_secs: u32,
    /// `queue.sqs.visibility_timeout_secs`: how long a received item stays hidden from
    /// other workers; the worker extends it at half this interval while it works on the
    /// file. 1–43200 (SQS limit). Default `300`.
    pub visibility_timeout_secs: u32,
    /// `queue.sqs.max_messages`: messages fetched per receive call, 1–10 (SQS limit).
    /// Default `10`.
    pub max_messages: u32,
    /// `queue.sqs.prefetch`: items received ahead of demand and held for the next free
    /// pipeline thread (their visibility is renewed before work starts). Small values
    /// keep items available to other workers. 0–10. Default `1`.
    pub prefetch: u32,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            queue_url: None,
            dlq_url: None,
            endpoint: None,
            region: None,
            wait_time_secs: 20,
            visibility_timeout_secs: 300,
            max_messages: 10,
            prefetch: 1,
        }
    }
}

/// `storage`: how input files are fetched.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `storage.s3`: S3 connection settings for `s3://` URIs.
    pub s3: S3Config,
}

/// `storage.s3`: the S3 connection.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// `storage.s3.endpoint`: custom endpoint (LocalStack, moto, MinIO). Default `null`:
    /// AWS.
    pub endpoint: Option<String>,
    /// `storage.s3.region`: AWS region. Default `null`: the AWS default chain.
    pub region: Option<String>,
    /// `storage.s3.force_path_style`: address buckets as `endpoint/bucket` instead of
    /// `bucket.endpoint`. Default `null`: true when `endpoint` is set, because emulators
    /// rarely resolve virtual-host names (see [`S3Config::path_style`]).
    pub force_path_style: Option<bool>,
}

impl S3Config {
    /// The effective path-style flag: `force_path_style`, else whether an endpoint is set.
    pub fn path_style(&self) -> bool {
        self.force_path_style.unwrap_or(self.endpoint.is_some())
    }
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

/// `reader.parquet`: Parquet reader settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParquetConfig {
    /// `reader.parquet.columns`: read only these columns; the others are never fetched
    /// from storage. Default `null`: every column.
    pub columns: Option<Vec<String>>,
}

/// `reader.ndjson`: NDJSON reader settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NdjsonConfig {
    /// `reader.ndjson.max_line_bytes`: longer lines are record failures, so one runaway
    /// line cannot exhaust memory. Default `1048576` (1 MiB).
    pub max_line_bytes: usize,
    /// `reader.ndjson.infer_rows`: lines sampled to infer the schema when `schema` is
    /// null. Default `1000`.
    pub infer_rows: usize,
    /// `reader.ndjson.schema`: fixed schema, a list of `{name, type, nullable}`.
    /// Default `null`: inferred from the first `infer_rows` lines.
    pub schema: Option<Vec<FieldSpec>>,
}

impl Default for NdjsonConfig {
    fn default() -> Self {
        NdjsonConfig {
            max_line_bytes: 1_048_576,
            infer_rows: 1000,
            schema: None,
        }
    }
}

/// One entry of `reader.ndjson.schema`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// `name`: the JSON key. Required, unique within the schema.
    pub name: String,
    /// `type`: the Arrow type the value is decoded as. Required.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// `nullable`: whether the key may be missing or null. Default `true`.
    #[serde(default = "default_true")]
    pub nullable: bool,
}

fn default_true() -> bool {
    true
}

/// The value type of a [`FieldSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// UTF-8 text.
    String,
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// `true` / `false`.
    Boolean,
    /// Microseconds since the Unix epoch, UTC (RFC 3339 strings are parsed).
    Timestamp,
}

/// `indexer`: the destination of documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexerConfig {
    /// `indexer.destination`: `stats`, `stdout`, `null` or `elasticsearch`. Default
    /// `stats`.
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
}

impl Default for IndexerConfig {
    fn default() -> Self {
        IndexerConfig {
            destination: Destination::Stats,
            bulk_max_docs: 5000,
            bulk_max_bytes: 5 * 1024 * 1024,
            elasticsearch: ElasticsearchConfig::default(),
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
}

/// `indexer.elasticsearch`: the Elasticsearch cluster.
///
/// `Debug` hides `password` and `api_key`, so logging the config cannot leak them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// `indexer.elasticsearch.endpoints`: node URLs (`https://host:9200`), used in
    /// turn. Default `[]`; at least one is required when `destination` is
    /// `elasticsearch`.
    pub endpoints: Vec<String>,
    /// `indexer.elasticsearch.index`: target index (or alias / data stream). Default
    /// `transactions`.
    pub index: String,
    /// `indexer.elasticsearch.username`: basic-auth user. Default `null`.
    pub username: Option<String>,
    /// `indexer.elasticsearch.password`: basic-auth password (secret, masked in
    /// output). Default `null`.
    pub password: Option<String>,
    /// `indexer.elasticsearch.api_key`: base64 API key, sent as `Authorization: ApiKey`
    /// (secret, masked in output); alternative to username/password. Default `null`.
    pub api_key: Option<String>,
    /// `indexer.elasticsearch.ca_cert`: PEM file of the CA that signed the cluster's
    /// certificate. Default `null`: system roots.
    pub ca_cert: Option<PathBuf>,
    /// `indexer.elasticsearch.compression`: gzip bulk bodies; trades CPU for network.
    /// Default `false`.
    pub compression: bool,
    /// `indexer.elasticsearch.timeout_secs`: per-request timeout. Default `30`.
    pub timeout_secs: u64,
    /// `indexer.elasticsearch.max_retries`: retries of a bulk request (or of its
    /// 429-rejected items) before the file fails as transient. Default `5`.
    pub max_retries: u32,
    /// `indexer.elasticsearch.retry_base_ms`: first backoff delay of those retries,
    /// doubled each time, with jitter. Default `200`.
    pub retry_base_ms: u64,
    /// `indexer.elasticsearch.retry_max_ms`: ceiling of that backoff. Default `10000`.
    pub retry_max_ms: u64,
    /// `indexer.elasticsearch.id_field`: column whose value becomes the document `_id`.
    /// Default `null`: a hash of the file's uri and etag plus the row's ordinal, so
    /// re-processing a file overwrites instead of duplicating.
    pub id_field: Option<String>,
    /// `indexer.elasticsearch.op_type`: `index` (create or overwrite) or `create`
    /// (an existing `_id` answers 409, counted as already indexed). Default `index`.
    pub op_type: EsOpType,
    /// `indexer.elasticsearch.index_time_field`: the column a templated `index` name
    /// (`transactions-{yyyy.MM.dd}`; `yyyy MM dd HH`, UTC) takes its date from.
    /// Default `timestamp`.
    pub index_time_field: String,
    /// `indexer.elasticsearch.alerts_index`: index for fraud alerts when
    /// `alerts.destination` is `elasticsearch`. Default `null`: the index name's fixed
    /// part plus `-alerts` (`transactions-alerts`).
    pub alerts_index: Option<String>,
    /// `indexer.elasticsearch.setup`: at start-up, create the index (fixed name) or an
    /// index template (templated name) with `mappings` and `index_settings`; an
    /// existing index is left unchanged. Default `false`.
    pub setup: bool,
    /// `indexer.elasticsearch.mappings`: the `mappings` object used by `setup`.
    /// Default `null`: dynamic mapping.
    pub mappings: Option<serde_norway::Value>,
    /// `indexer.elasticsearch.index_settings`: the `settings` object used by `setup`
    /// (shards, replicas, refresh interval). Default `null`.
    pub index_settings: Option<serde_norway::Value>,
}

/// `indexer.elasticsearch.op_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EsOpType {
    /// Create or overwrite the document with the same `_id`.
    #[default]
    Index,
    /// Create only; an existing `_id` counts as already indexed.
    Create,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        ElasticsearchConfig {
            endpoints: Vec::new(),
            index: "transactions".to_owned(),
            username: None,
            password: None,
            api_key: None,
            ca_cert: None,
            compression: false,
            timeout_secs: 30,
            max_retries: 5,
            retry_base_ms: 200,
            retry_max_ms: 10_000,
            id_field: None,
            op_type: EsOpType::Index,
            index_time_field: "timestamp".to_owned(),
            alerts_index: None,
            setup: false,
            mappings: None,
            index_settings: None,
        }
    }
}

impl fmt::Debug for ElasticsearchConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoints: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| mask_url_userinfo(e))
            .collect();
        f.debug_struct("ElasticsearchConfig")
            .field("endpoints", &endpoints)
            .field("index", &self.index)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| MASK))
            .field("api_key", &self.api_key.as_ref().map(|_| MASK))
            .field("ca_cert", &self.ca_cert)
            .field("compression", &self.compression)
            .field("timeout_secs", &self.timeout_secs)
            .field("max_retries", &self.max_retries)
            .field("retry_base_ms", &self.retry_base_ms)
            .field("retry_max_ms", &self.retry_max_ms)
            .field("id_field", &self.id_field)
            .field("op_type", &self.op_type)
            .field("index_time_field", &self.index_time_field)
            .field("alerts_index", &self.alerts_index)
            .field("setup", &self.setup)
            .field("mappings", &self.mappings)
            .field("index_settings", &self.index_settings)
            .finish()
    }
}

/// `record_dlq`: the record-level dead-letter files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordDlqConfig {
    /// `record_dlq.dir`: directory for the NDJSON files of failed records (source uri,
    /// row, error, original record). Created when needed. Default `./dlq`.
    pub dir: PathBuf,
    /// `record_dlq.s3_prefix`: `s3://bucket/prefix/` to upload the failed records to
    /// instead (one NDJSON object per flush, named by worker process and sequence), so a
    /// fleet's record DLQ lands in one place. Default `null`: files in `dir`.
    pub s3_prefix: Option<String>,
}

impl Default for RecordDlqConfig {
    fn default() -> Self {
        RecordDlqConfig {
            s3_prefix: None,
            dir: PathBuf::from("./dlq"),
        }
    }
}

/// `coordinator`: the metadata store.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// `coordinator.valkey`: the Valkey connection.
    pub valkey: ValkeyConfig,
}

/// `coordinator.valkey`: the Valkey server holding status, attempts and checkpoints.
///
/// `Debug` masks the userinfo of `url`, which may carry a password.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValkeyConfig {
    /// `coordinator.valkey.url`: `redis://[user:password@]host:port[/db]` (also
    /// `rediss://` for TLS, `valkey://`). Its userinfo is masked in output. Default
    /// `null`: in-memory metadata, which only suits a single worker process.
    pub url: Option<String>,
    /// `coordinator.valkey.password`: used when the URL carries none; masked in output.
    /// Default `null` (the binaries then read `VALKEY_PASSWORD` from the environment).
    pub password: Option<String>,
    /// `coordinator.valkey.key_prefix`: prefix of every key, so deployments can share a
    /// server. Default `pf:`.
    pub key_prefix: String,
    /// `coordinator.valkey.ttl_secs`: keys expire this long after their last update, so
    /// old jobs go away. Default 604800 (7 days).
    pub ttl_secs: u64,
    /// `coordinator.valkey.stale_after_secs`: a holder without a heartbeat for this long
    /// is presumed dead; its item is listed as stale and may be claimed by another
    /// worker. Keep it well above the heartbeat period (half the queue's visibility
    /// timeout, else 10 s). Default 120.
    pub stale_after_secs: u64,
    /// `coordinator.valkey.outage_limit_secs`: how long a metadata call waits for an
    /// unreachable Valkey (reconnecting with backoff) before it fails. Default 600.
    pub outage_limit_secs: u64,
    /// `coordinator.valkey.timeout_ms`: connect and per-command timeout. Default 10000.
    pub timeout_ms: u64,
    /// `coordinator.valkey.windows`: keep fraud-rule windows in Valkey too, so every
    /// worker sees every worker's events. Default `true`.
    pub windows: bool,
    /// `coordinator.valkey.window_lateness_secs`: how far (in event time) behind the
    /// newest event of its key an event may arrive and still count. Workers reading
    /// different parts of time-ordered data at the same time need it to cover how far
    /// apart in event time they are. Default 300.
    pub window_lateness_secs: u64,
}

impl Default for ValkeyConfig {
    fn default() -> Self {
        ValkeyConfig {
            url: None,
            password: None,
            key_prefix: "pf:".to_owned(),
            ttl_secs: 7 * 24 * 3600,
            stale_after_secs: 120,
            outage_limit_secs: 600,
            timeout_ms: 10_000,
            windows: true,
            window_lateness_secs: 300,
        }
    }
}

impl fmt::Debug for ValkeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValkeyConfig")
            .field("url", &self.url.as_deref().map(mask_url_userinfo))
            .field("password", &self.password.as_ref().map(|_| MASK))
            .field("key_prefix", &self.key_prefix)
            .field("ttl_secs", &self.ttl_secs)
            .field("stale_after_secs", &self.stale_after_secs)
            .field("outage_limit_secs", &self.outage_limit_secs)
            .field("timeout_ms", &self.timeout_ms)
            .field("windows", &self.windows)
            .field("window_lateness_secs", &self.window_lateness_secs)
            .finish()
    }
}

/// `metrics`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `metrics.addr`: `ip:port` to serve `/metrics` on, e.g. `127.0.0.1:9898`.
    /// Default `null`: no endpoint.
    pub addr: Option<String>,
}

impl MetricsConfig {
    /// The parsed `addr`; an error names `metrics.addr` when it is not `ip:port`.
    pub fn socket_addr(&self) -> Result<Option<SocketAddr>, PfError> {
        match &self.addr {
            None => Ok(None),
            Some(addr) => addr.trim().parse().map(Some).map_err(|e| {
                PfError::config(
                    "metrics.addr",
                    format!(
                        "`{addr}` is not a socket address ({e}); expected ip:port such as 127.0.0.1:9898"
                    ),
                )
            }),
        }
    }
}

/// `transform`: what every record passes through between reading and indexing.
///
/// Relative paths are resolved against the directory of the configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformConfig {
    /// `transform.script`: a Rhai script defining `fn transform(record)`, which returns
    /// the record (possibly changed) or `()` to drop it. Default `null`: records pass
    /// through unchanged.
    pub script: Option<PathBuf>,
    /// `transform.rules`: fraud rules YAML (see `config/rules/fraud.yaml`). Default
    /// `null`: no fraud scoring.
    pub rules: Option<PathBuf>,
    /// `transform.max_operations`: Rhai operations allowed per record before the record
    /// fails (stops runaway loops). Default `100000`.
    pub max_operations: u64,
    /// `transform.watch`: reload rules and tables when their files change (SIGHUP always
    /// reloads). Default `false`.
    pub watch: bool,
    /// `transform.tables`: enrichment tables, loaded once and shared by every thread.
    pub tables: Vec<TableSpec>,
}

impl Default for TransformConfig {
    fn default() -> Self {
        TransformConfig {
            script: None,
            rules: None,
            max_operations: 100_000,
            watch: false,
            tables: Vec::new(),
        }
    }
}

/// One entry of `transform.tables`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// `name`: how scripts and rules refer to it (`lookup("users", account_id)`).
    pub name: String,
    /// `kind`: `cidr` (longest-prefix match on IPs) or `exact`.
    pub kind: TableKindSpec,
    /// `path`: CSV, NDJSON or Parquet file.
    pub path: PathBuf,
    /// `format`: `csv`, `ndjson` or `parquet`; inferred from the extension when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TableFormatSpec>,
    /// `key`: the key column (a CIDR prefix or IP for `cidr` tables).
    pub key: String,
    /// `values`: value columns to keep; empty keeps all but the key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// `transform.tables[].kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKindSpec {
    /// Longest-prefix match over IPv4/IPv6 prefixes.
    Cidr,
    /// Exact key match.
    Exact,
}

/// `transform.tables[].format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFormatSpec {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet.
    Parquet,
}

/// `alerts`: the destination of fraud alerts (one NDJSON line per alert).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// `alerts.destination`: `none`, `stdout`, `file` or `elasticsearch`. Default `none`.
    pub destination: AlertDestination,
    /// `alerts.path`: the file for `destination: file`. Default `./alerts.ndjson`.
    pub path: PathBuf,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            destination: AlertDestination::None,
            path: PathBuf::from("./alerts.ndjson"),
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
}
