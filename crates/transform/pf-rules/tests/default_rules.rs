//! The five default rules on hand-built batches, including nulls and table misses, and
//! the fraud columns, alerts and counts built from them.

mod common;

use arrow::array::{Array, AsArray};
use common::{DAY0, HOUR, SEC, Tx, batch};
use pf_rules::{
    BatchMeta, CompileOptions, CompiledRules, FRAUD_RULES, FRAUD_SCORE, IS_FRAUD, RuleEvaluation,
    append_fraud_columns,
};
use pf_types::Severity;

/// The default rules, with field values in alert details.
fn compile() -> CompiledRules {
    CompiledRules::compile(
        &common::default_rules(),
        &common::small_tables(),
        CompileOptions {
            alert_fields: true,
            ..CompileOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn fired(eval: &RuleEvaluation, rules: &CompiledRules, name: &str) -> Vec<bool> {
    let i = rules.rules().position(|r| r.name == name).unwrap();
    eval.fired[i].iter().map(|v| v.unwrap()).collect()
}

/// A transaction that fires nothing: home IP, normal amount, day time, spaced out.
fn quiet(i: i64) -> Tx {
    Tx {
        account: Some("acct-1"),
        amount: Some(12.5),
        ts: Some(DAY0 + 12 * HOUR + i * 600 * SEC),
        ip: Some("3.1.2.3"),
        label: None,
    }
}

/// Evaluates one row per item, `row(i, item)`, and returns the rows `rule` fired on.
fn fired_per_row<T: Copy>(rule: &str, items: &[T], row: impl Fn(i64, T) -> Tx) -> Vec<bool> {
    let rows: Vec<Tx> = (0..).zip(items).map(|(i, x)| row(i, *x)).collect();
    let (rules, out) = evaluate(&rows);
    fired(&out, &rules, rule)
}

fn evaluate(rows: &[Tx]) -> (CompiledRules, RuleEvaluation) {
    let rules = compile();
    let b = batch(rows);
    let out = rules
        .evaluate(&b, &BatchMeta::contiguous("file:///t.parquet", 100))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    (rules, out)
}

#[test]
fn high_value() {
    let amounts = [
        Some(10_000.0),
        Some(10_000.01),
        None,
        Some(5.0),
        Some(1e9),
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(-20_000.0),
    ];
    let got = fired_per_row("high_value", &amounts, |i, amount| Tx {
        amount,
        ..quiet(i)
    });
    // As in Rhai: a relative-epsilon comparison under which NaN and infinity compare
    // false (`inf > 10000.0` is false).
    assert_eq!(got, [false, true, false, false, true, false, false, false]);
}

#[test]
fn unusual_hour() {
    let times = [
        Some(DAY0 + HOUR - 1),
        Some(DAY0 + HOUR),
        Some(DAY0 + 3 * HOUR),
        Some(DAY0 + 5 * HOUR - 1),
        Some(DAY0 + 5 * HOUR),
        None,
        Some(-22 * HOUR),     // 1969-12-31T02:00Z
        Some(-22 * HOUR - 1), // 01:59:59.999999 the same day
        Some(-24 * HOUR - 1), // 1969-12-30T23:59:59.999999
    ];
    let got = fired_per_row("unusual_hour", &times, |i, ts| Tx {
        ts,
        account: Some(["acct-1", "acct-2", "x"][i as usize % 3]),
        ip: Some(["3.1.2.3", "81.1.1.1", "10.0.0.1"][i as usize % 3]),
        ..quiet(0)
    });
    assert_eq!(
        got,
        [false, true, true, true, false, false, true, true, false]
    );
}

#[test]
fn threat_ip() {
    let ips = [
        Some("95.214.53.17"),
        Some("1.2.3.4"),
        Some("1.2.3.5"),
        None,
        Some("not an ip"),
        Some("::ffff:1.2.3.4"),
        Some(""),
        Some("95.214.56.1"),
    ];
    let got = fired_per_row("threat_ip", &ips, |i, ip| Tx { ip, ..quiet(i) });
    assert_eq!(got, [true, true, false, false, false, true, false, false]);
}

#[test]
fn geo_mismatch_with_nulls_and_missing_table_rows() {
    // (account, ip) → fires?  `()` != "US" is true; `()` != `()` is false.
    let cases = [
        (Some("acct-1"), Some("81.2.3.4"), true),  // US home, GB ip
        (Some("acct-1"), Some("3.2.3.4"), false),  // US, US
        (Some("acct-2"), Some("81.2.3.4"), false), // GB, GB
        (Some("acct-2"), Some("2001:db8::1"), true), // GB, US (IPv6)
        (Some("acct-9"), Some("3.2.3.4"), true),   // unknown account: () vs US
        (Some("acct-1"), Some("10.0.0.1"), true),  // no geo: () vs US
        (Some("acct-9"), Some("10.0.0.1"), false), // () vs ()
        (None, None, false),                       // () vs ()
        (None, Some("3.2.3.4"), true),             // () vs US
        (Some("acct-1"), Some("bogus"), true),     // unparsable IP: no geo
    ];
    let got = fired_per_row("geo_mismatch", &cases, |i, (account, ip, _)| Tx {
        account,
        ip,
        ..quiet(i)
    });
    let want: Vec<bool> = cases.iter().map(|c| c.2).collect();
    assert_eq!(got, want);
}

#[test]
fn rapid_activity_fires_from_the_fifth_event() {
    let mut rows: Vec<Tx> = (0..6)
        .map(|i| Tx {
            ts: Some(DAY0 + 12 * HOUR + i * 12 * SEC),
            ..quiet(0)
        })
        .collect();
    // Another account interleaved does not count towards acct-1.
    rows.insert(
        2,
        Tx {
            account: Some("acct-2"),
            ip: Some("81.1.1.1"),
            ..rows[2].clone()
        },
    );
    let (rules, out) = evaluate(&rows);
    // Rows: 0,12,(acct-2 at 24),24,36,48,60 s: the fifth acct-1 event is at 48 s, and the
    // one at 60 s still has five in [0, 60].
    assert_eq!(
        fired(&out, &rules, "rapid_activity"),
        [false, false, false, false, false, true, true]
    );
    let window_alerts: Vec<&str> = out
        .alerts
        .iter()
        .filter(|a| a.rule == "rapid_activity")
        .map(|a| a.key.as_str())
        .collect();
    let t48 = DAY0 + 12 * HOUR + 48 * SEC;
    let t60 = DAY0 + 12 * HOUR + 60 * SEC;
    assert_eq!(
        window_alerts,
        [
            format!("rapid_activity|acct-1|{t48}"),
            format!("rapid_activity|acct-1|{t60}")
        ]
    );
    let a = out
        .alerts
        .iter()
        .find(|a| a.rule == "rapid_activity")
        .unwrap();
    assert_eq!(a.severity, Severity::Medium);
    assert_eq!(a.row, 105);
    assert_eq!(a.details["count"], 5);
    assert_eq!(a.details["window_end"], "2026-01-01T12:00:48Z");
    assert_eq!(a.details["window_start"], "2026-01-01T11:59:48Z");
}

#[test]
fn scores_columns_alerts_and_counts() {
    let rows = vec![
        // high_value + threat_ip + geo_mismatch (RU ip, US home) = 50 + 60 + 20
        Tx {
            amount: Some(20_000.0),
            ip: Some("95.214.53.17"),
            label: Some("high_value"),
            ..quiet(0)
        },
        // nothing
        quiet(1),
        // unusual_hour only: 10 < 50
        Tx {
            ts: Some(DAY0 + 2 * HOUR),
            label: Some("unusual_hour"),
            ..quiet(2)
        },
        // high_value exactly at threshold 50
        Tx {
            amount: Some(10_000.5),
            label: Some("high_value,unusual_hour"),
            ..quiet(3)
        },
    ];
    let (rules, out) = evaluate(&rows);
    let score: Vec<f64> = out.fraud_score.values().to_vec();
    assert_eq!(score, [130.0, 0.0, 10.0, 50.0]);
    let names: Vec<Option<&str>> = out.fraud_rules.iter().collect();
    assert_eq!(
        names,
        [
            Some("high_value,threat_ip,geo_mismatch"),
            None,
            Some("unusual_hour"),
            Some("high_value")
        ]
    );
    let verdict: Vec<bool> = out.is_fraud.iter().map(Option::unwrap).collect();
    assert_eq!(verdict, [true, false, false, true]);
    assert_eq!(out.fraud_rows(), 2);

    let keys: Vec<&str> = out.alerts.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "high_value|file:///t.parquet|100",
            "high_value|file:///t.parquet|103",
            "unusual_hour|file:///t.parquet|102",
            "threat_ip|file:///t.parquet|100",
            "geo_mismatch|file:///t.parquet|100",
        ]
    );
    let hv = &out.alerts[0];
    assert_eq!(hv.severity, Severity::High);
    assert_eq!(hv.uri, "file:///t.parquet");
    assert_eq!(hv.row, 100);
    assert_eq!(hv.details["score"], 50.0);
    assert_eq!(hv.details["fields"]["amount"], 20_000.0);
    let geo = &out.alerts[4];
    assert_eq!(geo.details["fields"]["source_ip"], "95.214.53.17");
    assert_eq!(geo.details["fields"]["account_id"], "acct-1");
    // By default condition alerts carry no details (the record is uri + row).
    let lean = CompiledRules::compile(
        &common::default_rules(),
        &common::small_tables(),
        CompileOptions::default(),
    )
    .unwrap()
    .evaluate(
        &batch(&rows),
        &BatchMeta::contiguous("file:///t.parquet", 100),
    )
    .unwrap();
    assert_eq!(lean.alerts.len(), out.alerts.len());
    assert!(lean.alerts[0].details.is_null());
    assert_eq!(lean.alerts[0].key, out.alerts[0].key);

    let counts: Vec<(&str, u64, Option<u64>, Option<u64>)> = out
        .counts
        .iter()
        .map(|c| (c.rule.as_str(), c.fired, c.labelled, c.true_positives))
        .collect();
    assert_eq!(
        counts,
        [
            ("high_value", 2, Some(2), Some(2)),
            ("rapid_activity", 0, Some(0), Some(0)),
            ("unusual_hour", 1, Some(2), Some(1)),
            ("threat_ip", 1, Some(0), Some(0)),
            ("geo_mismatch", 1, Some(0), Some(0)),
        ]
    );
    assert_eq!(out.counts[2].precision(), Some(1.0));
    assert_eq!(out.counts[2].recall(), Some(0.5));
    assert_eq!(out.counts[3].recall(), None);

    let b = batch(&rows);
    let scored = append_fraud_columns(&b, &out).unwrap();
    assert_eq!(scored.num_columns(), b.num_columns() + 3);
    assert_eq!(scored.column_by_name(FRAUD_SCORE).unwrap().len(), 4);
    assert_eq!(scored.column_by_name(FRAUD_RULES).unwrap().null_count(), 1);
    assert_eq!(
        scored
            .column_by_name(IS_FRAUD)
            .unwrap()
            .as_boolean()
            .true_count(),
        2
    );
    // Appending again replaces rather than duplicates.
    let again = append_fraud_columns(&scored, &out).unwrap();
    assert_eq!(again.schema(), scored.schema());
    let _ = rules;
}

#[test]
fn ordinals_name_the_rows_and_must_match_the_batch() {
    let rules = compile();
    let rows = vec![
        Tx {
            amount: Some(50_000.0),
            ..quiet(0)
        },
        quiet(1),
    ];
    let b = batch(&rows);
    let ordinals = [7u64, 42];
    let meta = BatchMeta {
        ordinals: Some(&ordinals),
        ..BatchMeta::contiguous("s3://b/k", 0)
    };
    let out = rules.evaluate(&b, &meta).unwrap();
    assert_eq!(out.alerts[0].key, "high_value|s3://b/k|7");
    let short = [1u64];
    let meta = BatchMeta {
        ordinals: Some(&short),
        ..meta
    };
    assert!(rules.evaluate(&b, &meta).is_err());
}

#[test]
fn empty_batches_and_missing_columns() {
    let rules = compile();
    let out = rules
        .evaluate(&batch(&[]), &BatchMeta::contiguous("u", 0))
        .unwrap();
    assert_eq!(out.fraud_score.len(), 0);
    assert!(out.alerts.is_empty());

    // A batch without `amount` and `account_id`: `amount` is a bare variable → every
    // record fails high_value ("variable not found"); the window key is missing too.
    let b = batch(&[quiet(0), quiet(1)]);
    let b = arrow::array::RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
            b.schema().field(5).clone(),
            b.schema().field(6).clone(),
        ])),
        vec![b.column(5).clone(), b.column(6).clone()],
    )
    .unwrap();
    let out = rules.evaluate(&b, &BatchMeta::contiguous("u", 0)).unwrap();
    let messages: Vec<&str> = out.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(out.failed_rows(), [0, 1]);
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("rule high_value: variable `amount` not found")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("rule rapid_activity: window key field `account_id` not found")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("rule geo_mismatch: variable `account_id` not found")),
        "{messages:?}"
    );
    // unusual_hour and threat_ip still evaluate.
    assert_eq!(out.counts[2].errors, 0);
    assert_eq!(out.counts[3].errors, 0);
}

#[test]
fn fraud_rules_with_many_rules() {
    // More rules than fit the per-combination cache: names are joined row by row.
    let mut yaml = String::from("threshold: 3\nrules:\n");
    for i in 0..12 {
        yaml.push_str(&format!(
            "  - name: r{i}\n    condition: amount > {}.0\n    severity: low\n    score: 1\n",
            i * 10
        ));
    }
    let file = pf_rules::RuleFile::from_yaml(&yaml, "x").unwrap();
    let rules =
        CompiledRules::compile(&file, &common::small_tables(), CompileOptions::default()).unwrap();
    let rows: Vec<Tx> = [5.0, 25.0, 1000.0, -1.0]
        .iter()
        .map(|a| Tx {
            amount: Some(*a),
            ..quiet(0)
        })
        .collect();
    let out = rules
        .evaluate(&batch(&rows), &BatchMeta::contiguous("u", 0))
        .unwrap();
    let names: Vec<Option<&str>> = out.fraud_rules.iter().collect();
    assert_eq!(
        names,
        [
            Some("r0"),
            Some("r0,r1,r2"),
            Some("r0,r1,r2,r3,r4,r5,r6,r7,r8,r9,r10,r11"),
            None
        ]
    );
    let verdict: Vec<bool> = out.is_fraud.iter().map(Option::unwrap).collect();
    assert_eq!(verdict, [false, true, true, false]);
}
