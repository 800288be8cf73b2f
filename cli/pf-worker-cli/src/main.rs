//! `pf-worker`: takes work items from a queue and runs one pipeline per thread:
//! read → transform → index → acknowledge.

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser};

use pf_config::{Config, deploy, work_queue};
use pf_runner::{
    EXIT_FATAL, KeyFlag, RunReporting, exit_code, ignore_hangup_during_startup, init_logging,
    run_deployment,
};
use pf_worker::render_summary;

/// Process work items (from `pf-discoverer` or SQS) into a destination.
///
/// Every flag below --config overrides the configuration key named in its help; --set
/// overrides any key. Exit status: 0 when every file completed, 2 when some failed
/// (listed in the summary), 1 on a fatal error.
#[derive(Debug, Parser)]
#[command(name = "pf-worker", version, after_help = EXAMPLES)]
struct Args {
    /// YAML configuration file (see config/worker.yaml); `${VAR}` and `${VAR:-default}`
    /// are substituted from the environment.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set any configuration key, e.g. --set worker.max_attempts=3; repeatable, applied
    /// after the other flags.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Also write the run summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    /// Print the effective configuration (file, flags and --set merged; secrets masked)
    /// and exit.
    #[arg(long)]
    print_config: bool,
}

/// The flags that stand for configuration keys, one line each.
const KEY_FLAGS: &[KeyFlag] = &[
    KeyFlag::one(
        "input",
        "QUEUE",
        &["queue.kind"],
        "Where work items come from: stdin or sqs",
    ),
    KeyFlag::one(
        "destination",
        "DEST",
        &["indexer.destination"],
        "Where documents go: stats, stdout, null, elasticsearch, parquet or flight",
    ),
    KeyFlag::one(
        "threads",
        "N",
        &["worker.threads"],
        "Pipeline threads; default: all cores",
    )
    .short('t'),
    KeyFlag::one(
        "batch-size",
        "ROWS",
        &["reader.batch_size"],
        "Records per Arrow batch",
    ),
    KeyFlag::one(
        "dlq-dir",
        "DIR",
        &["record_dlq.dir"],
        "Directory of the record-level DLQ",
    ),
    KeyFlag::one(
        "dlq-s3-prefix",
        "S3_URI",
        &["record_dlq.s3_prefix"],
        "Upload failed records under this S3 prefix instead of --dlq-dir, e.g. s3://bucket/dlq/",
    ),
    KeyFlag::one(
        "idle-exit",
        "SECS",
        &["worker.idle_exit_secs"],
        "Stop once the queue stayed empty this many seconds",
    ),
    KeyFlag::one(
        "worker-id",
        "ID",
        &["worker.id"],
        "This worker's id in metadata; default: <hostname>-<pid>",
    ),
    KeyFlag::one(
        "s3-endpoint",
        "URL",
        &["storage.s3.endpoint"],
        "S3 endpoint URL for S3-compatible stores and emulators",
    ),
    KeyFlag::one(
        "region",
        "REGION",
        &["storage.s3.region", "queue.sqs.region"],
        "AWS region",
    ),
    KeyFlag::one(
        "sqs-queue-url",
        "URL",
        &["queue.sqs.queue_url"],
        "SQS work queue URL",
    ),
    KeyFlag::one(
        "sqs-endpoint",
        "URL",
        &["queue.sqs.endpoint"],
        "SQS endpoint URL; default: --s3-endpoint",
    ),
    KeyFlag::one(
        "sqs-dlq-url",
        "URL",
        &["queue.sqs.dlq_url"],
        "SQS dead-letter queue URL; default: the queue's redrive policy",
    ),
    KeyFlag::one(
        "visibility-timeout",
        "SECS",
        &["queue.sqs.visibility_timeout_secs"],
        "SQS visibility timeout, extended at half this interval while a file is processed",
    ),
    KeyFlag::one(
        "parquet-dir",
        "DIR|S3_URI",
        &["indexer.parquet.path"],
        "Directory or s3://bucket/prefix of the Parquet data set (destination parquet)",
    ),
    KeyFlag::one(
        "flight-endpoint",
        "URL",
        &["indexer.flight.endpoint"],
        "Arrow Flight server, grpc://host:port or grpc+tls://host:port (destination flight)",
    ),
    KeyFlag::one(
        "es-endpoint",
        "URL",
        &["indexer.elasticsearch.endpoints"],
        "Elasticsearch node URL; repeat for several nodes",
    )
    .many(),
    KeyFlag::one(
        "es-index",
        "NAME",
        &["indexer.elasticsearch.index"],
        "Target index, fixed or from the record time, e.g. `transactions-{yyyy.MM.dd}`",
    ),
    KeyFlag::one(
        "es-id-field",
        "FIELD",
        &["indexer.elasticsearch.id_field"],
        "Column whose value is the document _id; default: hash of uri + etag + row",
    ),
    KeyFlag::one(
        "es-op-type",
        "OP",
        &["indexer.elasticsearch.op_type"],
        "`index` (overwrite) or `create` (409 = already indexed)",
    ),
    KeyFlag::one(
        "es-username",
        "USER",
        &["indexer.elasticsearch.username"],
        "Basic-auth user",
    )
    .env("PF_ES_USERNAME"),
    KeyFlag::one(
        "es-password",
        "PASSWORD",
        &["indexer.elasticsearch.password"],
        "Basic-auth password; prefer the environment variable",
    )
    .env("PF_ES_PASSWORD"),
    KeyFlag::one(
        "es-api-key",
        "KEY",
        &["indexer.elasticsearch.api_key"],
        "Base64 API key; prefer the environment variable",
    )
    .env("PF_ES_API_KEY"),
    KeyFlag::one(
        "es-ca-cert",
        "FILE",
        &["indexer.elasticsearch.ca_cert"],
        "PEM file of the cluster's CA",
    ),
    KeyFlag::switch(
        "es-compression",
        &["indexer.elasticsearch.compression"],
        "Gzip bulk request bodies",
    ),
    KeyFlag::switch(
        "es-setup",
        &["indexer.elasticsearch.setup"],
        "Create the index or index template (mappings from config) at start-up, if missing",
    ),
    KeyFlag::one(
        "es-max-in-flight",
        "N",
        &["indexer.elasticsearch.max_in_flight"],
        "Bulk requests each pipeline thread keeps outstanding",
    ),
    KeyFlag::one(
        "bulk-max-docs",
        "N",
        &["indexer.bulk_max_docs"],
        "Documents per bulk request",
    ),
    KeyFlag::one(
        "bulk-max-bytes",
        "BYTES",
        &["indexer.bulk_max_bytes"],
        "Bytes per bulk request body",
    ),
    KeyFlag::one(
        "valkey-url",
        "URL",
        &["coordinator.valkey.url"],
        "Valkey for shared metadata and fraud windows, e.g. redis://localhost:6379 (also \
         rediss://; password in the URL or VALKEY_PASSWORD)",
    )
    .env("PF_VALKEY_URL"),
    KeyFlag::one(
        "metrics-addr",
        "ADDR",
        &["metrics.addr"],
        "Serve Prometheus metrics on this address, e.g. 127.0.0.1:9898",
    ),
];

const EXAMPLES: &str = "Examples:
  pf-discoverer --path data/ | pf-worker --input stdin --destination stats --threads 4
  pf-worker --input sqs --sqs-queue-url http://localhost:4566/000000000000/paraflow-work \\
      --s3-endpoint http://localhost:4566 --destination stats --idle-exit 30
  pf-worker --config config/worker.yaml --summary-json summary.json
  pf-discoverer --path data/ | pf-worker --destination elasticsearch \\
      --es-endpoint http://localhost:9200 --es-index transactions --es-setup";

fn main() {
    init_logging();
    ignore_hangup_during_startup();
    let matches = Args::command()
        .args(KEY_FLAGS.iter().map(KeyFlag::arg))
        .get_matches();
    let code = match Args::from_arg_matches(&matches)
        .map_err(anyhow::Error::from)
        .and_then(|args| run(&args, &matches))
    {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pf-worker: error: {e:#}");
            EXIT_FATAL
        }
    };
    std::process::exit(code);
}

fn run(args: &Args, matches: &clap::ArgMatches) -> anyhow::Result<i32> {
    let overrides = pf_runner::overrides(matches, KEY_FLAGS, &args.set)?;
    let (config, origin) = Config::resolve(args.config.as_deref(), &overrides)?;
    if args.print_config {
        print!("{}", config.to_yaml());
        return Ok(0);
    }
    pf_runner::serve_metrics(&config)?;
    let (queue, files_known) = work_queue(&config)
        .map_err(|e| origin.explain(e))
        .context("cannot use the work queue")?;
    let deployment = deploy(&config, queue)
        .map_err(|e| origin.explain(e))
        .context("cannot start the worker")?;
    tracing::info!(
        threads = config.worker.thread_count(),
        destination = deployment.destination,
        "pf-worker started"
    );
    let reporting = RunReporting {
        summary_json: args.summary_json.clone(),
    };
    let summary = run_deployment(&deployment, files_known, &reporting)?;
    eprint!("{}", render_summary(&summary, deployment.destination));
    Ok(exit_code(&summary))
}
