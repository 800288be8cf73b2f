//! `()` / null semantics, and the vectorized kernels against the per-record reference
//! for every operator over every value type (nulls, NaN, -0.0, overflow included).

mod common;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, Float64Array,
    Int32Array, Int64Array, LargeStringArray, ListArray, NullArray, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt64Array,
};
use arrow::datatypes::{Field, Int32Type, Schema};
use common::{DAY0, HOUR};
use pf_rules::{BatchMeta, CompileOptions, CompiledRules, RuleEvaluation, RuleFile, RuleSpec};
use pf_types::Severity;

fn typed_batch() -> RecordBatch {
    let cols: Vec<(&str, ArrayRef)> = vec![
        (
            "i",
            Arc::new(Int64Array::from(vec![
                Some(0),
                Some(1),
                Some(-1),
                Some(i64::MAX),
                Some(i64::MIN),
                None,
                Some(7),
                Some(2),
            ])),
        ),
        (
            "j",
            Arc::new(Int64Array::from(vec![
                Some(0),
                Some(2),
                None,
                Some(1),
                Some(-1),
                Some(3),
                Some(0),
                Some(i64::MIN),
            ])),
        ),
        (
            "f",
            Arc::new(Float64Array::from(vec![
                Some(0.0),
                Some(-0.0),
                Some(f64::NAN),
                None,
                Some(1.5),
                Some(f64::INFINITY),
                Some(2.0),
                Some(-1e300),
            ])),
        ),
        (
            "g",
            Arc::new(Float64Array::from(vec![
                Some(-0.0),
                Some(0.0),
                Some(f64::NAN),
                Some(2.0),
                None,
                Some(f64::NEG_INFINITY),
                Some(2.0),
                Some(1.0),
            ])),
        ),
        (
            "s",
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some(""),
                None,
                Some("b"),
                Some("2026-01-01T03:00:00Z"),
                Some("A"),
                Some("é"),
                Some("acct-1"),
            ])),
        ),
        (
            "t",
            Arc::new(StringArray::from(vec![
                Some("a"),
                None,
                None,
                Some("a"),
                Some("2026-01-01T03:00:00+01:00"),
                Some("B"),
                Some("e"),
                Some("1.2.3.4"),
            ])),
        ),
        (
            "b",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
                Some(false),
                Some(true),
                None,
                Some(false),
            ])),
        ),
        (
            "c",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(true),
                None,
                Some(false),
                Some(false),
                None,
                Some(true),
                Some(false),
            ])),
        ),
        ("n", Arc::new(NullArray::new(8))),
        (
            "ts",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    Some(DAY0 + 3 * HOUR),
                    None,
                    Some(0),
                    Some(-1),
                    Some(DAY0 + HOUR),
                    Some(i64::MAX),
                    Some(i64::MIN),
                    Some(DAY0 + 5 * HOUR),
                ])
                .with_timezone("UTC"),
            ),
        ),
        (
            "i32",
            Arc::new(Int32Array::from(vec![
                Some(1),
                None,
                Some(-5),
                Some(i32::MAX),
                Some(0),
                Some(2),
                Some(7),
                Some(1),
            ])),
        ),
        (
            "u64",
            Arc::new(UInt64Array::from(vec![
                Some(1),
                Some(u64::MAX),
                None,
                Some(0),
                Some(3),
                Some(1 << 63),
                Some(7),
                Some(2),
            ])),
        ),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(vec![
                    Some(12_345),
                    None,
                    Some(-1),
                    Some(0),
                    Some(100),
                    Some(700),
                    Some(200),
                    Some(1),
                ])
                .with_precision_and_scale(10, 2)
                .unwrap(),
            ),
        ),
        (
            "ls",
            Arc::new(LargeStringArray::from(vec![
                Some("a"),
                Some("b"),
                None,
                Some("b"),
                Some(""),
                Some("A"),
                Some("é"),
                Some("acct-2"),
            ])),
        ),
        (
            "dict",
            Arc::new(
                vec![
                    Some("a"),
                    None,
                    Some("x"),
                    Some("b"),
                    Some("a"),
                    Some("A"),
                    Some("e"),
                    Some("1.2.3.4"),
                ]
                .into_iter()
                .collect::<DictionaryArray<Int32Type>>(),
            ),
        ),
        (
            "date",
            Arc::new(Date32Array::from(vec![
                Some(0),
                Some(20_454),
                None,
                Some(-1),
                Some(1),
                Some(2),
                Some(3),
                Some(4),
            ])),
        ),
        (
            "lst",
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                Some(
                    vec![Some(1)]
                );
                8
            ])),
        ),
    ];
    let schema = Schema::new(
        cols.iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), cols.into_iter().map(|c| c.1).collect()).unwrap()
}

/// A validated rule file with one rule `r{i}` (severity low, score 1) per condition.
fn rule_file(conditions: &[String]) -> RuleFile {
    let file = RuleFile {
        threshold: 1.0,
        rules: conditions
            .iter()
            .enumerate()
            .map(|(i, c)| RuleSpec {
                name: format!("r{i}"),
                description: None,
                condition: Some(c.clone()),
                window: None,
                severity: Severity::Low,
                score: 1.0,
                enabled: true,
            })
            .collect(),
    };
    file.validate().unwrap_or_else(|e| panic!("{e}"));
    file
}

fn run(conditions: &[String], force: bool) -> RuleEvaluation {
    let rules = CompiledRules::compile(
        &rule_file(conditions),
        &common::small_tables(),
        CompileOptions {
            force_fallback: force,
            ..CompileOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for info in rules.rules() {
        assert_eq!(
            info.mode,
            pf_rules::RuleMode::Vectorized,
            "{}",
            conditions[info.index]
        );
    }
    rules
        .evaluate(&typed_batch(), &BatchMeta::contiguous("mem://typed", 0))
        .unwrap()
}

/// Per condition and row: whether it fired, or the record error's message.
type Outcomes = Vec<Vec<Result<bool, String>>>;

fn outcomes(conditions: &[String], force: bool) -> (Outcomes, RuleEvaluation) {
    let out = run(conditions, force);
    let mut table: Outcomes = out
        .fired
        .iter()
        .map(|f| f.iter().map(|v| Ok(v.unwrap_or(false))).collect())
        .collect();
    for e in &out.errors {
        let cell = &mut table[e.rule][e.row];
        assert_eq!(cell, &Ok(false), "an erroring row must not fire");
        *cell = Err(e.message.clone());
    }
    (table, out)
}

const OPERANDS: [&str; 23] = [
    "i",
    "j",
    "f",
    "g",
    "s",
    "t",
    "b",
    "c",
    "n",
    "ts",
    "i32",
    "u64",
    "dec",
    "ls",
    "dict",
    "date",
    "record.zz",
    "1",
    "2.0",
    "\"a\"",
    "true",
    "()",
    "-0.0",
];
const NUMERIC: [&str; 12] = [
    "i", "j", "f", "g", "ts", "i32", "u64", "dec", "date", "1", "2.0", "-0.0",
];
const COMPARISONS: [&str; 6] = ["==", "!=", "<", "<=", ">", ">="];
const ARITHMETIC: [&str; 5] = ["+", "-", "*", "/", "%"];

#[test]
fn kernels_agree_with_the_reference_for_every_operator_and_type() {
    let mut conditions = Vec::new();
    let mut kinds = Vec::new();
    for a in OPERANDS {
        for b in OPERANDS {
            for op in COMPARISONS {
                conditions.push(format!("{a} {op} {b}"));
                kinds.push("cmp");
            }
            for op in ARITHMETIC {
                conditions.push(format!("({a} {op} {b}) > 0"));
                let numeric = NUMERIC.contains(&a) && NUMERIC.contains(&b);
                kinds.push(if numeric { "arith" } else { "other" });
            }
        }
        // These fail exactly where the kernels hand rows to the fallback.
        for exact in [
            format!("!{a}"),
            // Parenthesized: Rhai reserves `--`, so `--0.0` does not parse.
            format!("-({a}) < 0"),
            format!("{a} && b"),
            format!("b || {a}"),
            format!("{a} in [1, 2.0, \"a\", (), true, -0.0]"),
            a.to_string(),
        ] {
            conditions.push(exact);
            kinds.push("arith");
        }
        for extra in [
            format!("hour({a}) == 3"),
            format!("minute({a}) >= 0"),
            format!("day_of_week({a}) == 4"),
            format!("lookup(\"users\", {a}).home_country == \"US\""),
            format!("lookup_cidr(\"geo\", {a}).country != ()"),
            format!("in_table(\"threats\", {a})"),
        ] {
            conditions.push(extra);
            kinds.push("other");
        }
    }
    for extra in [
        "b && (i + 1 > 0)", // right side fails only where b is true
        "!b || i / j > 0",  // right side fails only where b is true and j is 0 / null
        "c && !b",
        "(i * 2 > 0) || true", // left failures fail the row even though `|| true`
        "zz == ()",            // missing bare variable: error
        "record.zz == ()",     // missing record field: ()
        "lst == ()",           // unreadable type: error
        "i == i + 0",
        "f == f",  // NaN != NaN
        "-f == f", // -0.0 == 0.0
        "i % j == 0",
        "-i > 0",
        // String lookup values compared by their codes, against each other and constants.
        "lookup(\"users\", s).home_country == lookup_cidr(\"geo\", t).country",
        "lookup_cidr(\"geo\", t).country != lookup(\"users\", ls).home_country",
        "\"GB\" == lookup(\"users\", dict).home_country",
        "lookup(\"users\", s).home_country != \"nowhere\"",
        "lookup(\"users\", s).home_country == 5",
        "lookup(\"users\", s).home_country != ()",
        "() == lookup_cidr(\"threats\", t).category",
        "lookup_cidr(\"threats\", t).category == \"scanner\"",
    ] {
        conditions.push(extra.to_string());
        kinds.push("arith");
    }
    for extra in ["hour(s) == hour(t)", "s + t == \"aa\""] {
        conditions.push(extra.to_string());
        kinds.push("other");
    }

    // Rhai rejects a literal non-bool operand of `&&` / `||` when it parses (the
    // per-record engine cannot compile those either): they are configuration errors,
    // not rows to compare.
    let literal = ["1", "2.0", "\"a\"", "()", "-0.0"];
    let (conditions, kinds): (Vec<String>, Vec<&str>) = conditions
        .into_iter()
        .zip(kinds)
        .filter(|(c, _)| match pf_rules::expr::parse(c) {
            Err(e) if e.kind == pf_rules::expr::ParseErrorKind::Syntax => {
                assert!(
                    literal
                        .iter()
                        .any(|l| *c == format!("{l} && b") || *c == format!("b || {l}")),
                    "{c}: {e}"
                );
                false
            }
            _ => true,
        })
        .unzip();
    let (vectorized, out) = outcomes(&conditions, false);
    let (reference, forced) = outcomes(&conditions, true);
    let mut mismatches = Vec::new();
    for (k, c) in conditions.iter().enumerate() {
        if vectorized[k] != reference[k] {
            mismatches.push(format!(
                "{c}\n  vectorized {:?}\n  reference  {:?}",
                vectorized[k], reference[k]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!(
        forced.counts.iter().map(|c| c.fallback_rows).sum::<u64>(),
        8 * conditions.len() as u64
    );

    // The kernels decide comparisons of every type pair themselves, and send numeric
    // arithmetic, logic and negation to the fallback exactly on the rows that fail
    // (short-circuit included), so the fallback is not used more than it must be.
    for (k, c) in conditions.iter().enumerate() {
        let counts = &out.counts[k];
        match kinds[k] {
            "cmp" => assert_eq!(counts.fallback_rows, 0, "{c}"),
            "arith" => assert_eq!(counts.fallback_rows, counts.errors, "{c}"),
            _ => {}
        }
    }
}

/// The documented semantics, spelled out.
#[test]
fn null_semantics_table() {
    // (condition, expected per row of the typed batch; Err = record error).
    type Row = Result<bool, ()>;
    let t = Ok(true);
    let f = Ok(false);
    let e: Row = Err(());
    let cases: Vec<(&str, [Row; 8])> = vec![
        // i = [0, 1, -1, MAX, MIN, (), 7, 2]; j = [0, 2, (), 1, -1, 3, 0, MIN]
        ("i == ()", [f, f, f, f, f, t, f, f]),
        ("i != ()", [t, t, t, t, t, f, t, t]),
        ("() == ()", [t, t, t, t, t, t, t, t]),
        ("() < ()", [f, f, f, f, f, f, f, f]),
        ("() <= ()", [f, f, f, f, f, f, f, f]),
        ("i == j", [t, f, f, f, f, f, f, f]),
        ("i != j", [f, t, t, t, t, t, t, t]),
        ("i < j", [f, t, f, f, t, f, f, f]),
        ("i >= j", [t, f, f, t, f, f, t, t]),
        // Different types: equal only when both are ().
        ("i == s", [f, f, f, f, f, f, f, f]),
        ("j == s", [f, f, t, f, f, f, f, f]),
        ("j != s", [t, t, f, t, t, t, t, t]),
        ("i < s", [f, f, f, f, f, f, f, f]),
        ("n == j", [f, f, t, f, f, f, f, f]),
        ("record.zz == i", [f, f, f, f, f, t, f, f]),
        // Int and float mix; floats compare with Rhai's relative epsilon:
        // f = [0.0, -0.0, NaN, (), 1.5, inf, 2.0, -1e300]. NaN is "equal" to zero, NaN and
        // infinities are unequal to themselves.
        ("i == 1.0", [f, t, f, f, f, f, f, f]),
        ("f == 0", [t, t, t, f, f, f, f, f]),
        ("f == f", [t, t, f, t, t, f, t, t]),
        ("f != f", [f, f, f, f, f, f, f, f]),
        ("f == g", [t, t, f, f, f, f, t, f]),
        ("f < g", [f, f, f, f, f, f, f, t]),
        // Arithmetic with () fails the record; so does integer overflow / division by 0.
        ("i + 1 > 0", [t, t, f, e, f, e, t, t]),
        ("i / j > 0", [e, f, e, t, e, e, e, f]),
        // f / 0 is NaN or ±inf, never `> 0` under the epsilon rule.
        ("f / 0 > 0", [f, f, f, e, f, f, f, f]),
        ("-i < 0", [f, t, f, t, e, e, t, t]),
        // Booleans: () operands fail, short-circuit spares the right side.
        ("b && c", [t, f, e, f, f, e, e, f]),
        ("b || c", [t, t, e, t, f, t, e, f]),
        ("!b", [f, t, e, f, t, f, e, t]),
        ("b && i + 1 > 0", [t, f, e, e, f, e, e, f]),
        ("b", [t, f, e, t, f, t, e, f]),
        // A non-boolean result fails.
        ("i", [e, e, e, e, e, e, e, e]),
        // Time of () is (); of an unparsable string (); of a float an error.
        ("hour(ts) == 3", [t, f, f, f, f, f, f, f]),
        ("hour(ts) == ()", [f, t, f, f, f, f, f, f]),
        ("hour(ts) == 4", [f, f, f, f, f, t, f, f]),
        ("hour(ts) == 19", [f, f, f, f, f, f, t, f]),
        ("hour(s) == 3", [f, f, f, f, t, f, f, f]),
        ("hour(s) == ()", [t, t, t, t, f, t, t, t]),
        ("hour(t) == 2", [f, f, f, f, t, f, f, f]),
        ("hour(f) == 1", [e, e, e, f, e, e, e, e]),
        // Lookups: () key and misses give (); in_table of () is false; int keys as text.
        (
            "lookup(\"users\", s).home_country == \"US\"",
            [f, f, f, f, f, f, f, t],
        ),
        (
            "lookup(\"users\", s).home_country == ()",
            [t, t, t, t, t, t, t, f],
        ),
        ("in_table(\"threats\", t)", [f, f, f, f, f, f, f, t]),
        ("in_table(\"threats\", f)", [e, e, e, f, e, e, e, e]),
        ("in_table(\"threats\", n)", [f, f, f, f, f, f, f, f]),
        // Missing fields: record.x is (), a bare x an error.
        ("record.zz == ()", [t, t, t, t, t, t, t, t]),
        ("zz == ()", [e, e, e, e, e, e, e, e]),
        ("x in [1, ()]", [e, e, e, e, e, e, e, e]),
        ("i in [1, ()]", [f, t, f, f, f, t, f, f]),
        ("u64 == ()", [f, t, t, f, f, t, f, f]),
        ("dec > 100", [t, f, f, f, f, f, f, f]),
        ("date == 0", [t, f, f, f, f, f, f, f]),
    ];
    let conditions: Vec<String> = cases.iter().map(|c| c.0.to_string()).collect();
    for force in [false, true] {
        let (got, _) = outcomes(&conditions, force);
        for (k, (c, want)) in cases.iter().enumerate() {
            let got: Vec<Row> = got[k]
                .iter()
                .map(|v| v.as_ref().map(|b| *b).map_err(|_| ()))
                .collect();
            assert_eq!(got, want.to_vec(), "{c} (force_fallback {force})");
        }
    }
}

#[test]
fn error_messages_name_rule_and_position() {
    let (got, _) = outcomes(&["b && i + 1 > 0".to_string(), "zz".to_string()], false);
    let Err(m) = &got[0][3] else {
        panic!("{:?}", got[0])
    };
    assert!(m.starts_with("rule r0: "), "{m}");
    assert!(
        m.contains("operator `+` is not defined for i64 and ()") || m.contains("overflow"),
        "{m}"
    );
    assert!(m.contains("line 1, position 6"), "{m}");
    let Err(m) = &got[1][0] else {
        panic!("{:?}", got[1])
    };
    assert_eq!(m, "rule r1: variable `zz` not found (line 1, position 1)");
}
