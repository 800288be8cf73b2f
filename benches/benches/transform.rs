//! Transform-stage throughput on generated transactions, one thread: the shipped fraud
//! rules with realistic enrichment tables (vectorized), and a Rhai script touching three
//! fields (per record). Criterion reports rows/s (elements) and MB/s of Arrow data.
//!
//! `cargo bench -p pf-benches --bench transform`

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use pf_datagen::fixtures::THREE_FIELD_SCRIPT;
use pf_datagen::tables::{TableOptions, table_configs, write_tables};
use pf_datagen::{GenOptions, TransactionGenerator};
use pf_enrichment::TableConfig;
use pf_traits::{DocBatch, TransformFactory};
use pf_transform::{TransformConfig, TransformStage};
use pf_types::WorkItem;

const ROWS: u64 = 500_000;
const BATCH_ROWS: usize = 65_536;
const SEED: u64 = 7;

fn batches() -> Vec<RecordBatch> {
    let mut generator = TransactionGenerator::single_file(SEED, ROWS, BATCH_ROWS);
    std::iter::from_fn(|| generator.next_batch()).collect()
}

/// The generator's enrichment tables at their default sizes (500k geo networks, one row
/// per account, 50k threat networks), written once per bench run.
fn tables(dir: &Path) -> Vec<TableConfig> {
    let mut transactions = GenOptions::new(dir, ROWS);
    transactions.seed = SEED;
    transactions.files = 1;
    write_tables(&TableOptions::for_transactions(dir, &transactions).expect("table sizes"))
        .expect("tables");
    table_configs(dir)
}

fn run(c: &mut Criterion, name: &str, source: TransformConfig, input: &[RecordBatch]) {
    let stage = TransformStage::load(source).expect("transform stage");
    let item = WorkItem::from_uri("file:///bench/transactions.parquet").unwrap();
    let bytes: usize = input.iter().map(RecordBatch::get_array_memory_size).sum();
    let pass = || {
        // A fresh transform per pass: window state starts empty, as in a new run.
        let mut t = stage.create().unwrap();
        let mut first = 0;
        for batch in input {
            let out = t
                .apply(&item, DocBatch::contiguous(batch.clone(), first))
                .unwrap();
            first += batch.num_rows() as u64;
            std::hint::black_box(out);
        }
    };
    let mut group = c.benchmark_group("transform");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS));
    group.bench_function(format!("{name}_rows"), |b| b.iter(pass));
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(format!("{name}_bytes"), |b| b.iter(pass));
    group.finish();
}

fn config_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn fraud_rules(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let input = batches();
    let source = TransformConfig {
        rules: Some(config_path("config/rules/fraud.yaml")),
        tables: tables(dir.path()),
        ..TransformConfig::default()
    };
    run(c, "default_rules_with_tables", source, &input);
}

fn script(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("three_fields.rhai");
    std::fs::write(&path, THREE_FIELD_SCRIPT).unwrap();
    let input = batches();
    let source = TransformConfig {
        script: Some(path),
        ..TransformConfig::default()
    };
    run(c, "script_three_fields", source, &input);
}

criterion_group!(benches, fraud_rules, script);
criterion_main!(benches);
