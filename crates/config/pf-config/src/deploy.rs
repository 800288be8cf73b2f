//! Building a worker from a validated [`Config`]: every component builds itself from its
//! own section; this module only picks which ones (the registries below) and wires them.

use std::io::BufReader;
use std::sync::Arc;

use pf_dlq::PutObject;
use pf_error::{PfError, Result};
use pf_file_processor::{FormatReaders, SharedParts};
use pf_indexer_es::EsIndexerFactory;
use pf_indexer_flight::FlightIndexerFactory;
use pf_indexer_parquet::{ParquetAlertSink, ParquetIndexerFactory, UploadFile};
use pf_indexer_stdout::{AlertTarget, LocalDestination, LocalIndexerFactory, NdjsonAlertSink};
use pf_metrics::Metrics;
use pf_queue_memory::{MemoryQueue, feed_lines};
use pf_storage::ObjectSources;
use pf_storage_s3::{OnDemandS3, S3Location};
use pf_traits::{AlertSink, BulkLimits, IndexerFactory, RecordDlq, WorkQueue};
use pf_transform::{RuleTally, TransformStage};
use pf_types::{FileFormat, RunSummary};
use pf_worker::{ProgressMode, Worker, WorkerComponents};

use crate::model::{AlertDestination, Config, Destination, QueueKind};

/// A worker assembled from a validated [`Config`], with handles the CLI reports from.
pub struct Deployment {
    /// The worker, ready to [`run`](Worker::run).
    pub worker: Worker,
    /// Live counters (for `/metrics` and the progress display).
    pub metrics: Arc<Metrics>,
    /// The record DLQ.
    pub record_dlq: Arc<dyn RecordDlq>,
    /// The fraud alert sink for files and stdout (discarding when alerts go elsewhere).
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
            if counts.late_dropped > 0 {
                summary
                    .window_late_by_rule
                    .insert(rule.clone(), counts.late_dropped);
            }
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

/// Describes every component's metrics to the installed recorder (`pf_metrics::install`
/// describes the pipeline's), so a scrape explains each series with its unit.
pub fn describe_metrics() {
    pf_worker::describe_metrics();
    pf_queue_sqs::describe_metrics();
    pf_coordinator::describe_metrics();
    pf_indexer_es::describe_metrics();
    pf_transform::describe_metrics();
}

/// How many files the run knows of so far (for progress), when the queue can tell.
pub type FilesKnown = Box<dyn Fn() -> Option<u64> + Send>;

/// The work queue of `queue` for a worker binary: stdin (fed by a reader thread) or
/// SQS; `memory` is for in-process runs, which build their own.
pub fn work_queue(config: &Config) -> Result<(Arc<dyn WorkQueue>, FilesKnown)> {
    match config.queue.kind {
        QueueKind::Stdin => {
            let queue = Arc::new(MemoryQueue::default());
            feed_lines(queue.clone(), BufReader::new(std::io::stdin()), "stdin");
            let known = queue.clone();
            Ok((queue, Box::new(move || Some(known.pushed()))))
        }
        QueueKind::Memory => Err(PfError::config(
            "queue.kind",
            "`memory` is only for in-process runs (pf demo, tests); use stdin or sqs",
        )),
        QueueKind::Sqs => {
            let mut sqs = config.queue.sqs.clone();
            // Emulators serve S3 and SQS on one endpoint.
            sqs.endpoint = sqs.endpoint.or_else(|| config.storage.s3.endpoint.clone());
            let queue = sqs.build(&config.worker.worker_id())?;
            Ok((Arc::new(queue), Box::new(|| None)))
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
    let s3 = Arc::new(config.storage.s3.build());
    let record_dlq = record_dlq(config, s3.clone())?;
    let bulk = BulkLimits {
        max_docs: config.indexer.bulk_max_docs,
        max_bytes: config.indexer.bulk_max_bytes,
    };
    let BuiltDestination {
        indexers,
        elasticsearch,
    } = destination(config, bulk, &s3)?;
    let (alerts, alert_sink) = alert_sinks(config, elasticsearch.as_deref())?;
    let local = config
        .storage
        .local
        .access(config.queue.kind == QueueKind::Sqs)?;
    let r = &config.reader;
    let parts = SharedParts {
        source: Arc::new(
            ObjectSources::local_only()
                .with_local_access(local)
                .with_s3(s3),
        ),
        readers: FormatReaders::default()
            .with(FileFormat::Parquet, Arc::new(r.parquet.build(r.batch_size)))
            .with(FileFormat::Ndjson, Arc::new(r.ndjson.build(r.batch_size))),
        record_dlq: record_dlq.clone(),
        alerts: alert_sink,
        metrics: metrics.clone(),
        // A chunk holds as many requests as the destination sends at once, so that
        // they are in flight together; the checkpoint follows the whole chunk.
        chunk_limits: bulk.times(indexers.requests_per_chunk()),
    };
    let valkey = &config.coordinator.valkey;
    let metadata = valkey.metadata_store()?;
    let settings = config.worker.settings(valkey.stale_after());
    let stage = Arc::new(match valkey.window_store()? {
        Some(windows) => TransformStage::load_with_windows(config.transform.clone(), windows)?,
        None => {
            TransformStage::load_with_lateness(config.transform.clone(), valkey.window_lateness())?
        }
    });
    let rule_tally = (!stage.is_identity()).then(|| stage.tally());
    let destination = indexers.name();
    let worker = Worker::new(
        settings,
        WorkerComponents {
            queue,
            metadata,
            parts,
            transforms: stage.clone(),
            indexers,
        },
    );
    Ok(Deployment {
        worker,
        metrics,
        record_dlq,
        alerts,
        destination,
        progress: config.worker.progress,
        rule_tally,
        transform: stage,
        watch: config.transform.watch,
    })
}

/// A destination built from `indexer`.
struct BuiltDestination {
    /// Builds the per-thread indexers.
    indexers: Arc<dyn IndexerFactory>,
    /// The Elasticsearch sink when it is the destination, for its alert sink.
    elasticsearch: Option<Arc<EsIndexerFactory>>,
}

/// The destination registry: `indexer.destination` → the component that indexes. A new
/// destination is one arm here (and its section in [`crate::IndexerConfig`]).
fn destination(
    config: &Config,
    bulk: BulkLimits,
    s3: &Arc<OnDemandS3>,
) -> Result<BuiltDestination> {
    let local = |d| BuiltDestination {
        indexers: Arc::new(LocalIndexerFactory::new(d)),
        elasticsearch: None,
    };
    Ok(match config.indexer.destination {
        Destination::Stats => local(LocalDestination::Stats),
        Destination::Stdout => local(LocalDestination::Stdout),
        Destination::Null => local(LocalDestination::Null),
        Destination::Parquet => BuiltDestination {
            indexers: Arc::new(parquet_destination(config, s3)?),
            elasticsearch: None,
        },
        Destination::Flight => BuiltDestination {
            indexers: Arc::new(FlightIndexerFactory::build(&config.indexer.flight)?),
            elasticsearch: None,
        },
        Destination::Elasticsearch => {
            let es = Arc::new(EsIndexerFactory::build(
                &config.indexer.elasticsearch,
                bulk,
            )?);
            es.identify_server();
            es.setup()?;
            BuiltDestination {
                indexers: es.clone(),
                elasticsearch: Some(es),
            }
        }
    })
}

/// The alert registry: `alerts.destination` → the sink alerts are written to, and the
/// NDJSON sink the run reports from (discarding when alerts go elsewhere).
fn alert_sinks(
    config: &Config,
    es: Option<&EsIndexerFactory>,
) -> Result<(Arc<NdjsonAlertSink>, Arc<dyn AlertSink>)> {
    let ndjson = |target| Arc::new(NdjsonAlertSink::new(target));
    Ok(match config.alerts.destination {
        AlertDestination::None => {
            let sink = ndjson(AlertTarget::Discard);
            (sink.clone(), sink)
        }
        AlertDestination::Stdout => {
            let sink = ndjson(AlertTarget::Stdout);
            (sink.clone(), sink)
        }
        AlertDestination::File => {
            let sink = ndjson(AlertTarget::File(config.alerts.path.clone()));
            (sink.clone(), sink)
        }
        AlertDestination::Elasticsearch => {
            let es = es.ok_or_else(|| {
                PfError::config(
                    "alerts.destination",
                    "`elasticsearch` needs indexer.destination: elasticsearch",
                )
            })?;
            (ndjson(AlertTarget::Discard), Arc::new(es.alert_sink()))
        }
        AlertDestination::Parquet => (
            ndjson(AlertTarget::Discard),
            Arc::new(ParquetAlertSink::new(
                &config.alerts.dir,
                &config.worker.worker_id(),
                config.indexer.parquet.compression,
            )?),
        ),
    })
}

/// The Parquet data set of `indexer.parquet`; an `s3://` path uploads through `s3`.
fn parquet_destination(config: &Config, s3: &Arc<OnDemandS3>) -> Result<ParquetIndexerFactory> {
    let parquet = &config.indexer.parquet;
    if !parquet.is_s3() {
        return ParquetIndexerFactory::build(parquet, None);
    }
    S3Location::parse(&parquet.path).map_err(|e| PfError::config("indexer.parquet.path", e))?;
    let s3 = s3.clone();
    let upload: UploadFile = Box::new(move |uri, path| s3.put_file(uri, path));
    ParquetIndexerFactory::build(parquet, Some(upload))
}

/// NDJSON files in `record_dlq.dir`, or objects under `record_dlq.s3_prefix`.
fn record_dlq(config: &Config, s3: Arc<OnDemandS3>) -> Result<Arc<dyn RecordDlq>> {
    let dlq = &config.record_dlq;
    let prefix = dlq
        .s3_prefix
        .as_deref()
        .map(|p| {
            S3Location::parse(p)
                .map(|l| l.uri())
                .map_err(|e| PfError::config("record_dlq.s3_prefix", e))
        })
        .transpose()?;
    let put: PutObject = Box::new(move |uri, body| s3.put(uri, body));
    Ok(dlq.build(prefix, &config.worker.worker_id(), put))
}
