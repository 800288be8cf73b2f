//! Script-stage throughput on generated transactions. Run with
//! `cargo test -p pf-transform --release --test speed -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float64Type;
use pf_datagen::TransactionGenerator;
use pf_datagen::fixtures::THREE_FIELD_SCRIPT;
use pf_traits::{DocBatch, Transform};
use pf_transform::{ScriptEngine, ScriptLimits, ScriptOptions, ScriptTransformFactory};
use pf_types::WorkItem;

const ROWS: u64 = 1_000_000;
const BATCH_ROWS: usize = 8_192;

#[test]
#[ignore = "speed test: run in release with --ignored --nocapture"]
fn script_touching_three_fields() {
    let engine = ScriptEngine::new(Default::default(), ScriptLimits::default()).unwrap();
    let factory =
        ScriptTransformFactory::new(&engine, THREE_FIELD_SCRIPT, ScriptOptions::default()).unwrap();
    let mut transform = factory.transform();
    let item = WorkItem::from_uri("file:///bench/tx.parquet").unwrap();
    let mut generator = TransactionGenerator::single_file(7, ROWS, BATCH_ROWS);

    // Only the transform is timed, not the generator.
    let mut spent = Duration::ZERO;
    let mut rows = 0u64;
    let mut flagged = 0usize;
    while let Some(batch) = generator.next_batch() {
        let n = batch.num_rows() as u64;
        let input = DocBatch::contiguous(batch, rows);
        let start = Instant::now();
        let out = transform.apply(&item, input).unwrap();
        spent += start.elapsed();
        assert!(out.failures.is_empty());
        assert_eq!(out.docs.num_rows() as u64, n);
        let usd = out.docs.batch.column_by_name("amount_usd").unwrap();
        assert_eq!(usd.as_primitive::<Float64Type>().len() as u64, n);
        flagged += out
            .docs
            .batch
            .column_by_name("flag")
            .map_or(0, |f| f.len() - f.null_count());
        rows += n;
    }
    assert_eq!(rows, ROWS);
    assert!(flagged > 0);
    let secs = spent.as_secs_f64();
    println!(
        "pf-transform script stage: {rows} rows in {secs:.3} s: {:.0} rows/s, {:.0} ns/row \
         (one thread; {flagged} rows flagged)",
        rows as f64 / secs,
        secs * 1e9 / rows as f64
    );
}
