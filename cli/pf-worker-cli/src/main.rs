//! `pf-worker`: takes work items from a queue and runs one pipeline per thread:
//! read → transform → index → acknowledge.

use std::io::BufReader;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};

use pf_aws::{AwsContext, AwsSettings};
use pf_config::{Config, Destination, EsOpType, QueueKind};
use pf_queue_memory::{MemoryQueue, feed_lines};
use pf_queue_sqs::{SqsQueueOptions, SqsWorkQueue};
use pf_runner::{
    EXIT_FATAL, RunReporting, exit_code, ignore_hangup_during_startup, init_logging, run_deployment,
};
use pf_traits::WorkQueue;
use pf_worker::{default_worker_id, deploy, render_summary};

/// Process work items (from `pf-discoverer` or SQS) into a destination.
///
/// Every flag overrides the matching key of --config. Exit status: 0 when every file
/// completed, 2 when some failed (listed in the summary), 1 on a fatal error.
#[derive(Debug, Parser)]
#[command(name = "pf-worker", version, after_help = EXAMPLES)]
struct Args {
    /// YAML configuration file (see config/worker.yaml); `${VAR}` and `${VAR:-default}`
    /// are substituted from the environment.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where work items come from [config: queue.kind].
    #[arg(long, value_enum, value_name = "QUEUE")]
    input: Option<InputArg>,
    /// Where documents go [config: indexer.destination].
    #[arg(long, value_enum, value_name = "DEST")]
    destination: Option<DestinationArg>,
    /// Pipeline threads; default: all cores [config: worker.threads].
    #[arg(long, short = 't', value_name = "N")]
    threads: Option<usize>,
    /// Records per Arrow batch [config: reader.batch_size].
    #[arg(long, value_name = "ROWS")]
    batch_size: Option<usize>,
    /// Directory of the record-level DLQ [config: record_dlq.dir].
    #[arg(long, value_name = "DIR")]
    dlq_dir: Option<PathBuf>,
    /// Upload failed records under this S3 prefix instead of --dlq-dir, e.g.
    /// s3://bucket/dlq/ [config: record_dlq.s3_prefix].
    #[arg(long, value_name = "S3_URI")]
    dlq_s3_prefix: Option<String>,
    /// Stop once the queue stayed empty this many seconds [config: worker.idle_exit_secs].
    #[arg(long, value_name = "SECS")]
    idle_exit: Option<u64>,
    /// This worker's id in metadata; default: <hostname>-<pid> [config: worker.id].
    #[arg(long, value_name = "ID")]
    worker_id: Option<String>,
    /// S3 endpoint URL for S3-compatible stores and emulators [config: storage.s3.endpoint].
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// AWS region [config: storage.s3.region and queue.sqs.region].
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// SQS work queue URL [config: queue.sqs.queue_url].
    #[arg(long, value_name = "URL")]
    sqs_queue_url: Option<String>,
    /// SQS endpoint URL; default: --s3-endpoint [config: queue.sqs.endpoint].
    #[arg(long, value_name = "URL")]
    sqs_endpoint: Option<String>,
    /// SQS dead-letter queue URL; default: the queue's redrive policy [config: queue.sqs.dlq_url].
    #[arg(long, value_name = "URL")]
    sqs_dlq_url: Option<String>,
    /// SQS visibility timeout in seconds, extended at half this interval while a file is
    /// processed [config: queue.sqs.visibility_timeout_secs].
    #[arg(long, value_name = "SECS")]
    visibility_timeout: Option<u32>,
    /// Elasticsearch node URL; repeat for several nodes [config: indexer.elasticsearch.endpoints].
    #[arg(long, value_name = "URL")]
    es_endpoint: Vec<String>,
    /// Target index, fixed or from the record time, e.g. `transactions-{yyyy.MM.dd}`
    /// [config: indexer.elasticsearch.index].
    #[arg(long, value_name = "NAME")]
    es_index: Option<String>,
    /// Column whose value is the document _id; default: hash of uri + etag + row
    /// [config: indexer.elasticsearch.id_field].
    #[arg(long, value_name = "FIELD")]
    es_id_field: Option<String>,
    /// `index` (overwrite) or `create` (409 = already indexed) [config: indexer.elasticsearch.op_type].
    #[arg(long, value_enum, value_name = "OP")]
    es_op_type: Option<EsOpArg>,
    /// Basic-auth user [config: indexer.elasticsearch.username].
    #[arg(long, value_name = "USER", env = "PF_ES_USERNAME")]
    es_username: Option<String>,
    /// Basic-auth password; prefer the environment variable [config: indexer.elasticsearch.password].
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "PF_ES_PASSWORD",
        hide_env_values = true
    )]
    es_password: Option<String>,
    /// Base64 API key; prefer the environment variable [config: indexer.elasticsearch.api_key].
    #[arg(
        long,
        value_name = "KEY",
        env = "PF_ES_API_KEY",
        hide_env_values = true
    )]
    es_api_key: Option<String>,
    /// PEM file of the cluster's CA [config: indexer.elasticsearch.ca_cert].
    #[arg(long, value_name = "FILE")]
    es_ca_cert: Option<PathBuf>,
    /// Gzip bulk request bodies [config: indexer.elasticsearch.compression].
    #[arg(long)]
    es_compression: bool,
    /// Create the index or index template (mappings from config) at start-up, if missing
    /// [config: indexer.elasticsearch.setup].
    #[arg(long)]
    es_setup: bool,
    /// Documents per bulk request [config: indexer.bulk_max_docs].
    #[arg(long, value_name = "N")]
    bulk_max_docs: Option<usize>,
    /// Bytes per bulk request body [config: indexer.bulk_max_bytes].
    #[arg(long, value_name = "BYTES")]
    bulk_max_bytes: Option<usize>,
    /// Valkey for shared metadata and fraud windows, e.g. redis://localhost:6379 (also
    /// rediss://; password in the URL or VALKEY_PASSWORD) [config: coordinator.valkey.url].
    #[arg(
        long,
        value_name = "URL",
        env = "PF_VALKEY_URL",
        hide_env_values = true
    )]
    valkey_url: Option<String>,
    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9898 [config: metrics.addr].
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Also write the run summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    /// Print the effective configuration (secrets masked) and exit.
    #[arg(long)]
    print_config: bool,
}

const EXAMPLES: &str = "Examples:
  pf-discoverer --path data/ | pf-worker --input stdin --destination stats --threads 4
  pf-worker --input sqs --sqs-queue-url http://localhost:4566/000000000000/paraflow-work \\
      --s3-endpoint http://localhost:4566 --destination stats --idle-exit 30
  pf-worker --config config/worker.yaml --summary-json summary.json
  pf-discoverer --path data/ | pf-worker --destination elasticsearch \\
      --es-endpoint http://localhost:9200 --es-index transactions --es-setup";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InputArg {
    /// NDJSON work items on standard input.
    Stdin,
    /// An SQS queue (--sqs-queue-url).
    Sqs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EsOpArg {
    /// Create or overwrite.
    Index,
    /// Create only; an existing _id counts as already indexed.
    Create,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DestinationArg {
    /// Count documents only.
    Stats,
    /// NDJSON documents on stdout.
    Stdout,
    /// Discard documents.
    Null,
    /// Elasticsearch bulk API.
    Elasticsearch,
}

fn main() {
    init_logging();
    ignore_hangup_during_startup();
    let args = Args::parse();
    let code = match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pf-worker: error: {e:#}");
            EXIT_FATAL
        }
    };
    std::process::exit(code);
}

fn effective_config(args: &Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(i) = args.input {
        config.queue.kind = match i {
            InputArg::Stdin => QueueKind::Stdin,
            InputArg::Sqs => QueueKind::Sqs,
        };
    }
    if let Some(d) = args.destination {
        config.indexer.destination = match d {
            DestinationArg::Stats => Destination::Stats,
            DestinationArg::Stdout => Destination::Stdout,
            DestinationArg::Null => Destination::Null,
            DestinationArg::Elasticsearch => Destination::Elasticsearch,
        };
    }
    let w = &mut config.worker;
    w.threads = args.threads.or(w.threads);
    w.idle_exit_secs = args.idle_exit.or(w.idle_exit_secs);
    w.id = args.worker_id.clone().or(w.id.take());
    if let Some(b) = args.batch_size {
        config.reader.batch_size = b;
    }
    if let Some(d) = &args.dlq_dir {
        config.record_dlq.dir = d.clone();
    }
    if let Some(p) = &args.dlq_s3_prefix {
        config.record_dlq.s3_prefix = Some(p.clone());
    }
    if let Some(u) = &args.valkey_url {
        config.coordinator.valkey.url = Some(u.clone());
    }
    let s3 = &mut config.storage.s3;
    s3.endpoint = args.s3_endpoint.clone().or(s3.endpoint.take());
    s3.region = args.region.clone().or(s3.region.take());
    let sqs = &mut config.queue.sqs;
    sqs.queue_url = args.sqs_queue_url.clone().or(sqs.queue_url.take());
    sqs.endpoint = args.sqs_endpoint.clone().or(sqs.endpoint.take());
    sqs.dlq_url = args.sqs_dlq_url.clone().or(sqs.dlq_url.take());
    if let Some(v) = args.visibility_timeout {
        sqs.visibility_timeout_secs = v;
    }
    sqs.region = args.region.clone().or(sqs.region.take());
    let es = &mut config.indexer.elasticsearch;
    if !args.es_endpoint.is_empty() {
        es.endpoints = args.es_endpoint.clone();
    }
    if let Some(i) = &args.es_index {
        es.index = i.clone();
    }
    es.id_field = args.es_id_field.clone().or(es.id_field.take());
    if let Some(op) = args.es_op_type {
        es.op_type = match op {
            EsOpArg::Index => EsOpType::Index,
            EsOpArg::Create => EsOpType::Create,
        };
    }
    es.username = args.es_username.clone().or(es.username.take());
    es.password = args.es_password.clone().or(es.password.take());
    es.api_key = args.es_api_key.clone().or(es.api_key.take());
    es.ca_cert = args.es_ca_cert.clone().or(es.ca_cert.take());
    es.compression |= args.es_compression;
    es.setup |= args.es_setup;
    if let Some(n) = args.bulk_max_docs {
        config.indexer.bulk_max_docs = n;
    }
    if let Some(n) = args.bulk_max_bytes {
        config.indexer.bulk_max_bytes = n;
    }
    if let Some(addr) = args.metrics_addr {
        config.metrics.addr = Some(addr.to_string());
    }
    config.validate()?;
    Ok(config)
}

/// How many files the run knows of so far (for progress), when the queue can tell.
type FilesKnown = Box<dyn Fn() -> Option<u64> + Send>;

/// The SQS work queue of `queue.sqs`; its endpoint defaults to `storage.s3.endpoint`
/// because emulators serve both.
fn sqs_queue(config: &Config) -> anyhow::Result<SqsWorkQueue> {
    let sqs = &config.queue.sqs;
    let queue_url = sqs
        .queue_url
        .clone()
        .context("queue.sqs.queue_url (--sqs-queue-url) is required with --input sqs")?;
    let endpoint = sqs.endpoint.clone().or(config.storage.s3.endpoint.clone());
    let aws = AwsContext::connect(&AwsSettings::new(endpoint, sqs.region.clone()))?;
    Ok(SqsWorkQueue::connect(
        aws,
        SqsQueueOptions {
            queue_url,
            dlq_url: sqs.dlq_url.clone(),
            wait_time_secs: sqs.wait_time_secs,
            visibility_timeout: Duration::from_secs(u64::from(sqs.visibility_timeout_secs)),
            prefetch: sqs.prefetch as usize,
            max_messages: sqs.max_messages as usize,
            worker_id: config.worker.id.clone().unwrap_or_else(default_worker_id),
        },
    )?)
}

fn run(args: Args) -> anyhow::Result<i32> {
    let config = effective_config(&args)?;
    if args.print_config {
        print!("{}", config.to_masked_yaml());
        return Ok(0);
    }
    let (queue, files_known): (Arc<dyn WorkQueue>, FilesKnown) = match config.queue.kind {
        QueueKind::Stdin => {
            let queue = Arc::new(MemoryQueue::default());
            feed_lines(queue.clone(), BufReader::new(std::io::stdin()), "stdin");
            let known = queue.clone();
            (queue, Box::new(move || Some(known.pushed())))
        }
        QueueKind::Memory => anyhow::bail!(
            "queue.kind `memory` is only for in-process runs (pf demo, tests); use stdin or sqs"
        ),
        QueueKind::Sqs => (
            Arc::new(sqs_queue(&config).context("cannot use the SQS work queue")?),
            Box::new(|| None),
        ),
    };
    let deployment = deploy(&config, queue).context("cannot start the worker")?;
    tracing::info!(
        threads = config.worker.thread_count(),
        destination = deployment.destination,
        "pf-worker started"
    );
    let reporting = RunReporting {
        metrics_addr: config.metrics.socket_addr()?,
        summary_json: args.summary_json.clone(),
    };
    let summary = run_deployment(&deployment, files_known, &reporting)?;
    eprint!("{}", render_summary(&summary, deployment.destination));
    Ok(exit_code(&summary))
}
