//! `pf-discoverer`: lists files (a local directory, or S3) and emits one work item per
//! file, to stdout (for `| pf-worker --input stdin`) or to an SQS queue.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use pf_discoverer::{DiscoverOptions, discover};
use pf_error::PfError;
use pf_runner::{EXIT_FATAL, init_logging};
use pf_storage::ObjectSources;

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
    /// Where work items go.
    #[arg(long, value_enum, default_value = "stdout")]
    destination: DestinationArg,
    /// S3 endpoint URL for S3-compatible stores and emulators.
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// AWS region.
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// SQS queue URL for --destination sqs.
    #[arg(long, value_name = "URL")]
    sqs_queue_url: Option<String>,
    /// SQS endpoint URL.
    #[arg(long, value_name = "URL")]
    sqs_endpoint: Option<String>,
}

const EXAMPLES: &str = "Examples:
  pf-discoverer --path data/ --recursive | pf-worker --input stdin --destination stats
  pf-discoverer --path data/ --pattern '*.parquet' > work-items.ndjson";

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
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pf-discoverer: error: {e:#}");
            EXIT_FATAL
        }
    };
    std::process::exit(code);
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.bucket.is_some() || args.s3_endpoint.is_some() {
        anyhow::bail!("S3 discovery (--bucket) is not part of this build yet; use --path");
    }
    if matches!(args.destination, DestinationArg::Sqs) || args.sqs_queue_url.is_some() {
        anyhow::bail!("--destination sqs is not part of this build yet; use stdout");
    }
    let Some(path) = &args.path else {
        anyhow::bail!("--path is required");
    };
    let options = DiscoverOptions {
        root: path.display().to_string(),
        pattern: args.pattern.clone(),
        recursive: args.recursive,
        min_size: args.min_size,
        max_size: args.max_size,
        job_id: args.job_id.clone(),
    };
    let source = ObjectSources::local_only();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = discover(&source, &options, &mut |item| {
        writeln!(out, "{}", item.to_json()).map_err(|e| PfError::io("stdout", e))
    });
    let flushed = out.flush().map_err(|e| PfError::io("stdout", e));
    let stats = match result.and_then(|s| flushed.map(|()| s)) {
        Ok(stats) => stats,
        // The reader went away (`| head`): not an error of ours.
        Err(PfError::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    eprintln!(
        "pf-discoverer: {} files listed, {} work items emitted ({} bytes), {} filtered out, {} of unknown format",
        stats.listed, stats.emitted, stats.bytes, stats.filtered, stats.unknown_format
    );
    Ok(())
}
