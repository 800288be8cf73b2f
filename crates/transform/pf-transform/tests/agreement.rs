//! The vectorized rule engine (`pf-rules`) and per-record Rhai give identical results:
//! the shipped `config/rules/fraud.yaml` on generated transactions against generated
//! tables, and hand-written conditions on batches of edge values (floats within epsilon
//! of thresholds, NaN, infinities, nulls, every weekday, Date32, Date64, Decimal128).
//!
//! Each rule set is compiled twice through [`pf_transform::compile_rules`]: vectorized
//! (`force_fallback = false`) and with every condition evaluated per record by Rhai
//! (`force_fallback = true`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Date64Array, Decimal128Array, Float32Array,
    Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use pf_datagen::tables::{
    MIN_GEO_ROWS, MIN_THREAT_ROWS, TableOptions, table_configs, write_tables,
};
use pf_datagen::{GenOptions, TransactionGenerator};
use pf_enrichment::EnrichmentTables;
use pf_rules::{BatchMeta, CompiledRules, RuleEvaluation, RuleFile};
use pf_transform::{ScriptEngine, ScriptLimits, compile_rules};

const SEED: u64 = 42;
const BATCH_ROWS: usize = 65_536;

fn fraud_yaml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../config/rules/fraud.yaml")
}

/// Small generated tables for `rows` transactions of seed [`SEED`].
fn generated_tables(dir: &Path, rows: u64) -> EnrichmentTables {
    let opts = TableOptions {
        out_dir: dir.to_path_buf(),
        geo_rows: MIN_GEO_ROWS.max(2_000),
        users: GenOptions::new(dir, rows).account_count().unwrap(),
        threat_rows: MIN_THREAT_ROWS.max(500),
        seed: SEED,
    };
    write_tables(&opts).unwrap();
    EnrichmentTables::load(&table_configs(dir)).unwrap()
}

/// The two compilations: vectorized, and Rhai per record.
fn both(file: &RuleFile, tables: &EnrichmentTables) -> (CompiledRules, CompiledRules) {
    let engine = ScriptEngine::new(tables.clone(), ScriptLimits::default()).unwrap();
    let vector = compile_rules(file, &engine, tables, false).unwrap();
    let rhai = compile_rules(file, &engine, tables, true).unwrap();
    (vector, rhai)
}

/// Per rule, the rows that failed, ascending.
fn errors_by_rule(eval: &RuleEvaluation, rules: usize) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); rules];
    for e in &eval.errors {
        out[e.rule].push(e.row);
    }
    for v in &mut out {
        v.sort_unstable();
    }
    out
}

fn first_difference(a: &BooleanArray, b: &BooleanArray) -> Option<usize> {
    (0..a.len().max(b.len())).find(|&i| {
        let get = |x: &BooleanArray| (i < x.len() && x.is_valid(i)).then(|| x.value(i));
        get(a) != get(b)
    })
}

/// Asserts both evaluations agree on every output; `what` names the batch.
fn assert_same(
    what: &str,
    batch: &RecordBatch,
    compiled: &CompiledRules,
    v: &RuleEvaluation,
    r: &RuleEvaluation,
) {
    let names: Vec<String> = compiled.rules().map(|i| i.name.clone()).collect();
    assert_eq!(v.fired.len(), r.fired.len(), "{what}");
    for (k, (a, b)) in v.fired.iter().zip(&r.fired).enumerate() {
        if let Some(row) = first_difference(a, b) {
            let cols: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(f, c)| {
                    let f_ = arrow::util::display::ArrayFormatter::try_new(
                        c.as_ref(),
                        &Default::default(),
                    )
                    .unwrap();
                    format!("{}={}", f.name(), f_.value(row))
                })
                .collect();
            panic!(
                "{what}: rule `{}` differs at row {row} (vectorized {}, rhai {}): {}",
                names[k],
                a.value(row),
                b.value(row),
                cols.join(", ")
            );
        }
    }
    assert_eq!(
        errors_by_rule(v, names.len()),
        errors_by_rule(r, names.len()),
        "{what}: failed rows per rule"
    );
    assert_eq!(v.fraud_score, r.fraud_score, "{what}: fraud_score");
    assert_eq!(v.fraud_rules, r.fraud_rules, "{what}: fraud_rules");
    assert_eq!(v.is_fraud, r.is_fraud, "{what}: is_fraud");
}

/// The shipped rules on `rows` generated transactions: identical on every row.
fn shipped_rules_agree(rows: u64) {
    let dir = tempfile::tempdir().unwrap();
    let tables = generated_tables(dir.path(), rows);
    let file = RuleFile::load(&fraud_yaml()).unwrap();
    let (vector, rhai) = both(&file, &tables);
    for info in vector.rules() {
        if info.name != "rapid_activity" {
            assert_eq!(
                vector.is_vectorized(&info.name),
                Some(true),
                "{} must stay vectorized",
                info.name
            );
        }
    }
    let mut generator = TransactionGenerator::single_file(SEED, rows, BATCH_ROWS);
    let uri = "file:///agreement/tx.parquet";
    let (mut seen, mut fraud, mut fired_rules) = (0u64, 0usize, vec![0usize; file.rules.len()]);
    while let Some(batch) = generator.next_batch() {
        let meta = BatchMeta::contiguous(uri, seen);
        let v = vector.evaluate(&batch, &meta).unwrap();
        let r = rhai.evaluate(&batch, &meta).unwrap();
        assert_same(&format!("rows {seen}.."), &batch, &vector, &v, &r);
        assert!(v.errors.is_empty(), "{:?}", v.errors.first());
        fraud += v.fraud_rows();
        for (n, f) in fired_rules.iter_mut().zip(&v.fired) {
            *n += f.true_count();
        }
        seen += batch.num_rows() as u64;
    }
    assert_eq!(seen, rows);
    // The comparison is only meaningful if the rules actually fire.
    assert!(fraud > 0);
    assert!(
        fired_rules.iter().all(|&n| n > 0),
        "every rule fires somewhere: {fired_rules:?}"
    );
}

#[test]
fn shipped_rules_agree_on_50k_generated_rows() {
    shipped_rules_agree(50_000);
}

#[test]
#[ignore = "about 85 s in debug builds (Rhai per record on 1M rows); run with --ignored"]
fn shipped_rules_agree_on_1m_generated_rows() {
    shipped_rules_agree(1_000_000);
}

// ----- Edge values ------------------------------------------------------------------

const N: usize = 32;

/// `values` repeated to `N` rows.
fn cycle<T: Clone>(values: &[T]) -> Vec<T> {
    values.iter().cycle().take(N).cloned().collect()
}

fn edge_batch() -> RecordBatch {
    let floats = [
        Some(10_000.0),
        Some(10_000.000_000_000_002),
        Some(10_000.000_000_000_004),
        Some(9_999.999_999_999_998),
        Some(10_000.01),
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(f64::NEG_INFINITY),
        None,
        Some(0.0),
        Some(-0.0),
        Some(1e-300),
        Some(1e-17),
        Some(1e-15),
        Some(0.1 + 0.2),
        Some(0.3),
        Some(1e20),
        Some(1e20 + 1e4),
        Some(-5.5),
        Some(f64::MAX),
        Some(f64::MIN_POSITIVE),
        Some(5e-324),
        Some(9_007_199_254_740_992.0),
        Some(1.000_000_000_000_000_2),
        Some(1.0),
    ];
    let f = cycle(&floats);
    let mut g = f.clone();
    g.rotate_left(3);
    let ints = [
        Some(10_000),
        Some(9_999),
        Some(10_001),
        Some(0),
        Some(-1),
        None,
        Some(i64::MAX),
        Some(i64::MIN),
        Some(9_007_199_254_740_993),
        Some(1),
        Some(20_454),
    ];
    let day = 86_400_000_000i64;
    let hour = 3_600_000_000i64;
    // 2026-01-05 is a Monday; 14 consecutive days at varying times, plus the epoch,
    // before it, and null.
    let monday = 20_458 * day;
    let mut ts: Vec<Option<i64>> = (0..14)
        .map(|d| Some(monday + d * day + (d % 6) * hour - (d % 2)))
        .collect();
    ts.extend([
        Some(0),
        Some(-1),
        Some(-day * 365 - 1),
        None,
        Some(monday + hour - 1),
        Some(monday + 5 * hour),
    ]);
    let strings = [
        Some("2026-01-05T03:00:00Z"),
        Some(" 2026-01-06T01:30:00+02:00 "),
        Some("2026-01-11T23:59:59.999999Z"),
        Some("not a time"),
        None,
        Some(""),
        Some("2026-01-07T04:59:59-05:00"),
    ];
    let decimals = [
        Some(1_000_000i128),
        Some(1_000_001),
        Some(999_999),
        None,
        Some(0),
        Some(-1),
        Some(30),
        Some(10_000),
        Some(99_999_999_999),
    ];
    let dates = [Some(0), Some(1), Some(-1), Some(20_454), None, Some(20_458)];
    let date64 = [Some(0i64), Some(86_400_000), None, Some(1_767_225_600_000)];
    let f32s = [
        Some(0.1f32),
        Some(0.3),
        Some(f32::NAN),
        None,
        Some(1e-8),
        Some(10_000.0),
    ];
    common::batch(vec![
        ("f", Arc::new(Float64Array::from(f)) as ArrayRef),
        ("g", Arc::new(Float64Array::from(g))),
        ("i", Arc::new(Int64Array::from(cycle(&ints)))),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(cycle(&ts)).with_timezone("UTC")),
        ),
        ("s", Arc::new(StringArray::from(cycle(&strings)))),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(cycle(&decimals))
                    .with_precision_and_scale(14, 2)
                    .unwrap(),
            ),
        ),
        ("d32", Arc::new(Date32Array::from(cycle(&dates)))),
        ("d64", Arc::new(Date64Array::from(cycle(&date64)))),
        ("f32", Arc::new(Float32Array::from(cycle(&f32s)))),
    ])
}

fn edge_conditions() -> Vec<String> {
    let mut c = Vec::new();
    for op in ["==", "!=", "<", "<=", ">", ">="] {
        for (a, b) in [
            ("f", "10000.0"),
            ("f", "10000"),
            ("10000.0", "f"),
            ("f", "g"),
            ("i", "f"),
            ("f", "i"),
            ("f", "0.0"),
            ("f", "0"),
            ("f", "-0.0"),
            ("f", "0.3"),
            ("f", "1e20"),
            ("f", "()"),
            ("i", "10000"),
            ("i", "10000.0"),
            ("i", "9007199254740992"),
            ("dec", "10000.0"),
            ("dec", "10000"),
            ("dec", "0.3"),
            ("dec", "f"),
            ("dec", "i"),
            ("f32", "0.1"),
            ("f32", "f"),
            ("d32", "20454"),
            ("d32", "0"),
            ("d32", "i"),
            ("d64", "d64"),
            ("d64", "\"1970-01-02\""),
            ("f + 0.0", "10000.0"),
            ("f * 1.0", "g"),
            ("f - g", "0.0"),
            ("i + 1", "f"),
        ] {
            c.push(format!("{a} {op} {b}"));
        }
    }
    for d in 0..7 {
        c.push(format!("day_of_week(ts) == {d}"));
        c.push(format!("day_of_week(s) == {d}"));
    }
    c.extend(
        [
            "day_of_week(ts) == ()",
            "day_of_week(ts) >= 5",
            "hour(ts) >= 1 && hour(ts) < 5",
            "minute(ts) == 59",
            "hour(s) == 3",
            "hour(s) == ()",
            "hour(d32) == 0",
            "day_of_week(d32) == 3",
            "d64 == ()",
            "hour(d64) == ()",
            "f in [10000.0, 0, 0.3, 1e20]",
            "dec in [10000.0, 100, 0.3]",
            "i in [10000, 9999.999999999998]",
            "record.f > 10000.0",
            "record.dec > 10000.0",
            "record.missing == ()",
            "!(f > 10000.0) && i >= 0",
            "f > 10000.0 || dec > 10000.0",
        ]
        .map(String::from),
    );
    c
}

fn rule_file(conditions: &[String]) -> RuleFile {
    let mut yaml = String::from("threshold: 3\nrules:\n");
    for (k, cond) in conditions.iter().enumerate() {
        yaml.push_str(&format!(
            "  - name: r{k}\n    condition: '{}'\n    severity: low\n    score: 1\n",
            cond.replace('\'', "''")
        ));
    }
    RuleFile::from_yaml(&yaml, "edge.yaml").unwrap()
}

#[test]
fn edge_values_agree() {
    let conditions = edge_conditions();
    let file = rule_file(&conditions);
    let tables = common::tables();
    let (vector, rhai) = both(&file, &tables);
    // The kernels, not the fallback, must be what is compared.
    for info in vector.rules() {
        assert_eq!(
            vector.is_vectorized(&info.name),
            Some(true),
            "`{}` should vectorize",
            conditions[info.index]
        );
    }
    let batch = edge_batch();
    let meta = BatchMeta::contiguous("file:///edge", 0);
    let v = vector.evaluate(&batch, &meta).unwrap();
    let r = rhai.evaluate(&batch, &meta).unwrap();
    let names: Vec<String> = conditions
        .iter()
        .enumerate()
        .map(|(k, c)| format!("r{k}: {c}"))
        .collect();
    // Name the condition, not just the rule, on failure.
    for (k, (a, b)) in v.fired.iter().zip(&r.fired).enumerate() {
        assert!(
            first_difference(a, b).is_none(),
            "{}: vectorized {:?} vs rhai {:?}",
            names[k],
            a.iter().collect::<Vec<_>>(),
            b.iter().collect::<Vec<_>>()
        );
    }
    assert_same("edge batch", &batch, &vector, &v, &r);
    // A sliced batch (offsets into the buffers) too.
    let sliced = batch.slice(5, N - 9);
    let v = vector.evaluate(&sliced, &meta).unwrap();
    let r = rhai.evaluate(&sliced, &meta).unwrap();
    assert_same("sliced edge batch", &sliced, &vector, &v, &r);
}

/// Pins down the decisions the two sides now share, on one row each.
#[test]
fn shared_representations() {
    let cases: Vec<(&str, ArrayRef, &str, bool)> = vec![
        (
            "dec",
            Arc::new(
                Decimal128Array::from(vec![Some(1_000_001i128)])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            "dec > 10000.0 && dec < 10000.02",
            true,
        ),
        (
            "d",
            Arc::new(Date32Array::from(vec![Some(20_454)])),
            "d == 20454",
            true,
        ),
        (
            "ts",
            // 2026-01-05T00:00:00Z, a Monday.
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(20_458 * 86_400_000_000)])
                    .with_timezone("UTC"),
            ),
            "day_of_week(ts) == 0",
            true,
        ),
        (
            "f",
            Arc::new(Float64Array::from(vec![Some(10_000.000_000_000_002)])),
            "f == 10000.0 && !(f > 10000.0)",
            true,
        ),
        (
            "f",
            Arc::new(Float64Array::from(vec![Some(f64::NAN)])),
            "f != f",
            false,
        ),
    ];
    for (name, array, cond, want) in cases {
        let file = rule_file(&[cond.to_string()]);
        let tables = common::tables();
        let (vector, rhai) = both(&file, &tables);
        assert_eq!(vector.is_vectorized("r0"), Some(true), "{cond}");
        let batch = common::batch(vec![(name, array)]);
        let meta = BatchMeta::contiguous("file:///one", 0);
        for (path, rules) in [("vectorized", &vector), ("rhai", &rhai)] {
            let eval = rules.evaluate(&batch, &meta).unwrap();
            assert!(eval.errors.is_empty(), "{cond} ({path}): {:?}", eval.errors);
            assert_eq!(eval.fired[0].value(0), want, "{cond} ({path})");
        }
    }
}
