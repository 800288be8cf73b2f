//! Throughput of the default rules with realistic tables. Run with
//! `cargo test -p pf-rules --release --test speed -- --ignored --nocapture --test-threads=1`.

mod common;

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use pf_datagen::TransactionGenerator;
use pf_enrichment::EnrichmentTables;
use pf_rules::{BatchMeta, CompileOptions, CompiledRules, RuleFile};

const ROWS: u64 = 2_000_000;

/// Nanoseconds this thread has spent on a CPU (Linux schedstat), if available: unlike wall
/// time it does not count time other processes on a shared machine take from us.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Time of one pass, wall clock and on-CPU.
#[derive(Clone, Copy)]
struct Took {
    wall: Duration,
    cpu: Option<Duration>,
}

/// One pass over every batch with freshly compiled rules (so the window store starts
/// empty, as for a new run); returns the evaluation time and the alerts raised.
fn pass(
    file: &RuleFile,
    tables: &EnrichmentTables,
    batches: &[RecordBatch],
    options: CompileOptions,
) -> (Took, usize, Vec<u64>) {
    let rules = CompiledRules::compile(file, tables, options).unwrap_or_else(|e| panic!("{e}"));
    let mut alerts = 0;
    let mut fired = vec![0u64; rules.rules().len()];
    let mut first_row = 0;
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    for b in batches {
        let out = rules
            .evaluate(
                b,
                &BatchMeta::contiguous("s3://bucket/transactions.parquet", first_row),
            )
            .unwrap();
        first_row += b.num_rows() as u64;
        alerts += out.alerts.len();
        for (f, c) in fired.iter_mut().zip(&out.counts) {
            *f += c.fired;
        }
        std::hint::black_box(&out);
    }
    let wall = start.elapsed();
    let cpu = cpu0
        .zip(thread_cpu_ns())
        .map(|(a, b)| Duration::from_nanos(b.saturating_sub(a)));
    (Took { wall, cpu }, alerts, fired)
}

/// Rows per second (wall clock, on-CPU) of the fastest of several passes: other builds
/// share this machine, and the fastest pass is the best estimate of what the code does
/// on a core of its own.
fn best(
    file: &RuleFile,
    tables: &EnrichmentTables,
    batches: &[RecordBatch],
    options: CompileOptions,
    passes: usize,
) -> (f64, f64, usize, Vec<u64>) {
    let mut wall = Duration::MAX;
    let mut cpu = Duration::MAX;
    let mut last = (0, Vec::new());
    for _ in 0..passes {
        let (took, alerts, fired) = pass(file, tables, batches, options.clone());
        wall = wall.min(took.wall);
        cpu = cpu.min(took.cpu.unwrap_or(took.wall));
        last = (alerts, fired);
    }
    let rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>() as f64;
    (
        rows / wall.as_secs_f64(),
        rows / cpu.as_secs_f64(),
        last.0,
        last.1,
    )
}

#[test]
#[ignore = "speed test; run in release with --ignored"]
fn default_rules_rows_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let tables = common::generated_tables(dir.path(), 500_000, 100_000, 50_000, 42);
    println!("tables generated and loaded in {:.2?}", t0.elapsed());
    let t0 = Instant::now();
    let batches: Vec<RecordBatch> = TransactionGenerator::single_file(42, ROWS, 65_536).collect();
    println!(
        "{ROWS} transactions in {} batches generated in {:.2?}",
        batches.len(),
        t0.elapsed()
    );

    let file = common::default_rules();
    let (rate, cpu_rate, alerts, fired) =
        best(&file, &tables, &batches, CompileOptions::default(), 7);
    let names: Vec<String> = file.rules.iter().map(|r| r.name.clone()).collect();
    println!(
        "default rules, single thread: {:>6.2} M rows/s wall clock, {:>6.2} M rows/s on-CPU ({alerts} alerts)",
        rate / 1e6,
        cpu_rate / 1e6
    );
    for (n, f) in names.iter().zip(&fired) {
        println!(
            "  {n:<15} fired on {f:>8} rows ({:.2} %)",
            *f as f64 * 100.0 / ROWS as f64
        );
    }
    let (with_fields, _, _, _) = best(
        &file,
        &tables,
        &batches,
        CompileOptions {
            alert_fields: true,
            ..CompileOptions::default()
        },
        3,
    );
    println!(
        "  with field values in alert details: {:>6.2} M rows/s",
        with_fields / 1e6
    );

    // Each rule alone, to see where the time goes.
    for (i, name) in names.iter().enumerate() {
        let one = RuleFile {
            threshold: file.threshold,
            rules: vec![file.rules[i].clone()],
        };
        let (r, c, _, _) = best(&one, &tables, &batches, CompileOptions::default(), 3);
        println!(
            "  {name:<15} alone: {:>7.2} M rows/s ({:>7.2} on-CPU)",
            r / 1e6,
            c / 1e6
        );
    }
    if !cfg!(debug_assertions) {
        // On-CPU time, so that other work on a shared machine does not fail the check.
        assert!(
            cpu_rate >= 5e6,
            "{cpu_rate:.0} rows/s is below the 5 M rows/s target"
        );
    }
}

#[test]
#[ignore = "speed test; run in release with --ignored"]
fn window_store_rows_per_second() {
    use pf_datagen::fixtures::observe_rapid_activity;
    use pf_rules::MemoryWindowStore;
    let batches: Vec<RecordBatch> = TransactionGenerator::single_file(42, ROWS, 65_536).collect();
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let store = MemoryWindowStore::new();
        let mut first_row = 0;
        let start = Instant::now();
        for b in &batches {
            let out =
                observe_rapid_activity(&store, "s3://bucket/transactions.parquet", b, first_row)
                    .unwrap();
            first_row += b.num_rows() as u64;
            std::hint::black_box(out);
        }
        best = best.min(start.elapsed());
    }
    println!(
        "MemoryWindowStore::observe: {:>6.2} M rows/s",
        ROWS as f64 / best.as_secs_f64() / 1e6
    );
}

#[test]
#[ignore = "profiling aid: PF_RULES_PROFILE_RULE=<name> limits it to one rule"]
fn profile_default_rules() {
    let dir = tempfile::tempdir().unwrap();
    let tables = common::generated_tables(dir.path(), 500_000, 100_000, 50_000, 42);
    let batches: Vec<RecordBatch> = TransactionGenerator::single_file(42, ROWS, 65_536).collect();
    let mut file = common::default_rules();
    if let Ok(only) = std::env::var("PF_RULES_PROFILE_RULE") {
        file.rules.retain(|r| r.name == only);
    }
    let (r, c, _, _) = best(&file, &tables, &batches, CompileOptions::default(), 15);
    println!("profile: {:.2} M rows/s ({:.2} on-CPU)", r / 1e6, c / 1e6);
}
