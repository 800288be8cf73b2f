//! Rule conditions, and the Rhai semantics the vectorized rule engine must reproduce,
//! checked against the real engine (the list is in `RhaiConditions`' docs).

mod common;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use common::{batch, engine, engine_with, strings};
use pf_error::PfError;
use pf_transform::rhai::{Dynamic, Scope};
use pf_transform::{RhaiConditions, ScriptEngine, ScriptLimits};

/// Compiles `(rule name, condition)` pairs as Rhai rule conditions.
fn compile(engine: &ScriptEngine, rules: &[(&str, &str)]) -> Result<RhaiConditions, PfError> {
    let rules: Vec<(String, String)> = rules
        .iter()
        .map(|&(name, expr)| (name.to_owned(), expr.to_owned()))
        .collect();
    RhaiConditions::compile(&rules, engine)
}

/// The key and message of the configuration error compiling `rules` fails with.
fn compile_err(engine: &ScriptEngine, rules: &[(&str, &str)]) -> (String, String) {
    match compile(engine, rules) {
        Err(PfError::Config { key, message }) => (key, message),
        Err(other) => panic!("{rules:?}: expected a configuration error, got {other}"),
        Ok(_) => panic!("{rules:?}: expected an error"),
    }
}

/// Evaluates `expr` as a rule condition on a one-row batch with `x: ()`, `n: 5`,
/// `f: 2.5`, `s: "abc"`, `b: true`.
fn cond(engine: &ScriptEngine, expr: &str) -> Result<bool, String> {
    let rules = compile(engine, &[("r", expr)]).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let b = batch(vec![
        (
            "x",
            Arc::new(Int64Array::from(vec![None::<i64>])) as ArrayRef,
        ),
        ("n", Arc::new(Int64Array::from(vec![5]))),
        ("f", Arc::new(Float64Array::from(vec![2.5]))),
        ("s", strings(&["abc"])),
        ("b", Arc::new(BooleanArray::from(vec![true]))),
    ]);
    rules.eval(0, &b, 0, &mut Scope::new())
}

fn holds(engine: &ScriptEngine, expr: &str) -> bool {
    cond(engine, expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn errs(engine: &ScriptEngine, expr: &str) -> String {
    match cond(engine, expr) {
        Ok(v) => panic!("{expr}: expected an error, got {v}"),
        Err(e) => e,
    }
}

/// Asserts that every one of `exprs` holds.
fn assert_all_hold(engine: &ScriptEngine, exprs: &[&str]) {
    for expr in exprs {
        assert!(holds(engine, expr), "{expr}");
    }
}

/// Asserts that every one of `exprs` fails with an error that contains `part`.
fn assert_all_fail_with(engine: &ScriptEngine, exprs: &[&str], part: &str) {
    for expr in exprs {
        let err = errs(engine, expr);
        assert!(err.contains(part), "{expr}: {err}");
    }
}

fn value(engine: &ScriptEngine, expr: &str) -> Dynamic {
    engine
        .engine()
        .eval::<Dynamic>(expr)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
}

#[test]
fn different_types_compare_false_except_not_equal() {
    let e = engine();
    let pairs = [
        ("()", "0"),
        ("()", "1.5"),
        ("()", "\"\""),
        ("()", "false"),
        ("\"1\"", "1"),
        ("\"1.5\"", "1.5"),
        ("true", "1"),
        ("false", "0"),
        ("#{}", "1"),
        ("[1]", "1"),
        ("'a'", "1"),
        ("x", "n"),
        ("x", "f"),
        ("s", "n"),
        ("b", "n"),
    ];
    for (a, b) in pairs {
        for (l, r) in [(a, b), (b, a)] {
            for op in ["==", "<", ">", "<=", ">="] {
                assert!(!holds(&e, &format!("{l} {op} {r}")), "{l} {op} {r}");
            }
            assert!(holds(&e, &format!("{l} != {r}")), "{l} != {r}");
        }
    }
}

#[test]
fn unit_compared_with_unit() {
    let e = engine();
    assert!(holds(&e, "() == ()"));
    assert!(holds(&e, "x == ()"));
    assert!(!holds(&e, "() != ()"));
    for op in ["<", ">", "<=", ">="] {
        assert!(!holds(&e, &format!("() {op} ()")), "{op}");
        assert!(!holds(&e, &format!("x {op} x")), "{op}");
    }
}

#[test]
fn integers_are_exact_and_checked() {
    let e = engine();
    assert_all_hold(
        &e,
        &[
            "7 / 2 == 3",
            "-7 / 2 == -3",
            "7 % 3 == 1",
            "-7 % 3 == -1",
            "9007199254740993 != 9007199254740992",
            "9223372036854775807 > 9223372036854775806",
            "n * 2 == 10",
        ],
    );
    for t in [
        "9223372036854775807 + n > 0",
        "n / 0 == 0",
        "n % 0 == 0",
        "-9223372036854775807 - n < 0",
        "9223372036854775807 * n > 0",
    ] {
        let err = errs(&e, t);
        assert!(err.starts_with("line 1, column "), "{t}: {err}");
    }
}

#[test]
fn int_float_mixing() {
    let e = engine();
    assert_all_hold(
        &e,
        &[
            "1 == 1.0",
            "1.0 == 1",
            "2 > 1.5",
            "1.5 < 2",
            "2 >= 2.0",
            "n == 5.0",
            "f > 2",
            "n > f",
            "1 + 0.5 == 1.5",
            "type_of(1 + 0.5) == \"f64\"",
            "type_of(n * 1.0) == \"f64\"",
            "type_of(n / 2) == \"i64\"",
            "7 / 2.0 == 3.5",
            // The integer is converted with `as f64` first.
            "9007199254740993 == 9007199254740992.0",
        ],
    );
    assert!(!holds(&e, "1 != 1.0"));
    // Float arithmetic never fails: IEEE infinities and NaN.
    assert_eq!(value(&e, "1.0 / 0.0").as_float(), Ok(f64::INFINITY));
    assert_eq!(value(&e, "1.0 / 0").as_float(), Ok(f64::INFINITY));
    assert!(value(&e, "0.0 / 0.0").as_float().unwrap().is_nan());
    assert_eq!(value(&e, "1e300 * 1e300").as_float(), Ok(f64::INFINITY));
}

/// Rhai (without its `unchecked` feature, which would also remove the sandbox limits)
/// compares floats with a relative epsilon, not IEEE 754.
#[test]
fn float_comparisons_use_a_relative_epsilon() {
    let e = engine();
    let eps = f64::EPSILON;
    // The rule, as in Rhai's built-in operators.
    let rhai = |x: f64, y: f64, op: &str| -> bool {
        let m = if x * y == 0.0 {
            1.0
        } else {
            x.abs().max(y.abs())
        };
        // `f64::max` ignores NaN, so NaN against ±0.0 lands here: "equal".
        if m == 0.0 {
            return matches!(op, "==" | ">=" | "<=");
        }
        match op {
            "==" => (x - y).abs() / m <= eps,
            "!=" => (x - y).abs() / m > eps,
            ">" => (x - y) / m > eps,
            ">=" => (x - y) / m > -eps,
            "<" => (y - x) / m > eps,
            "<=" => (y - x) / m > -eps,
            _ => unreachable!(),
        }
    };
    let values = [
        ("0.0", 0.0),
        ("-0.0", -0.0),
        ("1e-300", 1e-300),
        ("1e-17", 1e-17),
        ("1e-15", 1e-15),
        ("0.1", 0.1),
        ("(0.1 + 0.2)", 0.1 + 0.2),
        ("0.3", 0.3),
        ("1.0", 1.0),
        ("1.0000000000000002", 1.000_000_000_000_000_2),
        ("10000.0", 10_000.0),
        ("10000.000000000002", 10_000.000_000_000_002),
        ("10000.01", 10_000.01),
        ("-5.5", -5.5),
        ("1e20", 1e20),
        ("(1e20 + 1e4)", 1e20 + 1e4),
        ("1e308", 1e308),
        ("-1e308", -1e308),
        ("(1.0 / 0.0)", f64::INFINITY),
        ("(-1.0 / 0.0)", f64::NEG_INFINITY),
        ("(0.0 / 0.0)", f64::NAN),
    ];
    for (ta, a) in values {
        for (tb, b) in values {
            for op in ["==", "!=", ">", ">=", "<", "<="] {
                let expr = format!("{ta} {op} {tb}");
                assert_eq!(holds(&e, &expr), rhai(a, b, op), "{expr}");
            }
        }
    }
    // The consequences a vectorized evaluator must reproduce.
    assert_all_hold(
        &e,
        &[
            "10000.000000000002 == 10000.0",
            "!(10000.000000000002 > 10000.0)",
            "10000.01 > 10000.0",
            "0.1 + 0.2 == 0.3",
            "1e-300 == 0.0",
            "!(1e-17 > 0.0)",
            "1e-15 > 0.0",
            "-0.0 == 0.0",
            "1e20 == 1e20 + 1e4",
            "1 == 1.0000000000000002",
            "5 >= 5.000000000000001",
        ],
    );
    // NaN and infinities compare false under every operator, `!=` included, except
    // NaN against zero, which is "equal".
    for v in ["(0.0 / 0.0)", "(1.0 / 0.0)", "(-1.0 / 0.0)"] {
        for other in [v, "1.0", "-2.5", "1", "1e308"] {
            for op in ["==", "!=", ">", ">=", "<", "<="] {
                assert!(!holds(&e, &format!("{v} {op} {other}")), "{v} {op} {other}");
                assert!(!holds(&e, &format!("{other} {op} {v}")), "{other} {op} {v}");
            }
        }
    }
    for other in ["(1.0 / 0.0)", "(-1.0 / 0.0)"] {
        for op in ["==", "!=", ">", ">=", "<", "<="] {
            assert!(!holds(&e, &format!("{other} {op} 0.0")), "{other} {op} 0.0");
        }
    }
    assert_all_hold(
        &e,
        &[
            "(0.0 / 0.0) == 0.0",
            "0.0 == (0.0 / 0.0)",
            "(0.0 / 0.0) == 0",
            "(0.0 / 0.0) <= -0.0",
            "(0.0 / 0.0) >= 0.0",
            "!((0.0 / 0.0) != 0.0)",
            "!((0.0 / 0.0) < 0.0)",
            "1e308 > -1e308",
        ],
    );
}

#[test]
fn arithmetic_on_unit_is_an_error_except_string_concatenation() {
    let e = engine();
    assert_all_fail_with(
        &e,
        &[
            "() + 1 > 0",
            "1 + () > 0",
            "() * 2.0 > 0",
            "-() == 0",
            "x + n > 0",
            "x - 1 < 0",
            "x * x == ()",
        ],
        "Function not found",
    );
    assert!(holds(&e, r#"() + "s" == "s""#));
    assert!(holds(&e, r#""s" + () == "s""#));
    assert!(holds(&e, r#"x + s == "abc""#));
}

#[test]
fn strings_concatenate_with_anything() {
    let e = engine();
    assert_all_hold(
        &e,
        &[
            r#""a" + 1 == "a1""#,
            r#"1 + "a" == "1a""#,
            r#""a" + 1.5 == "a1.5""#,
            r#""a" + true == "atrue""#,
            r#"s + n == "abc5""#,
            r#""a" + "b" == "ab""#,
        ],
    );
    // `-` removes every occurrence of a string or character.
    assert!(holds(&e, r#"s - "c" == "ab""#));
    assert!(holds(&e, r#""abcabc" - 'b' == "acac""#));
    assert_all_fail_with(
        &e,
        &[
            r#"s * 2 == "abcabc""#,
            r#"s - 1 == "abc""#,
            r#"s / "a" == "bc""#,
        ],
        "Function not found",
    );
}

#[test]
fn strings_booleans_and_chars() {
    let e = engine();
    for (expr, want) in [
        (r#""B" < "a""#, true),
        (r#""abc" < "abd""#, true),
        (r#""ab" < "abc""#, true),
        (r#"s == "abc""#, true),
        (r#""é" > "z""#, true),
        (r#""a" == "A""#, false),
        ("false < true", true),
        ("true > false", true),
        ("true >= true", true),
        ("b == true", true),
        // Characters only come from literals; they compare equal to one-character strings.
        (r#"'a' == "a""#, true),
    ] {
        assert_eq!(holds(&e, expr), want, "{expr}");
    }
}

#[test]
fn logic_operators_need_booleans_and_short_circuit() {
    let e = engine();
    for t in [
        "x && n > 1",
        "n > 1 && x",
        "x || n > 1",
        "n < 1 || x",
        "!x",
        "x && false",
        "x || true",
        "n && b",
    ] {
        let err = errs(&e, t);
        assert!(
            err.starts_with("line 1, column ") && err.contains("Data type incorrect")
                || err.contains("Function not found: ! (())"),
            "{t}: {err}"
        );
    }
    let err = errs(&e, "n > 1 && x");
    assert_eq!(
        err,
        "line 1, column 10: Data type incorrect: () (expecting bool)"
    );
    assert!(!holds(&e, "false && x"));
    assert!(!holds(&e, "n < 1 && x"));
    assert!(holds(&e, "true || x"));
    assert!(holds(&e, "n > 1 || x"));
    assert!(
        !holds(&e, "false && x + 1 > 0"),
        "the erroring side is never evaluated"
    );
    // The optimizer drops a literal `true` from `&&` and `false` from `||` at compile
    // time, so the other operand is the value, unchecked.
    assert!(value(&e, "let x = (); x && true").is_unit());
    assert!(value(&e, "let x = (); false || x").is_unit());
    assert!(holds(&e, "(x && true) == ()"));
    let err = errs(&e, "n && true");
    assert!(err.contains("must evaluate to a bool, got i64"), "{err}");
    // A literal `()` operand is a compile error.
    assert!(compile(&e, &[("r", "() && true")]).is_err());
}

#[test]
fn missing_properties_are_unit() {
    let e = engine();
    assert!(holds(&e, "record.absent == ()"));
    assert!(holds(&e, "record.x == ()"));
    assert!(holds(&e, r#"lookup("geo", "192.0.2.1").country == ()"#));
    assert!(holds(&e, r#"#{a: 1}.b == ()"#));
    assert!(value(&e, r#"#{a: 1}["b"]"#).is_unit());
    // A bare name that is not a field of the batch is not bound.
    assert!(errs(&e, "absent == ()").contains("Variable not found: absent"));
}

#[test]
fn non_boolean_results_are_errors() {
    let e = engine();
    for (t, ty) in [("n", "i64"), ("x", "()"), ("s", "string"), ("f + 1", "f64")] {
        let err = errs(&e, t);
        assert_eq!(
            err,
            format!("line 1, column 1: the condition must evaluate to a bool, got {ty}"),
            "{t}"
        );
    }
}

fn tx() -> RecordBatch {
    batch(vec![
        (
            "amount",
            Arc::new(Float64Array::from(vec![Some(20_000.0), Some(50.0), None])),
        ),
        (
            "timestamp",
            Arc::new(
                TimestampMicrosecondArray::from(vec![3_600_000_000 * 2, 3_600_000_000 * 13, 0])
                    .with_timezone("UTC"),
            ),
        ),
        ("source_ip", strings(&["66.6.6.6", "10.1.0.1", "1.1.1.1"])),
        ("account_id", strings(&["acct-1", "acct-2", "acct-9"])),
        (
            "country",
            Arc::new(StringArray::from(vec![Some("US"), Some("US"), None])),
        ),
    ])
}

#[test]
fn conditions_see_fields_as_variables_and_on_record() {
    let e = engine();
    let rules = compile(
        &e,
        &[
            ("high_value", "amount > 10000.0"),
            (
                "unusual_hour",
                "hour(timestamp) >= 1 && hour(record.timestamp) < 5",
            ),
            ("threat", r#"in_table("threats", source_ip)"#),
            (
                "country_mismatch",
                r#"lookup_cidr("geo", record.source_ip).country != lookup("users", account_id).home_country"#,
            ),
            ("not_in_batch", "record.merchant == ()"),
            ("bare_not_in_batch", "merchant == ()"),
        ],
    )
    .unwrap();
    assert_eq!(rules.len(), 6);
    assert_eq!(rules.referenced_fields(0), ["amount"]);
    assert_eq!(rules.referenced_fields(1), ["timestamp"]);
    assert_eq!(rules.referenced_fields(3), ["source_ip", "account_id"]);
    assert!(rules.referenced_fields(99).is_empty());
    let b = tx();
    let mut scope = Scope::new();
    let mut table = Vec::new();
    for rule in 0..5 {
        let row: Vec<bool> = (0..b.num_rows())
            .map(|r| rules.eval(rule, &b, r, &mut scope).unwrap())
            .collect();
        table.push(row);
    }
    assert_eq!(table[0], [true, false, false], "null amount compares false");
    assert_eq!(table[1], [true, false, false]);
    assert_eq!(table[2], [true, false, false]);
    // Row 0: no geo match (() vs "US") → !=; row 1: GB vs FR; row 2: both () → equal.
    assert_eq!(table[3], [true, true, false]);
    assert_eq!(table[4], [true, true, true]);
    assert_eq!(
        rules.eval(5, &b, 0, &mut scope),
        Err("line 1, column 1: Variable not found: merchant".into())
    );
    assert!(rules.eval(9, &b, 0, &mut scope).is_err());
    assert!(rules.eval(0, &b, 3, &mut scope).is_err());
}

#[test]
fn condition_errors_carry_positions() {
    let e = engine();
    let (key, message) = compile_err(&e, &[("bad", "amount > ")]);
    assert_eq!(key, "rules.bad.condition");
    assert!(
        message.starts_with("rule `bad`: line 1, column "),
        "{message}"
    );
    let (key, message) = compile_err(
        &e,
        &[("ok", "true"), ("t", "\nin_table(\"nope\", source_ip)")],
    );
    assert_eq!(key, "rules.t.condition");
    assert!(
        message
            .contains("rule `t`: line 2, column 10: in_table(): unknown enrichment table `nope`"),
        "{message}"
    );
    let rules = compile(
        &e,
        &[
            ("arith", "amount + 1 > 0"),
            ("alert", r#"alert("x", "low") == ()"#),
        ],
    )
    .unwrap();
    let b = tx();
    let err = rules.eval(0, &b, 2, &mut Scope::new()).unwrap_err();
    assert!(
        err.starts_with("line 1, column 8: Function not found: + ((), i64)"),
        "{err}"
    );
    let err = rules.eval(1, &b, 0, &mut Scope::new()).unwrap_err();
    assert!(
        err.contains("alert() can only be called from a transform script"),
        "{err}"
    );
}

#[test]
fn conditions_respect_the_operation_limit() {
    let e = engine_with(ScriptLimits {
        max_operations: 20,
        ..ScriptLimits::default()
    });
    // Variables cannot be constant-folded away: every `+` is evaluated.
    let sum = vec!["amount"; 50].join(" + ");
    let rules = compile(&e, &[("slow", format!("{sum} > 0").as_str())]).unwrap();
    let err = rules.eval(0, &tx(), 0, &mut Scope::new()).unwrap_err();
    assert!(err.contains("Too many operations"), "{err}");
}
