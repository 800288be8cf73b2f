//! `pf-discoverer`: lists files (a local directory, or S3) and emits one work item per
//! file, to stdout (for `| pf-worker --input stdin`) or to an SQS queue.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};

use pf_aws::{AwsContext, AwsSettings};
use pf_discoverer::{DiscoverOptions, DiscoveryStats, discover};
use pf_error::PfError;
use pf_queue_sqs::WorkItemSender;
use pf_runner::{EXIT_FATAL, EXIT_FILES_FAILED, init_logging};
use pf_storage::ObjectSources;
use pf_storage_s3::OnDemandS3;
use pf_traits::ObjectSource;

/// List files and emit one JSON work item per matching file.
///
/// Formats are inferred from the name: .parquet, .ndjson, .jsonl, .json, optionally
/// .gz or .zst. Files of other formats are skipped (counted in the summary on stderr).
#[derive(Debug, Parser)]
#[command(name = "pf-discoverer", version, after_help = EXAMPLES)]
struct Args {
    /// Local directory (or single file) to list.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "bucket",
        required_unless_present = "bucket"
    )]
    path: Option<PathBuf>,
    /// S3 bucket to list.
    #[arg(long, value_name = "BUCKET")]
    bucket: Option<String>,
    /// Key prefix within --bucket.
    #[arg(long, value_name = "PREFIX", requires = "bucket")]
    prefix: Option<String>,
    /// Glob over the path relative to the root (`*`, `**`, `?`, `{a,b}`); without a `/`
    /// it matches file names at any depth.
    #[arg(long, value_name = "GLOB")]
    pattern: Option<String>,
    /// Descend into subdirectories of --path (S3 listings are always recursive).
    #[arg(long, short = 'r')]
    recursive: bool,
    /// Skip files smaller than this many bytes.
    #[arg(long, value_name = "BYTES")]
    min_size: Option<u64>,
    /// Skip files larger than this many bytes.
    #[arg(long, value_name = "BYTES")]
    max_size: Option<u64>,
    /// Job id attached to every work item.
    #[arg(long, value_name = "ID")]
    job_id: Option<String>,
    /// Cut Parquet files larger than this into one work item per range of this many
    /// bytes (e.g. 268435456 for 256 MiB), so the workers of a fleet share one large
    /// file; NDJSON files stay whole. At least 65536; a file is cut into at most 10,000
    /// ranges (larger ones if needed). Default: every file is one work item.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(65_536..))]
    split_size: Option<u64>,
    /// Register the job's totals (files, bytes) in this Valkey for `pf status`, e.g.
    /// redis://localhost:6379 (password in the URL or VALKEY_PASSWORD).
    #[arg(
        long,
        value_name = "URL",
        env = "PF_VALKEY_URL",
        hide_env_values = true
    )]
    valkey_url: Option<String>,
    /// Where work items go.
    #[arg(long, value_enum, default_value = "stdout")]
    destination: DestinationArg,
    /// S3 endpoint URL for S3-compatible stores and emulators.
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// AWS region.
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Skip objects last modified before this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    modified_after: Option<DateTime<Utc>>,
    /// Skip objects last modified at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    modified_before: Option<DateTime<Utc>>,
    /// SQS queue URL for --destination sqs.
    #[arg(long, value_name = "URL", required_if_eq("destination", "sqs"))]
    sqs_queue_url: Option<String>,
    /// SQS endpoint URL; default: --s3-endpoint (emulators serve both).
    #[arg(long, value_name = "URL")]
    sqs_endpoint: Option<String>,
    /// SendMessageBatch calls in flight at once for --destination sqs.
    #[arg(long, value_name = "N", default_value_t = 8)]
    sqs_in_flight: usize,
}

const EXAMPLES: &str = "Examples:
  pf-discoverer --path data/ --recursive | pf-worker --input stdin --destination stats
  pf-discoverer --path data/ --pattern '*.parquet' > work-items.ndjson
  pf-discoverer --bucket logs --prefix data/ --pattern '**/*.parquet' --s3-endpoint http://localhost:4566 \\
      --destination sqs --sqs-queue-url http://localhost:4566/000000000000/paraflow-work";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DestinationArg {
    /// One JSON work item per line on stdout.
    Stdout,
    /// SendMessageBatch to --sqs-queue-url.
    Sqs,
}

fn main() {
    init_logging();
    let args = Args::parse();
    let code = match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pf-discoverer: error: {e:#}");
            EXIT_FATAL
        }
    };
    std::process::exit(code);
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("`{text}` is neither RFC 3339 (2026-01-31T12:00:00Z) nor YYYY-MM-DD"))
}

fn run(args: &Args) -> anyhow::Result<i32> {
    let s3_settings = AwsSettings::new(args.s3_endpoint.clone(), args.region.clone());
    let (root, source): (String, Box<dyn ObjectSource>) = match (&args.bucket, &args.path) {
        (Some(bucket), _) => {
            let prefix = args.prefix.as_deref().unwrap_or("");
            (
                format!("s3://{bucket}/{prefix}"),
                Box::new(OnDemandS3::new(s3_settings, args.s3_endpoint.is_some())),
            )
        }
        (None, Some(path)) => (
            path.display().to_string(),
            Box::new(ObjectSources::local_only()),
        ),
        (None, None) => anyhow::bail!("one of --path or --bucket is required"),
    };
    let options = DiscoverOptions {
        root,
        pattern: args.pattern.clone(),
        recursive: args.recursive || args.bucket.is_some(),
        min_size: args.min_size,
        max_size: args.max_size,
        modified_after: args.modified_after,
        modified_before: args.modified_before,
        job_id: args.job_id.clone(),
        split_size: args.split_size,
    };
    match args.destination {
        DestinationArg::Stdout => to_stdout(args, source.as_ref(), &options),
        DestinationArg::Sqs => to_sqs(args, source.as_ref(), &options),
    }
}

fn to_stdout(
    args: &Args,
    source: &dyn ObjectSource,
    options: &DiscoverOptions,
) -> anyhow::Result<i32> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = discover(source, options, &mut |item| {
        writeln!(out, "{}", item.to_json()).map_err(|e| PfError::io("stdout", e))
    });
    let flushed = out.flush().map_err(|e| PfError::io("stdout", e));
    let stats = match result.and_then(|s| flushed.map(|()| s)) {
        Ok(stats) => stats,
        // The reader went away (`| head`): not an error of ours.
        Err(PfError::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    };
    eprintln!(
        "pf-discoverer: {} objects listed, {} work items emitted ({} bytes), {} filtered out, {} of unknown format{}",
        stats.listed,
        stats.emitted,
        stats.bytes,
        stats.filtered,
        stats.unknown_format,
        split_note(&stats)
    );
    register_job(args, stats.files, stats.bytes)?;
    Ok(0)
}

fn to_sqs(
    args: &Args,
    source: &dyn ObjectSource,
    options: &DiscoverOptions,
) -> anyhow::Result<i32> {
    let queue_url = args
        .sqs_queue_url
        .clone()
        .context("--destination sqs needs --sqs-queue-url")?;
    let endpoint = args.sqs_endpoint.clone().or(args.s3_endpoint.clone());
    let aws = AwsContext::connect(&AwsSettings::new(endpoint, args.region.clone()))?;
    let mut sender = WorkItemSender::new(aws, queue_url.clone(), args.sqs_in_flight);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let stats = discover(source, options, &mut |item| {
        sender.send(&item)?;
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            tracing::info!(sent = sender.sent(), "sending work items");
        }
        Ok(())
    })?;
    let report = sender.finish()?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "pf-discoverer: {} objects listed, {} matched ({} bytes), {} filtered out, {} of unknown format{}; \
         {} messages sent to {} in {} SendMessageBatch calls ({} entries retried), {} failed, {:.1} s ({:.0} messages/s)",
        stats.listed,
        stats.emitted,
        stats.bytes,
        stats.filtered,
        stats.unknown_format,
        split_note(&stats),
        report.messages,
        queue_url,
        report.calls,
        report.retried,
        report.failed.len(),
        secs,
        report.messages as f64 / secs.max(1e-9),
    );
    for (uri, reason) in report.failed.iter().take(20) {
        eprintln!("pf-discoverer: not sent: {uri}: {reason}");
    }
    let unsent_files: std::collections::HashSet<&str> =
        report.failed.iter().map(|(uri, _)| uri.as_str()).collect();
    register_job(
        args,
        stats.files.saturating_sub(unsent_files.len() as u64),
        stats.bytes,
    )?;
    Ok(if report.failed.is_empty() {
        0
    } else {
        EXIT_FILES_FAILED
    })
}

/// `, N files cut into ranges` when `--split-size` cut any.
fn split_note(stats: &DiscoveryStats) -> String {
    if stats.split_files == 0 {
        return String::new();
    }
    format!(
        ", {} files cut into {} ranges",
        stats.split_files,
        stats.emitted - (stats.files - stats.split_files)
    )
}

/// With `--valkey-url`, records the job's totals for `pf status`.
fn register_job(args: &Args, files: u64, bytes: u64) -> anyhow::Result<()> {
    if let Some(url) = &args.valkey_url {
        let totals = pf_traits::JobTotals { files, bytes };
        pf_coordinator::register_job_totals(url, args.job_id.as_deref(), &totals)
            .context("cannot register the job totals in Valkey")?;
    }
    Ok(())
}
