use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use pf_accumulator::ChunkLimits;
use pf_aws::AwsSettings;
use pf_config::{
    AlertDestination, Config, Destination, EsOpType, FieldType, Progress, TableFormatSpec,
    TableKindSpec,
};
use pf_dlq::{FileRecordDlq, ObjectRecordDlq};
use pf_enrichment::{TableConfig, TableFormat, TableKind};
use pf_error::{PfError, Result};
use pf_file_processor::SharedParts;
use pf_indexer_es::{EsAuth, EsIndexerFactory, EsSettings, IndexName, IndexSetup, OpType};
use pf_indexer_stdout::{AlertTarget, LocalDestination, LocalIndexerFactory, NdjsonAlertSink};
use pf_metrics::Metrics;
use pf_reader_ndjson::{NdjsonReader, NdjsonReaderOptions};
use pf_reader_parquet::{ParquetReader, ParquetReaderOptions};
use pf_storage::ObjectSources;
use pf_storage_s3::{OnDemandS3, S3Location};
use pf_traits::{AlertSink, IndexerFactory, MetadataStore, RecordDlq, WorkQueue};
use pf_transform::{RuleTally, ScriptLimits, StageSource, TransformStage};
use pf_types::RunSummary;

use crate::coordination::{metadata_store, window_store};
use crate::{Backoff, ProgressMode, Worker, WorkerSettings, default_worker_id};

/// A worker assembled from a validated [`Config`], with handles the CLI reports from.
pub struct Deployment {
    /// The worker, ready to [`run`](Worker::run).
    pub worker: Worker,
    /// Live counters (for `/metrics` and the progress display).
    pub metrics: Arc<Metrics>,
    /// The record DLQ file sink.
    pub record_dlq: Arc<dyn RecordDlq>,
    /// The fraud alert sink.
    pub alerts: Arc<NdjsonAlertSink>,
    /// The destination's name, for the summary.
    pub destination: &'static str,
    /// How to show progress.
    pub progress: ProgressMode,
    /// Per-rule counts, when fraud rules are configured.
    pub rule_tally: Option<Arc<RuleTally>>,
    /// The transform stage, for reloading its script, rules and tables.
    pub transform: Arc<TransformStage>,
    /// Reload the transform when its files change (`transform.watch`).
    pub watch: bool,
}

impl Deployment {
    /// Adds the fraud-rule figures (by rule, by severity, precision and recall against
    /// ground-truth labels) to a finished run's summary.
    pub fn add_rule_figures(&self, summary: &mut RunSummary) {
        let Some(tally) = &self.rule_tally else {
            return;
        };
        for (rule, (severity, counts)) in tally.snapshot() {
            summary.fraud_by_rule.insert(rule.clone(), counts.fired);
            *summary
                .fraud_by_severity
                .entry(severity.as_str().to_owned())
                .or_default() += counts.fired;
            if let Some(r) = counts.recall() {
                summary.recall_by_rule.insert(rule.clone(), r);
            }
            if let Some(p) = counts.precision() {
                summary.precision_by_rule.insert(rule, p);
            }
        }
    }
}

/// Builds every component the config names around `queue`.
///
/// With `indexer.elasticsearch.setup` the index (or template) is created here, before
/// any file is taken.
pub fn deploy(config: &Config, queue: Arc<dyn WorkQueue>) -> Result<Deployment> {
    config.validate()?;
    let metrics = Metrics::new();
    // One S3 client for input objects and the record DLQ; it connects on first use, so
    // local runs never start one.
    let s3 = &config.storage.s3;
    let s3 = Arc::new(OnDemandS3::new(
        AwsSettings::new(s3.endpoint.clone(), s3.region.clone()),
        s3.path_style(),
    ));
    let record_dlq = record_dlq(config, s3.clone())?;
    let elasticsearch = match config.indexer.destination {
        Destination::Elasticsearch => Some(Arc::new(elasticsearch_indexer(config)?)),
        _ => None,
    };
    let alerts = Arc::new(NdjsonAlertSink::new(match config.alerts.destination {
        AlertDestination::None | AlertDestination::Elasticsearch => AlertTarget::Discard,
        AlertDestination::Stdout => AlertTarget::Stdout,
        AlertDestination::File => AlertTarget::File(config.alerts.path.clone()),
    }));
    let alert_sink: Arc<dyn AlertSink> = match (&elasticsearch, config.alerts.destination) {
        (Some(es), AlertDestination::Elasticsearch) => Arc::new(es.alert_sink()),
        _ => alerts.clone(),
    };
    let r = &config.reader;
    let parts = SharedParts {
        source: Arc::new(ObjectSources::local_only().with_s3(s3)),
        parquet: Arc::new(ParquetReader::new(ParquetReaderOptions {
            batch_size: r.batch_size,
            columns: r.parquet.columns.clone(),
        })),
        ndjson: Arc::new(NdjsonReader::new(NdjsonReaderOptions {
            batch_size: r.batch_size,
            schema: ndjson_schema(config),
            infer_rows: r.ndjson.infer_rows,
            max_line_bytes: r.ndjson.max_line_bytes,
        })),
        record_dlq: record_dlq.clone(),
        alerts: alert_sink,
        metrics: metrics.clone(),
        chunk_limits: ChunkLimits {
            max_docs: config.indexer.bulk_max_docs,
            max_bytes: config.indexer.bulk_max_bytes,
        },
    };
    let indexers: Arc<dyn IndexerFactory> = match config.indexer.destination {
        Destination::Stats => Arc::new(LocalIndexerFactory::new(LocalDestination::Stats)),
        Destination::Stdout => Arc::new(LocalIndexerFactory::new(LocalDestination::Stdout)),
        Destination::Null => Arc::new(LocalIndexerFactory::new(LocalDestination::Null)),
        Destination::Elasticsearch => elasticsearch.ok_or_else(|| {
            PfError::config(
                "indexer.destination",
                "the Elasticsearch indexer was not built",
            )
        })?,
    };
    let metadata: Arc<dyn MetadataStore> = metadata_store(&config.coordinator.valkey)?;
    let w = &config.worker;
    let settings = WorkerSettings {
        threads: w.thread_count(),
        worker_id: w.id.clone().unwrap_or_else(default_worker_id),
        max_attempts: w.max_attempts,
        retry: Backoff {
            base: Duration::from_millis(w.retry_base_ms),
            max: Duration::from_millis(w.retry_max_ms),
        },
        idle_exit: w.idle_exit_secs.map(Duration::from_secs),
        shutdown_grace: Duration::from_secs(w.shutdown_grace_secs),
        // An item held by a live worker is looked at again once its holder could have
        // gone stale, so a crashed holder's work is taken over promptly.
        held_elsewhere_delay: Duration::from_secs(
            config.coordinator.valkey.stale_after_secs.clamp(1, 30),
        ),
        // Several heartbeats per staleness period, so a live holder never looks stale
        // (queues with a visibility timeout beat at half of it instead).
        heartbeat_interval: Duration::from_millis(
            (config.coordinator.valkey.stale_after_secs * 1000 / 4).clamp(100, 10_000),
        ),
        ..WorkerSettings::default()
    };
    let windows = window_store(&config.coordinator.valkey)?;
    let stage = Arc::new(transform_stage(config, windows)?);
    let rule_tally = (!stage.is_identity()).then(|| stage.tally());
    let destination = indexers.name();
    let worker = Worker::new(settings, queue, metadata, parts, stage.clone(), indexers);
    let progress = match w.progress {
        Progress::Auto => ProgressMode::Auto,
        Progress::Always => ProgressMode::Bar,
        Progress::Never => ProgressMode::Log,
    };
    Ok(Deployment {
        worker,
        metrics,
        record_dlq,
        alerts,
        destination,
        progress,
        rule_tally,
        transform: stage,
        watch: config.transform.watch,
    })
}

/// The Elasticsearch indexer of `indexer.elasticsearch`, with its index set up first
/// when `setup` is on.
fn elasticsearch_indexer(config: &Config) -> Result<EsIndexerFactory> {
    let es = &config.indexer.elasticsearch;
    let index = IndexName::parse(&es.index, &es.index_time_field)?;
    let to_json =
        |key: &str, v: &Option<serde_norway::Value>| -> Result<Option<serde_json::Value>> {
            v.as_ref()
                .map(|v| serde_json::to_value(v).map_err(|e| PfError::config(key, e)))
                .transpose()
        };
    let settings = EsSettings {
        endpoints: es.endpoints.clone(),
        alerts_index: es.alerts_index.clone().unwrap_or_else(|| {
            let base = es.index.split('{').next().unwrap_or("paraflow");
            format!("{}-alerts", base.trim_end_matches(['-', '_', '.']))
        }),
        index,
        id_field: es.id_field.clone(),
        op_type: match es.op_type {
            EsOpType::Index => OpType::Index,
            EsOpType::Create => OpType::Create,
        },
        auth: match (&es.username, &es.password, &es.api_key) {
            (Some(username), Some(password), _) => EsAuth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            (_, _, Some(key)) => EsAuth::ApiKey(key.clone()),
            _ => EsAuth::None,
        },
        ca_cert: es.ca_cert.clone(),
        compression: es.compression,
        timeout: Duration::from_secs(es.timeout_secs),
        max_retries: es.max_retries,
        retry_base: Duration::from_millis(es.retry_base_ms),
        retry_max: Duration::from_millis(es.retry_max_ms),
        bulk_max_docs: config.indexer.bulk_max_docs,
        bulk_max_bytes: config.indexer.bulk_max_bytes,
        setup: es
            .setup
            .then(|| -> Result<IndexSetup> {
                Ok(IndexSetup {
                    mappings: to_json("indexer.elasticsearch.mappings", &es.mappings)?,
                    settings: to_json("indexer.elasticsearch.index_settings", &es.index_settings)?,
                })
            })
            .transpose()?,
    };
    let factory = EsIndexerFactory::new(settings)?;
    factory.setup()?;
    Ok(factory)
}

/// NDJSON files in `record_dlq.dir`, or objects under `record_dlq.s3_prefix`.
fn record_dlq(config: &Config, s3: Arc<OnDemandS3>) -> Result<Arc<dyn RecordDlq>> {
    let Some(prefix) = &config.record_dlq.s3_prefix else {
        return Ok(Arc::new(FileRecordDlq::new(&config.record_dlq.dir)));
    };
    let target =
        S3Location::parse(prefix).map_err(|e| PfError::config("record_dlq.s3_prefix", e))?;
    Ok(Arc::new(ObjectRecordDlq::new(
        target.uri(),
        Box::new(move |uri, body| s3.put(uri, body)),
    )))
}

/// Loads the enrichment tables and compiles the script and rules of `transform`.
fn transform_stage(
    config: &Config,
    windows: Option<Arc<dyn pf_traits::WindowStore>>,
) -> Result<TransformStage> {
    let t = &config.transform;
    let tables = t
        .tables
        .iter()
        .map(|s| TableConfig {
            name: s.name.clone(),
            kind: match s.kind {
                TableKindSpec::Cidr => TableKind::Cidr,
                TableKindSpec::Exact => TableKind::Exact,
            },
            path: s.path.clone(),
            format: s.format.map(|f| match f {
                TableFormatSpec::Csv => TableFormat::Csv,
                TableFormatSpec::Ndjson => TableFormat::Ndjson,
                TableFormatSpec::Parquet => TableFormat::Parquet,
            }),
            key: s.key.clone(),
            values: s.values.clone(),
        })
        .collect();
    let source = StageSource {
        script: t.script.clone(),
        rules: t.rules.clone(),
        tables,
        limits: ScriptLimits {
            max_operations: t.max_operations,
            ..ScriptLimits::default()
        },
    };
    match windows {
        Some(w) => TransformStage::load_with_windows(source, w),
        None => TransformStage::load(source),
    }
}

fn ndjson_schema(config: &Config) -> Option<arrow::datatypes::SchemaRef> {
    let fields = config.reader.ndjson.schema.as_ref()?;
    let fields: Vec<Field> = fields
        .iter()
        .map(|f| {
            let dt = match f.field_type {
                FieldType::String => DataType::Utf8,
                FieldType::Int64 => DataType::Int64,
                FieldType::Float64 => DataType::Float64,
                FieldType::Boolean => DataType::Boolean,
                FieldType::Timestamp => {
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
                }
            };
            Field::new(&f.name, dt, f.nullable)
        })
        .collect();
    Some(Arc::new(Schema::new(fields)))
}
