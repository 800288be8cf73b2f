//! The rule file: the shipped defaults, and errors that name the rule and key.

mod common;

use pf_error::PfError;
use pf_rules::{CompileOptions, CompiledRules, ConditionFallback, RuleFile, RuleKind, RuleMode};
use pf_types::Severity;
use std::sync::Arc;

fn config_error(yaml: &str) -> (String, String) {
    match RuleFile::from_yaml(yaml, "rules.yaml") {
        Err(PfError::Config { key, message }) => (key, message),
        other => panic!("expected a config error for\n{yaml}\ngot {other:?}"),
    }
}

#[test]
fn shipped_defaults_load() {
    let file = common::default_rules();
    assert_eq!(file.threshold, 50.0);
    let names: Vec<&str> = file.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "high_value",
            "rapid_activity",
            "unusual_hour",
            "threat_ip",
            "geo_mismatch"
        ]
    );
    assert_eq!(file.rules[0].severity, Severity::High);
    assert_eq!(file.rules[1].severity, Severity::Medium);
    assert_eq!(file.rules[2].severity, Severity::Low);
    assert!(file.rules.iter().all(|r| r.enabled));
    let Some(RuleKind::Window(w)) = file.rules[1].kind() else {
        panic!("rapid_activity is a window rule")
    };
    assert_eq!(
        (w.key.as_str(), w.time.as_str(), w.seconds, w.min_count),
        ("account_id", "timestamp", 60, 5)
    );
    assert_eq!(
        file.rules[4].kind(),
        Some(RuleKind::Condition(
            r#"lookup_cidr("geo", source_ip).country != lookup("users", account_id).home_country"#
        ))
    );
    // All five compile without a script engine, and the conditions all vectorize.
    let rules = CompiledRules::compile(&file, &common::small_tables(), CompileOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    for info in rules.rules() {
        match info.mode {
            RuleMode::Vectorized => assert_ne!(info.name, "rapid_activity"),
            RuleMode::Window(_) => assert_eq!(info.name, "rapid_activity"),
            RuleMode::Fallback { .. } => panic!("{} did not vectorize", info.name),
        }
    }
}

#[test]
fn defaults_and_enabled() {
    let file = RuleFile::from_yaml(
        "rules:\n  - name: a\n    condition: amount > 1\n    severity: low\n    score: 5\n    enabled: false\n",
        "x",
    )
    .unwrap();
    assert_eq!(file.threshold, 50.0);
    assert!(!file.rules[0].enabled);
    // A disabled rule is not compiled: a broken condition or unknown table does not matter.
    let file = RuleFile::from_yaml(
        "rules:\n  - name: a\n    condition: lookup(\"nope\", x).y == 1\n    severity: low\n    score: 5\n    enabled: false\n",
        "x",
    )
    .unwrap();
    let rules =
        CompiledRules::compile(&file, &common::small_tables(), CompileOptions::default()).unwrap();
    assert_eq!(rules.rules().len(), 0);
}

#[test]
fn errors_name_rule_and_key() {
    let base = |extra: &str| {
        format!(
            "threshold: 50\nrules:\n  - name: high_value\n    condition: amount > 1\n    severity: high\n    score: 5\n{extra}"
        )
    };
    // (file, the key its error names, parts of the error's message)
    let cases: Vec<(String, &str, &[&str])> = vec![
        (
            base("  - name: second\n    condition: x\n    severity: hgih\n    score: 1\n"),
            "rules.second.severity",
            &["hgih", "rules.yaml"],
        ),
        (
            base("    enabeld: false\n"),
            "rules.high_value.enabeld",
            &["unknown field"],
        ),
        (
            base("  - condition: x\n    severity: low\n    score: 1\n"),
            "rules[1]",
            &[],
        ),
        (
            base("  - name: high_value\n    condition: x\n    severity: low\n    score: 1\n"),
            "rules.high_value.name",
            &["more than once"],
        ),
        (
            base(
                "  - name: both\n    condition: x\n    window: {key: a, time: t, seconds: 60, min_count: 5}\n    severity: low\n    score: 1\n",
            ),
            "rules.both",
            &["not both"],
        ),
        (
            base("  - name: neither\n    severity: low\n    score: 1\n"),
            "rules.neither",
            &[],
        ),
        (
            base(
                "  - name: w\n    window: {key: a, time: t, seconds: 0, min_count: 5}\n    severity: low\n    score: 1\n",
            ),
            "rules.w.window.seconds",
            &[],
        ),
        (
            base(
                "  - name: w\n    window: {key: a, time: t, seconds: 5, min_count: 0}\n    severity: low\n    score: 1\n",
            ),
            "rules.w.window.min_count",
            &[],
        ),
        (
            base(
                "  - name: w\n    window: {key: a, time: t, secs: 5, min_count: 1}\n    severity: low\n    score: 1\n",
            ),
            "rules.w.window.secs",
            &[],
        ),
        (
            base("  - name: \"bad,name\"\n    condition: x\n    severity: low\n    score: 1\n"),
            "rules.bad,name.name",
            &[],
        ),
        (
            base("  - name: s\n    condition: \" \"\n    severity: low\n    score: 1\n"),
            "rules.s.condition",
            &[],
        ),
        (
            base("  - name: s\n    condition: x\n    severity: low\n    score: .nan\n"),
            "rules.s.score",
            &[],
        ),
        ("threshold: [1]\nrules: []\n".into(), "threshold", &[]),
        (
            "rules:\n  - name: a\n   bad indent: [\n".into(),
            "rules",
            &["rules.yaml"],
        ),
        ("rulez: []\n".into(), "rulez", &[]),
        ("threshold: 5\n".into(), "rules", &["missing field `rules`"]),
    ];
    for (yaml, want, parts) in &cases {
        let (key, msg) = config_error(yaml);
        assert_eq!(key, *want, "{yaml}\n{msg}");
        for part in *parts {
            assert!(msg.contains(part), "{yaml}\n{msg}");
        }
    }
}

#[test]
fn compile_errors_name_rule_and_position() {
    let tables = common::small_tables();
    let compile = |cond: &str, options: CompileOptions| {
        let yaml = format!(
            "rules:\n  - name: r\n    condition: '{cond}'\n    severity: low\n    score: 1\n"
        );
        let file = RuleFile::from_yaml(&yaml, "x").unwrap();
        CompiledRules::compile(&file, &tables, options)
    };
    let message = |cond: &str| match compile(cond, CompileOptions::default()) {
        Err(PfError::Config { key, message }) => {
            assert_eq!(key, "rules.r.condition");
            message
        }
        other => panic!("{cond}: {other:?}"),
    };
    let m = message("amount >");
    assert!(m.contains("syntax error at line 1, position 9"), "{m}");
    let m = message(r#"lookup("nope", account_id).x == 1"#);
    assert!(
        m.contains("unknown enrichment table `nope`") && m.contains("geo, threats, users"),
        "{m}"
    );
    let m = message(r#"lookup("geo", source_ip).country == "US""#);
    assert!(m.contains("cidr table: use lookup_cidr()"), "{m}");
    let m = message(r#"lookup_cidr("users", account_id).home_country == "US""#);
    assert!(m.contains("exact table: use lookup()"), "{m}");
    let m = message(r#"lookup_cidr("geo", source_ip).contry == "US""#);
    assert!(
        m.contains("no column `contry`") && m.contains("country"),
        "{m}"
    );
    let m = message(r#"in_table("threat", source_ip)"#);
    assert!(m.contains("unknown enrichment table `threat`"), "{m}");
    // Not vectorizable and no fallback: the error names the rule and why.
    let m = message("amount.abs() > 5");
    assert!(
        m.contains("not vectorizable") && m.contains("no script-engine fallback"),
        "{m}"
    );

    // With a fallback it compiles, and reports that the rule is not vectorized.
    struct Never;
    impl ConditionFallback for Never {
        fn eval(&self, _: usize, _: &arrow::array::RecordBatch, _: usize) -> Result<bool, String> {
            Ok(false)
        }
    }
    let rules = compile(
        "amount.abs() > 5",
        CompileOptions {
            fallback: Some(Arc::new(Never)),
            ..CompileOptions::default()
        },
    )
    .unwrap();
    assert_eq!(rules.is_vectorized("r"), Some(false));
    let info = rules.rules().next().unwrap();
    assert!(
        matches!(&info.mode, RuleMode::Fallback { reason } if reason.contains("position 7")),
        "{info:?}"
    );
}

#[test]
fn schema_check_names_missing_fields() {
    let file = common::default_rules();
    let rules =
        CompiledRules::compile(&file, &common::small_tables(), CompileOptions::default()).unwrap();
    rules
        .check_schema(&pf_datagen::transaction_schema())
        .unwrap();
    let schema = arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        "amount",
        arrow::datatypes::DataType::Float64,
        true,
    )]);
    match rules.check_schema(&schema) {
        Err(PfError::Config { key, message }) => {
            assert_eq!(key, "rules.rapid_activity.window");
            assert!(message.contains("account_id"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
