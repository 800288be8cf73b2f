//! `pf`: the operator's tool — `pf demo` runs the whole pipeline in one process with no
//! services; `pf gen` writes synthetic transaction files and `pf gen tables` the
//! enrichment tables (geo, users, threats) their labels are exact against.

mod queue;
mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

use pf_config::{Config, QueueKind, deploy};
use pf_datagen::tables::{
    DEFAULT_GEO_ROWS, DEFAULT_THREAT_ROWS, GEO_FILE, THREATS_FILE, TableOptions, USERS_FILE,
    write_tables,
};
use pf_datagen::{GenOptions, GenReport, account_id, generate};
use pf_discoverer::{DiscoverOptions, discover};
use pf_enrichment::{TableConfig, TableKind};
use pf_queue_memory::MemoryQueue;
use pf_runner::{
    EXIT_FATAL, RunReporting, exit_code, ignore_hangup_during_startup, init_logging, run_deployment,
};
use pf_storage::ObjectSources;
use pf_types::{Compression, FileFormat};
use pf_worker::render_summary;

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
    /// Write synthetic card transactions with planted fraud patterns (`pf gen --out DIR
    /// …`), or the matching enrichment tables (`pf gen tables --out DIR …`).
    ///
    /// Without a subcommand, `pf gen` writes transactions with the options below. The
    /// `tables` subcommand writes geo.parquet, users.parquet and threats.parquet, against
    /// which the geo_mismatch and threat_ip labels of transactions generated with the same
    /// --seed are exact; transaction options go either before a subcommand or not at all.
    Gen(GenArgs),
    /// Progress of a job in the shared Valkey metadata: files, bytes and rows done of
    /// the total, rate, ETA, failed items with their errors, stale items.
    Status(status::StatusArgs),
    /// SQS set-up: `pf queue setup` creates the work queue and its DLQ.
    Queue(queue::QueueArgs),
    /// Dead-letter queue: inspect (without consuming), redrive, purge.
    Dlq(queue::DlqArgs),
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
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct GenArgs {
    /// Write enrichment tables instead of transactions.
    #[command(subcommand)]
    what: Option<GenCommand>,
    /// Transactions to generate in total.
    #[arg(long, default_value_t = DEFAULT_GEN_ROWS)]
    rows: u64,
    /// Files to spread them over.
    #[arg(long, default_value_t = DEFAULT_GEN_FILES)]
    files: usize,
    /// File format.
    #[arg(long, value_enum, default_value = "parquet")]
    format: FormatArg,
    /// Whole-file compression for NDJSON (Parquet always compresses its pages with zstd).
    #[arg(long, value_enum, default_value = "none")]
    compression: CompressionArg,
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR", required = true)]
    out: Option<PathBuf>,
    /// Seed: the same seed writes the same files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Rows per Parquet row group (default: the generator's, 131,072); large groups make
    /// multi-megabyte column chunks, as big Spark or DuckDB exports have.
    #[arg(long, value_name = "ROWS")]
    row_group_rows: Option<usize>,
}

/// `pf gen`'s default row count, shared with `pf gen tables --rows`.
const DEFAULT_GEN_ROWS: u64 = 1_000_000;
/// `pf gen`'s default file count, shared with `pf gen tables --files`.
const DEFAULT_GEN_FILES: usize = 1;

#[derive(Debug, Subcommand)]
enum GenCommand {
    /// Write the enrichment tables for generated transactions: geo.parquet (cidr, key
    /// network), users.parquet (exact, key account_id) and threats.parquet (cidr, key
    /// network).
    ///
    /// Use the transactions' --seed: the users' home countries depend on it. --users
    /// defaults to the accounts a `pf gen` run with the same --rows and --files uses
    /// (20,000 for the defaults), so every account id has a row.
    Tables(TablesArgs),
}

#[derive(Debug, ClapArgs)]
struct TablesArgs {
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Geo table prefixes (at least 49, the layout's /8 and /16 blocks).
    #[arg(long, default_value_t = DEFAULT_GEO_ROWS)]
    geo: usize,
    /// Users (accounts acct-0000000 onwards); default: every account of a `pf gen` run
    /// with --rows and --files.
    #[arg(long)]
    users: Option<u64>,
    /// Threat table entries (at least 6, the anchor prefixes planted threats use).
    #[arg(long, default_value_t = DEFAULT_THREAT_ROWS)]
    threats: usize,
    /// Seed: must be the transactions' seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Rows of the transaction data set the tables are for (sizes the default --users).
    #[arg(long, default_value_t = DEFAULT_GEN_ROWS)]
    rows: u64,
    /// Files of the transaction data set the tables are for (sizes the default --users).
    #[arg(long, default_value_t = DEFAULT_GEN_FILES)]
    files: usize,
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
    ignore_hangup_during_startup();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => demo(a),
        Command::Gen(GenArgs {
            what: Some(GenCommand::Tables(t)),
            ..
        }) => gen_tables(t).map(|_| 0),
        Command::Gen(a) => gen_files(a).map(|_| 0),
        Command::Status(a) => status::status(a),
        Command::Queue(a) => queue::queue(a),
        Command::Dlq(a) => queue::dlq(a),
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
    // Clap requires --out when there is no subcommand.
    let out = a.out.context("--out is required")?;
    let defaults = GenOptions::new(out, a.rows);
    run_generator(&GenOptions {
        files: a.files,
        format: a.format.into(),
        compression: a.compression.into(),
        seed: a.seed,
        row_group_rows: a.row_group_rows.unwrap_or(defaults.row_group_rows),
        ..defaults
    })
}

fn gen_tables(a: TablesArgs) -> anyhow::Result<()> {
    let transactions = GenOptions {
        files: a.files,
        seed: a.seed,
        ..GenOptions::new(&a.out, a.rows)
    };
    let accounts = transactions
        .account_count()
        .context("sizing the users table")?;
    let users = a.users.unwrap_or(accounts);
    if users < accounts {
        eprintln!(
            "pf: warning: --users {users} covers fewer than the {accounts} accounts of {} \
             rows in {} file(s): every row of the others will be a geo mismatch",
            a.rows, a.files
        );
    }
    let options = TableOptions {
        out_dir: a.out,
        geo_rows: a.geo,
        users,
        threat_rows: a.threats,
        seed: a.seed,
    };
    let started = Instant::now();
    let files = write_tables(&options).context("writing enrichment tables")?;
    let secs = started.elapsed().as_secs_f64();
    for f in &files {
        println!(
            "{}\t{} rows\t{:.1} MB",
            f.path.display(),
            f.rows,
            f.bytes as f64 / 1e6
        );
    }
    let covered = match users {
        0 => "no accounts".to_owned(),
        n => format!("{} … {}", account_id(0), account_id(n - 1)),
    };
    eprintln!(
        "wrote {} tables for seed {} in {secs:.2} s; users cover {covered}",
        files.len(),
        options.seed,
    );
    Ok(())
}

/// The shipped fraud rules, so the demo scores transactions without any file on disk.
const DEFAULT_RULES_YAML: &str = include_str!("../../../config/rules/fraud.yaml");

/// Generates enrichment tables consistent with the transactions and points the demo at
/// them and at the shipped rules.
fn use_default_rules(
    config: &mut Config,
    data_dir: &Path,
    gen_options: &GenOptions,
) -> anyhow::Result<()> {
    let tables_dir = data_dir.join("tables");
    let started = Instant::now();
    let written = write_tables(&TableOptions::for_transactions(&tables_dir, gen_options)?)
        .context("generating enrichment tables")?;
    eprintln!(
        "generated enrichment tables ({}) in {:.2} s",
        written
            .iter()
            .map(|f| format!(
                "{} rows in {}",
                f.rows,
                f.path.file_name().unwrap_or_default().to_string_lossy()
            ))
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed().as_secs_f64()
    );
    let rules = data_dir.join("fraud.yaml");
    std::fs::write(&rules, DEFAULT_RULES_YAML)
        .with_context(|| format!("writing {}", rules.display()))?;
    let table = |name: &str, kind, file: &str, key: &str| TableConfig {
        name: name.into(),
        kind,
        path: tables_dir.join(file),
        format: None,
        key: key.into(),
        values: Vec::new(),
    };
    config.transform.rules = Some(rules);
    config.transform.tables = vec![
        table("geo", TableKind::Cidr, GEO_FILE, "network"),
        table("threats", TableKind::Cidr, THREATS_FILE, "network"),
        table("users", TableKind::Exact, USERS_FILE, "account_id"),
    ];
    Ok(())
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
    let transactions_dir = data_dir.join("transactions");
    let gen_options = GenOptions {
        files: a.files,
        format,
        compression,
        seed: a.seed,
        ..GenOptions::new(transactions_dir.clone(), a.rows)
    };
    run_generator(&gen_options)?;
    if config.transform.rules.is_none() && config.transform.tables.is_empty() {
        use_default_rules(&mut config, &data_dir, &gen_options)?;
    }

    let queue = Arc::new(MemoryQueue::with_capacity(usize::MAX));
    let discovered = discover(
        &ObjectSources::local_only(),
        &DiscoverOptions {
            root: transactions_dir.display().to_string(),
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
        discovered.files,
        discovered.bytes as f64 / 1e6,
        transactions_dir.display()
    );

    pf_runner::serve_metrics(&config)?;
    let deployment = deploy(&config, queue.clone())?;
    let files = discovered.files;
    let summary = run_deployment(
        &deployment,
        Box::new(move || Some(files)),
        &RunReporting {
            summary_json: a.summary_json.clone(),
        },
    )?;
    print!("{}", render_summary(&summary, deployment.destination));
    Ok(exit_code(&summary))
}
