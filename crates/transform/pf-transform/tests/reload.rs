//! Reloading the transform stage: a good new version is picked up at the next batch, a
//! bad one is rejected and the running version stays.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};

use pf_traits::{DocBatch, TransformFactory};
use pf_transform::{TransformConfig, TransformStage};
use pf_types::WorkItem;

fn rules(threshold: &str) -> String {
    format!(
        "threshold: 10\nrules:\n  - name: big\n    condition: \"amount > {threshold}\"\n    severity: high\n    score: 10\n"
    )
}

fn fraud_flags(out: &pf_traits::TransformOutput) -> Vec<bool> {
    let col = out
        .docs
        .batch
        .column_by_name("is_fraud")
        .expect("is_fraud column");
    let flags = col.as_any().downcast_ref::<BooleanArray>().expect("bool");
    (0..flags.len()).map(|i| flags.value(i)).collect()
}

#[test]
fn reload_swaps_good_versions_and_rejects_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fraud.yaml");
    std::fs::write(&path, rules("100.0")).unwrap();
    let stage = TransformStage::load(TransformConfig {
        rules: Some(path.clone()),
        ..TransformConfig::default()
    })
    .unwrap();
    assert_eq!(stage.source_files(), vec![path.clone()]);
    let schema = Arc::new(Schema::new(vec![Field::new(
        "amount",
        DataType::Float64,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(Float64Array::from(vec![50.0, 500.0, 5000.0]))],
    )
    .unwrap();
    let item = WorkItem::from_uri("/t.parquet").unwrap();
    let mut transform = stage.create().unwrap();
    let run = |t: &mut Box<dyn pf_traits::Transform>| {
        fraud_flags(
            &t.apply(&item, DocBatch::contiguous(batch.clone(), 0))
                .unwrap(),
        )
    };
    assert_eq!(run(&mut transform), [false, true, true]);

    std::fs::write(&path, rules("1000.0")).unwrap();
    stage.reload().unwrap();
    // The thread built before the reload picks the new version up at its next batch.
    assert_eq!(run(&mut transform), [false, false, true]);

    std::fs::write(&path, "threshold: 10\nrules:\n  - name: big\n    condition: \"amount >\"\n    severity: high\n    score: 10\n").unwrap();
    let err = stage.reload().unwrap_err();
    assert!(
        err.to_string().contains("big"),
        "the error names the rule: {err}"
    );
    assert_eq!(
        run(&mut transform),
        [false, false, true],
        "the running version stays"
    );
    assert_eq!(stage.tally().snapshot()["big"].1.fired, 4);
}

#[test]
fn a_record_failing_several_rules_is_one_failed_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fraud.yaml");
    std::fs::write(
        &path,
        "threshold: 10\nrules:\n  - name: big\n    condition: \"amount > 100.0\"\n    severity: high\n    score: 10\n  - name: negative\n    condition: \"amount < 0.0\"\n    severity: low\n    score: 1\n",
    )
    .unwrap();
    let stage = TransformStage::load(TransformConfig {
        rules: Some(path),
        ..TransformConfig::default()
    })
    .unwrap();
    // No `amount` column: every record fails both rules.
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0]))],
    )
    .unwrap();
    let item = WorkItem::from_uri("/t.parquet").unwrap();
    let out = stage
        .create()
        .unwrap()
        .apply(&item, DocBatch::contiguous(batch, 10))
        .unwrap();
    assert_eq!(out.docs.batch.num_rows(), 0);
    assert_eq!(
        out.failures.len(),
        3,
        "one failure per record: {:?}",
        out.failures
    );
    for (f, row) in out.failures.iter().zip(10..) {
        assert_eq!(f.row, Some(row));
        assert!(
            f.error.contains("rule big:") && f.error.contains("rule negative:"),
            "{}",
            f.error
        );
    }
}
