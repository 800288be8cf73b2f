//! The built-ins and the script stage, on small hand-built batches.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray,
    Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, TimeUnit};
use common::{batch, engine, engine_with, strings};
use pf_error::{ErrorClass, PfError};
use pf_traits::{DocBatch, Transform, TransformFactory};
use pf_transform::rhai::{Dynamic, Map};
use pf_transform::{ScriptEngine, ScriptLimits, ScriptOptions, ScriptTransformFactory};
use pf_types::{Severity, Stage, WorkItem};

fn eval(engine: &ScriptEngine, script: &str) -> Result<Dynamic, String> {
    engine
        .engine()
        .eval::<Dynamic>(script)
        .map_err(|e| e.to_string())
}

fn eval_ok(engine: &ScriptEngine, script: &str) -> Dynamic {
    eval(engine, script).unwrap_or_else(|e| panic!("{script}: {e}"))
}

fn truth(engine: &ScriptEngine, script: &str) -> bool {
    eval_ok(engine, script)
        .as_bool()
        .unwrap_or_else(|t| panic!("{script}: got {t}"))
}

fn item() -> WorkItem {
    WorkItem::from_uri("s3://bucket/tx.parquet").unwrap()
}

fn factory(script: &str) -> ScriptTransformFactory {
    factory_with(script, ScriptOptions::default())
}

fn factory_with(script: &str, options: ScriptOptions) -> ScriptTransformFactory {
    ScriptTransformFactory::new(&engine(), script, options).unwrap_or_else(|e| panic!("{e}"))
}

fn run(script: &str, input: RecordBatch) -> pf_traits::TransformOutput {
    apply(&factory(script), input)
}

/// A new transform of `factory` applied to `input`, as the first batch of [`item`].
fn apply(factory: &ScriptTransformFactory, input: RecordBatch) -> pf_traits::TransformOutput {
    factory
        .transform()
        .apply(&item(), DocBatch::contiguous(input, 0))
        .unwrap()
}

fn col<'a>(out: &'a pf_traits::TransformOutput, name: &str) -> &'a ArrayRef {
    out.docs
        .batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}: {:?}", out.docs.batch.schema()))
}

/// Column `name` of the output as optional strings.
fn text_column<'a>(out: &'a pf_traits::TransformOutput, name: &str) -> Vec<Option<&'a str>> {
    col(out, name).as_string::<i32>().iter().collect()
}

fn config_message(err: PfError) -> (String, String) {
    match err {
        PfError::Config { key, message } => (key, message),
        other => panic!("expected a config error, got {other}"),
    }
}

// ---------------------------------------------------------------- lookups

#[test]
fn lookup_exact_hit_miss_and_unit_key() {
    let e = engine();
    assert_eq!(
        eval_ok(&e, r#"lookup("users", "acct-2").home_country"#).to_string(),
        "FR"
    );
    let m = eval_ok(&e, r#"lookup("users", "acct-2")"#).cast::<Map>();
    assert_eq!(m.len(), 1);
    // Non-string keys match by their text.
    assert_eq!(
        eval_ok(&e, r#"lookup("users", 42).home_country"#).to_string(),
        "IT"
    );
    assert!(truth(&e, r#"lookup("users", "nobody") == #{}"#));
    assert!(truth(&e, r#"lookup("users", "nobody").home_country == ()"#));
    assert!(truth(&e, r#"lookup("users", ()) == #{}"#));
    assert!(
        truth(&e, r#"lookup("users", "ACCT-1").len() == 0"#),
        "exact match is case-sensitive"
    );
    let err = eval(&e, r#"lookup("users", 1.5)"#).unwrap_err();
    assert!(
        err.contains("the key must be a string, an integer or ()"),
        "{err}"
    );
    assert!(eval(&e, r#"in_table("users", true)"#).is_err());
}

#[test]
fn lookup_cidr_longest_prefix_invalid_ip_and_types() {
    let e = engine();
    assert!(truth(
        &e,
        r#"lookup_cidr("geo", "10.1.2.3").country == "GB""#
    ));
    assert!(truth(
        &e,
        r#"lookup_cidr("geo", "10.2.2.3").country == "US""#
    ));
    // Int64 value columns stay integers; a null value is ().
    assert!(truth(&e, r#"lookup_cidr("geo", "10.2.2.3").asn == 100"#));
    assert!(truth(
        &e,
        r#"type_of(lookup_cidr("geo", "10.2.2.3").asn) == "i64""#
    ));
    assert!(truth(&e, r#"lookup_cidr("geo", "10.1.2.3").asn == ()"#));
    assert!(truth(
        &e,
        r#"lookup_cidr("geo", "2001:db8::1").country == "DE""#
    ));
    for bad in ["999.1.1.1", "", "1.2.3", "10.1.2.3 ", "not an ip"] {
        assert!(
            truth(&e, &format!(r#"lookup_cidr("geo", "{bad}") == #{{}}"#)),
            "{bad:?}"
        );
    }
    assert!(truth(&e, r#"lookup_cidr("geo", ()) == #{}"#));
    assert!(truth(&e, r#"lookup_cidr("geo", 12) == #{}"#));
    assert!(truth(&e, r#"lookup_cidr("geo", "11.0.0.1").country == ()"#));
    // lookup() works on CIDR tables too.
    assert!(truth(&e, r#"lookup("geo", "10.1.2.3").country == "GB""#));
}

#[test]
fn in_table_on_both_kinds() {
    let e = engine();
    assert!(truth(&e, r#"in_table("threats", "66.6.6.66")"#));
    assert!(!truth(&e, r#"in_table("threats", "66.6.7.66")"#));
    assert!(!truth(&e, r#"in_table("threats", "garbage")"#));
    assert!(!truth(&e, r#"in_table("threats", ())"#));
    assert!(truth(&e, r#"in_table("users", "acct-1")"#));
    assert!(!truth(&e, r#"in_table("users", "acct-9")"#));
}

#[test]
fn unknown_tables_and_wrong_kinds_are_errors() {
    let e = engine();
    let err = eval(&e, r#"let t = "nope"; lookup(t, "x")"#).unwrap_err();
    assert!(err.contains("unknown enrichment table `nope`"), "{err}");
    assert!(err.contains("geo, threats, users"), "{err}");
    let err = eval(&e, r#"let t = "users"; lookup_cidr(t, "1.2.3.4")"#).unwrap_err();
    assert!(err.contains("exact-key table"), "{err}");

    // String literals are checked at start-up, with the literal's position.
    let err = ScriptTransformFactory::new(
        &e,
        "fn transform(record) {\n    record.c = lookup(\"gep\", record.ip).country;\n    record\n}",
        ScriptOptions {
            source_name: "enrich.rhai".into(),
            ..Default::default()
        },
    )
    .unwrap_err();
    let (key, message) = config_message(err);
    assert_eq!(key, "transform.script");
    assert!(
        message.starts_with("enrich.rhai:2:23: lookup(): unknown enrichment table `gep`"),
        "{message}"
    );
    let err = ScriptTransformFactory::new(
        &e,
        "fn transform(record) { lookup_cidr(\"users\", record.ip); record }",
        ScriptOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("exact-key table"), "{err}");
}

#[test]
fn tables_loaded_from_csv_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("geo.csv");
    std::fs::write(&path, "network,country\n192.168.0.0/16,ZZ\n").unwrap();
    let tables = pf_enrichment::EnrichmentTables::load(&[pf_enrichment::TableConfig {
        name: "lan".into(),
        kind: pf_enrichment::TableKind::Cidr,
        path,
        format: None,
        key: "network".into(),
        values: vec![],
    }])
    .unwrap();
    let e = ScriptEngine::new(tables, ScriptLimits::default()).unwrap();
    assert!(truth(
        &e,
        r#"lookup_cidr("lan", "192.168.1.1").country == "ZZ""#
    ));
    assert!(truth(&e, r#"lookup_cidr("lan", "192.169.1.1") == #{}"#));
}

// ---------------------------------------------------------------- time

#[test]
fn time_helpers_on_integers_and_strings() {
    let e = engine();
    // 2026-01-01T05:30:15Z = 1767245415 s; a Thursday.
    let ts = 1_767_245_415_000_000i64;
    assert_eq!(eval_ok(&e, &format!("hour({ts})")).as_int(), Ok(5));
    assert_eq!(eval_ok(&e, &format!("minute({ts})")).as_int(), Ok(30));
    assert_eq!(eval_ok(&e, &format!("day_of_week({ts})")).as_int(), Ok(3));
    assert_eq!(
        eval_ok(&e, r#"parse_ts("2026-01-01T05:30:15Z")"#).as_int(),
        Ok(ts)
    );
    assert_eq!(
        eval_ok(&e, &format!("format_ts({ts})")).to_string(),
        "2026-01-01T05:30:15Z"
    );
    assert_eq!(
        eval_ok(&e, &format!("format_ts({})", ts + 1)).to_string(),
        "2026-01-01T05:30:15.000001Z"
    );
    // Strings, including offsets (converted to UTC).
    assert_eq!(
        eval_ok(&e, r#"hour("2026-01-01T05:30:15Z")"#).as_int(),
        Ok(5)
    );
    assert_eq!(
        eval_ok(&e, r#"hour("2026-01-01T05:30:15+02:00")"#).as_int(),
        Ok(3)
    );
    assert_eq!(
        eval_ok(&e, r#"day_of_week("2026-01-01T01:00:00+02:00")"#).as_int(),
        Ok(2),
        "23:00 UTC the day before, a Wednesday"
    );
    assert_eq!(
        eval_ok(&e, r#"day_of_week("2026-01-04T12:00:00Z")"#).as_int(),
        Ok(6)
    );
    assert_eq!(
        eval_ok(&e, r#"day_of_week("2026-01-05T00:00:00Z")"#).as_int(),
        Ok(0)
    );
    // Null and unparsable inputs give (), other types are errors.
    for expr in [
        "hour(())",
        r#"hour("not a time")"#,
        r#"day_of_week("2026-13-01T00:00:00Z")"#,
        r#"parse_ts("2026-01-01")"#,
        "format_ts(())",
        r#"minute("")"#,
    ] {
        assert!(eval_ok(&e, expr).is_unit(), "{expr}");
    }
    let err = eval(&e, "hour(1.5)").unwrap_err();
    assert!(err.contains("hour() expects a timestamp"), "{err}");
}

#[test]
fn time_helpers_at_utc_edges() {
    let e = engine();
    // Last microsecond of a day and the first of the next; leap day; DST switch days
    // (UTC has none); before the epoch.
    let cases = [
        ("2026-03-28T23:59:59.999999Z", 23, 59, 5),
        ("2026-03-29T00:00:00Z", 0, 0, 6),
        ("2026-03-29T01:30:00Z", 1, 30, 6),
        ("2026-10-25T01:59:59Z", 1, 59, 6),
        ("2028-02-29T12:00:00Z", 12, 0, 1),
        ("1969-12-31T23:59:59.999999Z", 23, 59, 2),
        ("1970-01-01T00:00:00Z", 0, 0, 3),
    ];
    for (text, hour, minute, dow) in cases {
        let ts = eval_ok(&e, &format!(r#"parse_ts("{text}")"#))
            .as_int()
            .unwrap();
        assert_eq!(
            eval_ok(&e, &format!("hour({ts})")).as_int(),
            Ok(hour),
            "{text}"
        );
        assert_eq!(
            eval_ok(&e, &format!("minute({ts})")).as_int(),
            Ok(minute),
            "{text}"
        );
        assert_eq!(
            eval_ok(&e, &format!("day_of_week({ts})")).as_int(),
            Ok(dow),
            "{text}"
        );
        assert_eq!(
            eval_ok(&e, &format!(r#"hour("{text}")"#)).as_int(),
            Ok(hour)
        );
        assert_eq!(eval_ok(&e, &format!("format_ts({ts})")).to_string(), text);
    }
}

// ---------------------------------------------------------------- hashing, strings

#[test]
fn hash64_is_xxh3_of_the_text_form() {
    let e = engine();
    let expected = xxhash_rust::xxh3::xxh3_64(b"acct-1") as i64;
    assert_eq!(eval_ok(&e, r#"hash64("acct-1")"#).as_int(), Ok(expected));
    assert_eq!(eval_ok(&e, r#"hash64("acct-1")"#).as_int(), Ok(expected));
    assert!(truth(&e, r#"hash64(42) == hash64("42")"#));
    assert!(truth(&e, r#"hash64(true) == hash64("true")"#));
    assert!(truth(&e, r#"hash64(1.5) == hash64("1.5")"#));
    assert!(truth(&e, r#"hash64("a") != hash64("b")"#));
    assert!(eval_ok(&e, "hash64(())").is_unit());
}

#[test]
fn string_helpers() {
    let e = engine();
    assert!(truth(&e, r#"lower("AbÇ") == "abç""#));
    assert!(truth(&e, r#"upper("abc") == "ABC""#));
    assert!(truth(&e, r#"trim("  x y \t") == "x y""#));
    assert!(truth(
        &e,
        r#"let s = "  x "; let t = s.trim(); s == "x" && t == "x""#
    ));
    assert!(truth(&e, r#"lower(()) == () && trim(()) == ()"#));
    // Rhai's own forms keep working.
    assert!(truth(
        &e,
        r#""AbC".to_lower() == "abc" && "a,b".split(",").len() == 2"#
    ));
    let err = eval(&e, "lower(1)").unwrap_err();
    assert!(err.contains("lower() expects a string"), "{err}");
}

// ---------------------------------------------------------------- sandbox

#[test]
fn sandbox_has_no_eval_or_import() {
    let e = engine();
    for script in [
        r#"fn transform(record) { eval("record.x = 1"); record }"#,
        r#"import "x" as y; fn transform(record) { record }"#,
    ] {
        let err = ScriptTransformFactory::new(&e, script, ScriptOptions::default()).unwrap_err();
        let (key, message) = config_message(err);
        assert_eq!(key, "transform.script");
        assert!(message.starts_with("<script>:1:"), "{message}");
    }
    assert!(eval(&e, r#"eval("1")"#).is_err());
    // `sleep` would block without counting operations.
    let started = std::time::Instant::now();
    let out = run_failing_every_tx("fn transform(record) { sleep(100); sleep(1.5); record }");
    let e = &out.failures[0].error;
    assert!(e.contains("sleep() is not available"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn sandbox_limits_are_record_failures() {
    let limits = ScriptLimits {
        max_call_levels: 8,
        max_string_size: 1000,
        max_array_size: 100,
        ..ScriptLimits::default()
    };
    let e = engine_with(limits);
    let f = ScriptTransformFactory::new(
        &e,
        r#"
        fn deep(n) { deep(n + 1) }
        fn transform(record) {
            switch record.id {
                1 => deep(0),
                2 => { let s = "x"; loop { s += s; } },
                3 => { let a = []; loop { a.push(1); } },
            }
            record
        }"#,
        ScriptOptions::default(),
    )
    .unwrap();
    let input = batch(vec![("id", Arc::new(Int64Array::from(vec![1, 2, 3, 4])))]);
    let out = apply(&f, input);
    assert_eq!(out.docs.num_rows(), 1);
    let errors: Vec<&str> = out.failures.iter().map(|f| f.error.as_str()).collect();
    assert!(errors[0].contains("Stack overflow"), "{errors:?}");
    // Limit errors point into the transform body: the helper's call site, or the loop.
    assert!(
        errors[0].starts_with("script error at line 5, column "),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("script error at line 6, column "),
        "{errors:?}"
    );
    assert!(
        errors[2].starts_with("script error at line 7, column "),
        "{errors:?}"
    );
    assert!(errors[1].contains("too large"), "{errors:?}");
    assert!(errors[2].contains("too large"), "{errors:?}");
    assert!(
        ScriptEngine::new(
            Default::default(),
            ScriptLimits {
                max_operations: 0,
                ..Default::default()
            }
        )
        .is_err()
    );
}

// ---------------------------------------------------------------- the script stage

/// Runs `script` over [`tx_batch`] and asserts that every one of its four records failed.
fn run_failing_every_tx(script: &str) -> pf_traits::TransformOutput {
    let out = run(script, tx_batch());
    assert_eq!(out.failures.len(), 4, "{script}");
    out
}

fn tx_batch() -> RecordBatch {
    batch(vec![
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3, 4]))),
        (
            "amount",
            Arc::new(Float64Array::from(vec![
                Some(10.0),
                Some(2000.0),
                None,
                Some(5.5),
            ])),
        ),
        ("channel", strings(&["atm", "web", "pos", "atm"])),
        ("untouched", strings(&["a", "b", "c", "d"])),
        (
            "ip",
            Arc::new(StringArray::from(vec![
                Some("10.1.0.1"),
                Some("66.6.6.1"),
                None,
                Some("bad"),
            ])),
        ),
    ])
}

#[test]
fn modifies_fields_and_passes_untouched_columns_through() {
    let input = tx_batch();
    let out = run(
        "fn transform(record) {\n\
           if record.channel == \"atm\" { record.amount = record.amount * 2.0; }\n\
           record\n\
         }",
        input.clone(),
    );
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    let b = &out.docs.batch;
    assert_eq!(b.num_rows(), 4);
    assert_eq!(b.schema().fields().len(), 5);
    let amount = col(&out, "amount").as_primitive::<Float64Type>();
    assert_eq!(
        amount.iter().collect::<Vec<_>>(),
        [Some(20.0), Some(2000.0), None, Some(11.0)]
    );
    assert_eq!(
        b.schema().field_with_name("amount").unwrap().data_type(),
        &DataType::Float64
    );
    // Never referenced, and referenced but unchanged: the very same arrays.
    for name in ["untouched", "channel", "id", "ip"] {
        assert!(
            Arc::ptr_eq(col(&out, name), input.column_by_name(name).unwrap()),
            "{name}"
        );
    }
    assert_eq!(out.docs.ordinals, None);
    assert_eq!(out.docs.first_row, 0);
}

#[test]
fn adds_fields_of_every_type() {
    let mut options = ScriptOptions::default();
    options.output_types.insert(
        "seen".into(),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    );
    let f = factory_with(
        r#"fn transform(record) {
            record.n = record.id * 10;
            record.f = record.id / 2.0;
            record.b = record.id > 2;
            record.s = "id-" + record.id;
            record.m = #{ a: record.id, b: [1, "x"] };
            record.arr = [record.id, ()];
            record.mixed_num = if record.id == 1 { 1 } else { 2.5 };
            record.mixed_any = if record.id == 1 { "x" } else { record.id };
            record.sparse = if record.id == 3 { "only three" } else { () };
            record.nothing = ();
            record.seen = parse_ts("2026-01-01T00:00:00Z") + record.id;
            record
        }"#,
        options,
    );
    let out = apply(&f, tx_batch());
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    let b = &out.docs.batch;
    let types: HashMap<String, DataType> = b
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    assert_eq!(types["n"], DataType::Int64);
    assert_eq!(types["f"], DataType::Float64);
    assert_eq!(types["b"], DataType::Boolean);
    assert_eq!(types["s"], DataType::Utf8);
    assert_eq!(types["m"], DataType::Utf8);
    assert_eq!(types["arr"], DataType::Utf8);
    assert_eq!(types["mixed_num"], DataType::Float64);
    assert_eq!(types["mixed_any"], DataType::Utf8);
    assert_eq!(types["sparse"], DataType::Utf8);
    assert_eq!(types["nothing"], DataType::Utf8);
    assert_eq!(
        types["seen"],
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    // Input columns first, in input order; new fields after them.
    assert_eq!(b.schema().field(0).name(), "id");
    assert_eq!(b.schema().fields().len(), 5 + 11);

    assert_eq!(
        col(&out, "n").as_primitive::<Int64Type>().values().to_vec(),
        [10, 20, 30, 40]
    );
    assert_eq!(col(&out, "f").as_primitive::<Float64Type>().value(0), 0.5);
    assert_eq!(
        col(&out, "b").as_boolean().iter().collect::<Vec<_>>(),
        [Some(false), Some(false), Some(true), Some(true)]
    );
    assert_eq!(col(&out, "s").as_string::<i32>().value(3), "id-4");
    assert_eq!(
        col(&out, "m").as_string::<i32>().value(0),
        r#"{"a":1,"b":[1,"x"]}"#
    );
    assert_eq!(col(&out, "arr").as_string::<i32>().value(1), "[2,null]");
    assert_eq!(
        col(&out, "mixed_num")
            .as_primitive::<Float64Type>()
            .values()
            .to_vec(),
        [1.0, 2.5, 2.5, 2.5]
    );
    assert_eq!(
        text_column(&out, "mixed_any"),
        [Some("x"), Some("2"), Some("3"), Some("4")]
    );
    assert_eq!(
        text_column(&out, "sparse"),
        [None, None, Some("only three"), None]
    );
    assert_eq!(col(&out, "nothing").null_count(), 4);
    let seen = col(&out, "seen")
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(seen.value(1), 1_767_225_600_000_002);
}

#[test]
fn drops_records_and_keeps_ordinals() {
    let input = tx_batch();
    let f = factory("fn transform(record) { if record.id % 2 == 0 { return (); } record }");
    let out = f
        .transform()
        .apply(&item(), DocBatch::contiguous(input.clone(), 100))
        .unwrap();
    assert_eq!(out.dropped, 2);
    assert_eq!(out.docs.num_rows(), 2);
    assert_eq!(out.docs.ordinals.as_deref(), Some(&[100, 102][..]));
    assert_eq!(out.docs.ordinal(1), 102);
    assert_eq!(text_column(&out, "untouched"), [Some("a"), Some("c")]);
    // Ordinals of an already-filtered batch are carried through.
    let filtered = DocBatch {
        batch: input,
        first_row: 0,
        ordinals: Some(vec![7, 9, 11, 13]),
    };
    let out = f.transform().apply(&item(), filtered).unwrap();
    assert_eq!(out.docs.ordinals.as_deref(), Some(&[7, 11][..]));
    // Nothing dropped: input ordinals stay as they were.
    let out = run("fn transform(record) { record }", tx_batch());
    assert_eq!(out.docs.ordinals, None);
}

#[test]
fn all_rows_dropped_keeps_the_schema() {
    let out = run("fn transform(record) { () }", tx_batch());
    assert_eq!(out.dropped, 4);
    assert_eq!(out.docs.num_rows(), 0);
    assert_eq!(out.docs.batch.schema(), tx_batch().schema());
    assert_eq!(out.docs.ordinals.as_deref(), Some(&[][..]));
}

#[test]
fn null_and_removed_fields() {
    let out = run(
        r#"fn transform(record) {
            if record.id == 2 { record.amount = (); }
            record.remove("ip");
            if record.id != 3 { record.remove("channel"); }
            record
        }"#,
        tx_batch(),
    );
    let b = &out.docs.batch;
    assert!(b.column_by_name("ip").is_none(), "removed from every row");
    assert_eq!(
        text_column(&out, "channel"),
        [None, None, Some("pos"), None]
    );
    assert_eq!(
        col(&out, "amount")
            .as_primitive::<Float64Type>()
            .iter()
            .collect::<Vec<_>>(),
        [Some(10.0), None, None, Some(5.5)]
    );
}

#[test]
fn runaway_loop_fails_only_its_record() {
    let out = run(
        "fn transform(record) {\n\
         \x20   if record.id == 2 {\n\
         \x20       loop { record.x = 1; }\n\
         \x20   }\n\
         \x20   record\n\
         }",
        tx_batch(),
    );
    assert_eq!(out.docs.num_rows(), 3);
    assert_eq!(out.docs.ordinals.as_deref(), Some(&[0, 2, 3][..]));
    assert_eq!(out.failures.len(), 1);
    let f = &out.failures[0];
    assert_eq!(f.stage, Stage::Transform);
    assert_eq!(f.class, ErrorClass::Record);
    assert_eq!(f.row, Some(1));
    assert_eq!(f.uri, "s3://bucket/tx.parquet");
    assert!(
        f.error.starts_with("script error at line 3, column ")
            && f.error.contains("Too many operations"),
        "{}",
        f.error
    );
    let record: serde_json::Value = serde_json::from_str(f.record.as_deref().unwrap()).unwrap();
    assert_eq!(record["id"], 2);
    assert_eq!(record["channel"], "web");
}

#[test]
fn missing_field_use_fails_with_position() {
    let out = run_failing_every_tx(
        "fn transform(record) {\n    let n = record.no_such_field.len();\n    record\n}",
    );
    assert_eq!(out.docs.num_rows(), 0);
    let e = &out.failures[0].error;
    assert!(e.starts_with("script error at line 2, column "), "{e}");
    assert!(e.contains("Function not found: len (())"), "{e}");
    // Reading a missing field alone is not an error: it is ().
    let out = run(
        "fn transform(record) { record.was_missing = record.no_such_field == (); record }",
        tx_batch(),
    );
    assert!(out.failures.is_empty());
    assert_eq!(col(&out, "was_missing").as_boolean().true_count(), 4);
}

#[test]
fn errors_in_helper_functions_point_inside_them() {
    let out = run(
        "fn helper(x) {\n  x + ()\n}\nfn transform(record) {\n  record.y = helper(record.id);\n  record\n}",
        tx_batch(),
    );
    let e = &out.failures[0].error;
    assert!(e.starts_with("script error at line 2, column "), "{e}");
    let out = run(
        "fn transform(record) {\n  throw \"bad record\";\n}",
        tx_batch(),
    );
    let e = &out.failures[0].error;
    assert!(e.starts_with("script error at line 2, column 3: "), "{e}");
    assert!(e.contains("bad record"), "{e}");
}

#[test]
fn wrong_return_type_is_a_record_failure() {
    let out = run_failing_every_tx("fn transform(record) { 42 }");
    let e = &out.failures[0].error;
    assert!(e.contains("must return the record map or ()"), "{e}");
    assert!(e.contains("i64"), "{e}");
}

#[test]
fn compile_errors_name_file_line_and_column() {
    let e = engine();
    let options = ScriptOptions {
        source_name: "scripts/enrich.rhai".into(),
        ..Default::default()
    };
    let err = ScriptTransformFactory::new(
        &e,
        "fn transform(record) {\n    record.x = 1 +;\n    record\n}",
        options.clone(),
    )
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    let (key, message) = config_message(err);
    assert_eq!(key, "transform.script");
    assert!(message.starts_with("scripts/enrich.rhai:2:"), "{message}");
    let err = ScriptTransformFactory::new(&e, "fn other(record) { record }", options.clone())
        .unwrap_err();
    let (_, message) = config_message(err);
    assert_eq!(
        message,
        "scripts/enrich.rhai:1:1: the script must define `fn transform(record)`"
    );
    let err = ScriptTransformFactory::new(&e, "fn transform(a, b) { a }", options).unwrap_err();
    assert!(err.to_string().contains("exactly one parameter"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.rhai");
    std::fs::write(&path, "fn transform(record) {").unwrap();
    let err = ScriptTransformFactory::from_file(&e, &path, ScriptOptions::default()).unwrap_err();
    let (_, message) = config_message(err);
    assert!(
        message.starts_with(&format!("{}:1:", path.display())),
        "{message}"
    );
    let err = ScriptTransformFactory::from_file(
        &e,
        &dir.path().join("missing.rhai"),
        ScriptOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn alerts_carry_uri_row_key_and_details() {
    let f = factory(
        r#"fn transform(record) {
            if record.amount > 1000.0 {
                alert("big", "high", #{ amount: record.amount, ip: record.ip, tags: ["a", 1] });
            }
            if record.id == 1 { alert("first", "Low"); }
            if record.id == 3 { alert("lost", "medium"); throw "fail"; }
            if record.id == 4 { alert("dropped", "medium"); return (); }
            record
        }"#,
    );
    let out = f
        .transform()
        .apply(&item(), DocBatch::contiguous(tx_batch(), 10))
        .unwrap();
    let rules: Vec<(&str, u64)> = out
        .alerts
        .iter()
        .map(|a| (a.rule.as_str(), a.row))
        .collect();
    assert_eq!(rules, [("first", 10), ("big", 11), ("dropped", 13)]);
    let big = &out.alerts[1];
    assert_eq!(big.severity, Severity::High);
    assert_eq!(big.uri, "s3://bucket/tx.parquet");
    assert_eq!(big.key, "big|s3://bucket/tx.parquet|11");
    assert_eq!(
        big.details,
        serde_json::json!({"amount": 2000.0, "ip": "66.6.6.1", "tags": ["a", 1]})
    );
    assert_eq!(out.alerts[0].severity, Severity::Low);
    assert_eq!(out.alerts[0].details, serde_json::Value::Null);

    let out = run_failing_every_tx(r#"fn transform(record) { alert("x", "urgent", ()); record }"#);
    let e = &out.failures[0].error;
    assert!(e.contains("severity must be"), "{e}");
    assert!(out.alerts.is_empty());
}

#[test]
fn type_preserving_changes() {
    let ts_ns: ArrayRef = Arc::new(
        TimestampNanosecondArray::from(vec![1_500, 3_600_000_000_000]).with_timezone("UTC"),
    );
    let input = batch(vec![
        ("small", Arc::new(Int32Array::from(vec![1, 2]))),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(vec![0, 3_600_000_000]).with_timezone("UTC")),
        ),
        ("ts_ns", ts_ns),
        ("day", Arc::new(Date32Array::from(vec![0, 20_454]))),
        ("text", strings(&["1", "2"])),
        ("num_text", strings(&["10", "20"])),
        (
            "dict",
            Arc::new(
                vec!["x", "y"]
                    .into_iter()
                    .collect::<DictionaryArray<Int32Type>>(),
            ),
        ),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(vec![12345, 100])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ),
        ("flag", Arc::new(BooleanArray::from(vec![true, false]))),
    ]);
    let out = run(
        r#"fn transform(record) {
            record.seen = [type_of(record.ts), record.ts, record.ts_ns, record.day,
                           record.dict, record.dec, record.flag];
            if record.small == 2 {
                record.small = 7;
                record.ts = record.ts + 1;
                record.day = record.day + 1;
                record.dict = "z";
                record.text = 3;
            }
            record.num_text = parse_int(record.num_text);
            record.flag = !record.flag;
            record
        }"#,
        input.clone(),
    );
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    let seen = col(&out, "seen").as_string::<i32>();
    // Decimals are read as f64 (as the rule engine reads them).
    assert_eq!(seen.value(0), r#"["i64",0,1,0,"x",123.45,true]"#);
    assert_eq!(
        seen.value(1),
        r#"["i64",3600000000,3600000000,20454,"y",1.0,false]"#
    );

    let b = &out.docs.batch;
    let ty = |n: &str| b.schema().field_with_name(n).unwrap().data_type().clone();
    assert_eq!(ty("small"), DataType::Int32);
    assert_eq!(
        col(&out, "small")
            .as_primitive::<Int32Type>()
            .values()
            .to_vec(),
        [1, 7]
    );
    assert_eq!(
        ty("ts"),
        input
            .schema()
            .field_with_name("ts")
            .unwrap()
            .data_type()
            .clone()
    );
    assert_eq!(
        col(&out, "ts")
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap()
            .values()
            .to_vec(),
        [0, 3_600_000_001]
    );
    assert!(Arc::ptr_eq(
        col(&out, "ts_ns"),
        input.column_by_name("ts_ns").unwrap()
    ));
    assert_eq!(ty("day"), DataType::Date32);
    assert_eq!(
        col(&out, "day")
            .as_any()
            .downcast_ref::<Date32Array>()
            .unwrap()
            .value(1),
        20_455
    );
    assert_eq!(ty("dict"), DataType::Utf8);
    assert_eq!(text_column(&out, "dict"), [Some("x"), Some("z")]);
    // A string column given an integer on one row becomes text throughout.
    assert_eq!(ty("text"), DataType::Utf8);
    assert_eq!(text_column(&out, "text"), [Some("1"), Some("3")]);
    // Changed on every row to integers: the column becomes Int64.
    assert_eq!(ty("num_text"), DataType::Int64);
    assert_eq!(ty("flag"), DataType::Boolean);
    assert!(Arc::ptr_eq(
        col(&out, "dec"),
        input.column_by_name("dec").unwrap()
    ));
}

#[test]
fn declared_types_that_do_not_convert_fail_their_records() {
    let mut options = ScriptOptions::default();
    options.output_types.insert("code".into(), DataType::Int32);
    let f = factory_with(
        r#"fn transform(record) {
            record.code = if record.id == 2 { "not a number" } else { "" + record.id * 10 };
            if record.id == 2 { alert("gone", "low"); }
            record
        }"#,
        options,
    );
    let out = apply(&f, tx_batch());
    assert_eq!(out.docs.num_rows(), 3);
    assert_eq!(out.docs.ordinals.as_deref(), Some(&[0, 2, 3][..]));
    assert_eq!(
        col(&out, "code")
            .as_primitive::<Int32Type>()
            .values()
            .to_vec(),
        [10, 30, 40]
    );
    assert_eq!(out.failures.len(), 1);
    assert_eq!(out.failures[0].row, Some(1));
    assert!(
        out.failures[0]
            .error
            .contains("field `code`: `not a number` cannot be converted to Int32"),
        "{}",
        out.failures[0].error
    );
    assert!(
        out.alerts.is_empty(),
        "alerts of failed records are discarded"
    );
    assert_eq!(
        text_column(&out, "untouched"),
        [Some("a"), Some("c"), Some("d")]
    );
}

#[test]
fn only_named_fields_are_converted_unless_asked() {
    let script = r#"fn transform(record) { record.n = record.keys().len(); record }"#;
    let f = factory(script);
    let schema = tx_batch().schema();
    assert!(f.referenced_fields(&schema).is_empty());
    let out = run(script, tx_batch());
    assert_eq!(col(&out, "n").as_primitive::<Int64Type>().value(0), 0);
    let f = factory_with(
        script,
        ScriptOptions {
            convert_all_fields: true,
            ..Default::default()
        },
    );
    assert_eq!(f.referenced_fields(&schema).len(), 5);
    let out = apply(&f, tx_batch());
    assert_eq!(col(&out, "n").as_primitive::<Int64Type>().value(0), 5);
    // Converted but unchanged: still passed through.
    assert_eq!(col(&out, "untouched").as_string::<i32>().value(0), "a");

    let f = factory(r#"fn transform(record) { record["ip"] = "x"; /* amount */ record }"#);
    assert_eq!(f.referenced_fields(&schema), ["ip"]);
}

#[test]
fn factory_builds_independent_transforms() {
    let f = factory("fn transform(record) { record.channel = upper(record.channel); record }");
    let mut a = f.create().unwrap();
    let mut b = f.create().unwrap();
    let handles: Vec<_> = [&mut a, &mut b]
        .into_iter()
        .map(|t| {
            t.apply(&item(), DocBatch::contiguous(tx_batch(), 0))
                .unwrap()
        })
        .collect();
    for out in handles {
        assert_eq!(col(&out, "channel").as_string::<i32>().value(0), "ATM");
    }
    // Shared across threads.
    let f = Arc::new(f);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let f = f.clone();
            s.spawn(move || {
                let out = f
                    .transform()
                    .apply(&item(), DocBatch::contiguous(tx_batch(), 0))
                    .unwrap();
                assert_eq!(out.docs.num_rows(), 4);
            });
        }
    });
}

#[test]
fn schema_changes_between_batches_are_handled() {
    let f = factory("fn transform(record) { record.x = record.a + 1; record }");
    let mut t = f.transform();
    let b1 = batch(vec![("a", Arc::new(Int64Array::from(vec![1])))]);
    let b2 = batch(vec![
        ("z", strings(&["q"])),
        ("a", Arc::new(Float64Array::from(vec![1.5]))),
    ]);
    let o1 = t.apply(&item(), DocBatch::contiguous(b1, 0)).unwrap();
    let o2 = t.apply(&item(), DocBatch::contiguous(b2, 1)).unwrap();
    assert_eq!(col(&o1, "x").as_primitive::<Int64Type>().value(0), 2);
    assert_eq!(col(&o2, "x").as_primitive::<Float64Type>().value(0), 2.5);
}
