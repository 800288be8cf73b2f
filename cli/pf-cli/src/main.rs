//! `pf`: the operator's tool — `pf demo` runs the whole pipeline in one process with no
//! services; `pf gen` writes synthetic transaction files.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

use pf_config::{Config, QueueKind};
use pf_datagen::{GenOptions, GenReport, generate};
use pf_discoverer::{DiscoverOptions, discover};
use pf_queue_memory::MemoryQueue;
use pf_runner::{EXIT_FATAL, RunReporting, exit_code, init_logging, run_deployment};
use pf_storage::ObjectSources;
use pf_types::{Compression, FileFormat};
use pf_worker::{deploy, render_summary};

/// Paraflow operator tool.
#[derive(Debug, Parser)]
#[command(name = "pf", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate transactions, discover them and process them, all in this process.
    ///
    /// The embedded default: local files, in-memory queue and metadata, all cores.
    Demo(DemoArgs),
    /// Write synthetic card transactions with planted fraud patterns.
    Gen(GenArgs),
}

#[derive(Debug, ClapArgs)]
struct DemoArgs {
    /// Transactions to generate.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Files to spread them over.
    #[arg(long, default_value_t = 8)]
    files: usize,
    /// File format.
    #[arg(long, value_enum, default_value = "parquet")]
    format: FormatArg,
    /// Pipeline threads; default: all cores.
    #[arg(long, short = 't')]
    threads: Option<usize>,
    /// Seed for the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep the generated files in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration to run with (default: config/demo.yaml's built-in equivalent).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also write the run summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
}

#[derive(Debug, ClapArgs)]
struct GenArgs {
    /// Transactions to generate in total.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Files to spread them over.
    #[arg(long, default_value_t = 1)]
    files: usize,
    /// File format.
    #[arg(long, value_enum, default_value = "parquet")]
    format: FormatArg,
    /// Whole-file compression for NDJSON (Parquet always compresses its pages with zstd).
    #[arg(long, value_enum, default_value = "none")]
    compression: CompressionArg,
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Seed: the same seed writes the same files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Parquet,
    Ndjson,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompressionArg {
    None,
    Gzip,
    Zstd,
}

impl From<FormatArg> for FileFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Parquet => FileFormat::Parquet,
            FormatArg::Ndjson => FileFormat::Ndjson,
        }
    }
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
        }
    }
}

fn main() {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => demo(a),
        Command::Gen(a) => gen_files(a).map(|_| 0),
    };
    let code = result.unwrap_or_else(|e| {
        eprintln!("pf: error: {e:#}");
        EXIT_FATAL
    });
    std::process::exit(code);
}

fn run_generator(options: &GenOptions) -> anyhow::Result<GenReport> {
    let started = Instant::now();
    let report = generate(options).context("generating transactions")?;
    let secs = started.elapsed().as_secs_f64();
    let bytes: u64 = report.files.iter().map(|f| f.bytes).sum();
    eprintln!(
        "generated {} rows in {} files ({:.1} MB) in {secs:.2} s: {:.0} rows/s; planted: {}",
        report.rows,
        report.files.len(),
        bytes as f64 / 1e6,
        report.rows as f64 / secs.max(1e-9),
        report
            .planted
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(report)
}

fn gen_files(a: GenArgs) -> anyhow::Result<GenReport> {
    run_generator(&GenOptions {
        files: a.files,
        format: a.format.into(),
        compression: a.compression.into(),
        seed: a.seed,
        ..GenOptions::new(a.out, a.rows)
    })
}

fn demo(a: DemoArgs) -> anyhow::Result<i32> {
    let mut config = match &a.config {
        Some(path) => Config::load(path)?,
        None => Config::demo()?,
    };
    config.queue.kind = QueueKind::Memory;
    config.worker.threads = a.threads.or(config.worker.threads);
    config.validate()?;

    let temp;
    let data_dir = match &a.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir().context("creating a temporary data directory")?;
            temp.path().to_path_buf()
        }
    };
    let format: FileFormat = a.format.into();
    let compression = match format {
        FileFormat::Parquet => Compression::None,
        FileFormat::Ndjson => Compression::Gzip,
    };
    run_generator(&GenOptions {
        files: a.files,
        format,
        compression,
        seed: a.seed,
        ..GenOptions::new(data_dir.clone(), a.rows)
    })?;

    let queue = Arc::new(MemoryQueue::with_capacity(usize::MAX));
    let discovered = discover(
        &ObjectSources::local_only(),
        &DiscoverOptions {
            root: data_dir.display().to_string(),
            recursive: true,
            job_id: Some("demo".into()),
            ..Default::default()
        },
        &mut |item| {
            queue.push(item);
            Ok(())
        },
    )?;
    queue.close();
    eprintln!(
        "discovered {} files ({:.1} MB) in {}",
        discovered.emitted,
        discovered.bytes as f64 / 1e6,
        data_dir.display()
    );

    let deployment = deploy(&config, queue.clone())?;
    let files = discovered.emitted;
    let summary = run_deployment(
        &deployment,
        Box::new(move || Some(files)),
        &RunReporting {
            metrics_addr: config.metrics.socket_addr()?,
            summary_json: a.summary_json.clone(),
        },
    )?;
    print!("{}", render_summary(&summary, deployment.destination));
    Ok(exit_code(&summary))
}
