//! The vectorized path against per-record evaluation on generated transactions, and the
//! per-record fallback for rules outside the vectorized subset.

mod common;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{Float64Type, Schema, TimestampMicrosecondType};
use common::Rng;
use pf_datagen::TransactionGenerator;
use pf_enrichment::{EnrichmentTable, EnrichmentTables};
use pf_rules::{
    BatchMeta, CompileOptions, CompiledRules, ConditionFallback, RuleCounts, RuleEvaluation,
    RuleFile, RuleMode,
};

const DAY_US: i64 = 86_400_000_000;
const HOUR_US: i64 = 3_600_000_000;

/// The five default rules written by hand in plain Rust, following the documented Rhai
/// semantics (and nothing from this crate): `()` compares unequal to values and equal to
/// `()`, ordering with `()` is false, `&&` short-circuits, lookups that miss are `()`.
struct HandWritten {
    geo: Arc<EnrichmentTable>,
    users: Arc<EnrichmentTable>,
    threats: Arc<EnrichmentTable>,
}

impl HandWritten {
    fn new(tables: &EnrichmentTables) -> Self {
        HandWritten {
            geo: tables.get("geo").unwrap().clone(),
            users: tables.get("users").unwrap().clone(),
            threats: tables.get("threats").unwrap().clone(),
        }
    }
}

fn text<'a>(batch: &'a RecordBatch, name: &str, row: usize) -> Option<&'a str> {
    let c = batch.column_by_name(name)?.as_string::<i32>();
    c.is_valid(row).then(|| c.value(row))
}

impl ConditionFallback for HandWritten {
    fn eval(&self, rule: usize, batch: &RecordBatch, row: usize) -> Result<bool, String> {
        match rule {
            0 => {
                let a = batch
                    .column_by_name("amount")
                    .unwrap()
                    .as_primitive::<Float64Type>();
                Ok(a.is_valid(row) && a.value(row) > 10000.0)
            }
            2 => {
                let t = batch
                    .column_by_name("timestamp")
                    .unwrap()
                    .as_primitive::<TimestampMicrosecondType>();
                if t.is_null(row) {
                    // hour(()) is (); `() >= 1` is false; && short-circuits.
                    return Ok(false);
                }
                let hour = t.value(row).rem_euclid(DAY_US) / HOUR_US;
                Ok((1..5).contains(&hour))
            }
            3 => Ok(text(batch, "source_ip", row)
                .and_then(|ip| self.threats.lookup_row(ip))
                .is_some()),
            4 => {
                let country = text(batch, "source_ip", row)
                    .and_then(|ip| self.geo.lookup_value(ip, "country"));
                let home = text(batch, "account_id", row)
                    .and_then(|a| self.users.lookup_value(a, "home_country"));
                // Option's equality is exactly `()`'s: None == None, None != Some.
                Ok(country != home)
            }
            5 if row % 7 == 3 => Err("custom failure".into()),
            5 => Ok(row.is_multiple_of(2)),
            _ => Err(format!("no rule {rule}")),
        }
    }
}

/// ~1 % of rows moved to threat space (listed anchors, random threat-space addresses that
/// may or may not be listed) or to odd addresses, and ~1 % to an unknown account.
fn with_threats(batch: &RecordBatch, rng: &mut Rng) -> RecordBatch {
    let schema = batch.schema();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let i = schema.index_of("source_ip").unwrap();
    let ips = columns[i].as_string::<i32>();
    let replaced: arrow::array::StringArray = (0..batch.num_rows())
        .map(|row| {
            let original = ips.is_valid(row).then(|| ips.value(row).to_owned());
            if rng.below(100) != 0 {
                return original;
            }
            Some(match rng.below(6) {
                0 => "95.214.53.17".to_owned(),
                1 => "::ffff:109.70.100.9".to_owned(),
                2 => "2a0e:1c80::5".to_owned(),
                3 => format!(
                    "{}.{}.{}.{}",
                    [36, 58, 95, 109, 113, 176, 188, 197][rng.below(8) as usize],
                    rng.below(256),
                    rng.below(256),
                    rng.below(256)
                ),
                4 => "not-an-ip".to_owned(),
                _ => "10.1.2.3".to_owned(),
            })
        })
        .collect();
    columns[i] = Arc::new(replaced);
    // And some accounts the users table does not know.
    let i = schema.index_of("account_id").unwrap();
    let accounts = columns[i].as_string::<i32>();
    let replaced: arrow::array::StringArray = (0..batch.num_rows())
        .map(|row| {
            if rng.below(100) == 0 {
                Some("acct-9999999".to_owned())
            } else {
                Some(accounts.value(row).to_owned())
            }
        })
        .collect();
    columns[i] = Arc::new(replaced);
    RecordBatch::try_new(schema, columns).unwrap()
}

/// `batch` with ~1 % nulls in account_id, amount, timestamp and source_ip (independently),
/// and every field nullable.
fn with_nulls(batch: &RecordBatch, rng: &mut Rng) -> RecordBatch {
    let schema = batch.schema();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for name in ["account_id", "amount", "timestamp", "source_ip"] {
        let i = schema.index_of(name).unwrap();
        let mask = BooleanArray::from(
            (0..batch.num_rows())
                .map(|_| rng.below(100) == 0)
                .collect::<Vec<_>>(),
        );
        columns[i] = arrow::compute::nullif(columns[i].as_ref(), &mask).unwrap();
    }
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn assert_same(a: &RuleEvaluation, b: &RuleEvaluation, what: &str) {
    assert_eq!(a.fired, b.fired, "{what}: fired");
    assert_eq!(a.fraud_score, b.fraud_score, "{what}: fraud_score");
    assert_eq!(a.fraud_rules, b.fraud_rules, "{what}: fraud_rules");
    assert_eq!(a.is_fraud, b.is_fraud, "{what}: is_fraud");
    assert_eq!(a.errors, b.errors, "{what}: errors");
    let keys = |e: &RuleEvaluation| e.alerts.iter().map(|x| x.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(a), keys(b), "{what}: alerts");
}

#[test]
fn force_fallback_agrees_with_vectorized_on_200k_generated_rows() {
    let dir = tempfile::tempdir().unwrap();
    // Same seed as the transactions and a user for every account (200k rows use 4,000),
    // so the generator's labels are exact against these tables.
    let tables = common::generated_tables(dir.path(), 50_000, 10_000, 5_000, 42);
    let file = common::default_rules();
    let compile = |options: CompileOptions| {
        CompiledRules::compile(&file, &tables, options).unwrap_or_else(|e| panic!("{e}"))
    };
    let vectorized = compile(CompileOptions::default());
    let hand = compile(CompileOptions {
        fallback: Some(Arc::new(HandWritten::new(&tables))),
        force_fallback: true,
        ..CompileOptions::default()
    });
    let reference = compile(CompileOptions {
        force_fallback: true,
        ..CompileOptions::default()
    });
    // Perturbed batches go to separate engines: their window state must not disturb the
    // clean batches' ground truth.
    let perturbed = [
        compile(CompileOptions::default()),
        compile(CompileOptions {
            fallback: Some(Arc::new(HandWritten::new(&tables))),
            force_fallback: true,
            ..CompileOptions::default()
        }),
        compile(CompileOptions {
            force_fallback: true,
            ..CompileOptions::default()
        }),
    ];

    let mut rng = Rng(9);
    let mut clean: Vec<RuleCounts> = Vec::new();
    let mut fired_rows = [0u64; 5];
    let mut rows = 0u64;
    for (n, batch) in TransactionGenerator::single_file(42, 200_000, 16_384).enumerate() {
        let meta = BatchMeta::contiguous("file:///tx.parquet", rows);
        rows += batch.num_rows() as u64;
        let (engines, batch) = if n % 2 == 0 {
            ([&vectorized, &hand, &reference], batch)
        } else {
            // Threat-space and odd addresses, unknown accounts and nulls sprinkled in.
            let b = with_threats(&batch, &mut rng);
            let b = with_nulls(&b, &mut rng);
            ([&perturbed[0], &perturbed[1], &perturbed[2]], b)
        };
        let v = engines[0].evaluate(&batch, &meta).unwrap();
        let h = engines[1].evaluate(&batch, &meta).unwrap();
        let r = engines[2].evaluate(&batch, &meta).unwrap();
        assert_same(&v, &h, &format!("batch {n}, hand-written fallback"));
        assert_same(&v, &r, &format!("batch {n}, reference interpreter"));
        assert!(
            v.errors.is_empty(),
            "{:?}",
            &v.errors[..v.errors.len().min(3)]
        );
        for (i, c) in v.counts.iter().enumerate() {
            fired_rows[i] += c.fired;
            if !matches!(vectorized.rules().nth(i).unwrap().mode, RuleMode::Window(_)) {
                assert_eq!(
                    c.fallback_rows, 0,
                    "{}: the kernels decide every row",
                    c.rule
                );
            }
            if n % 2 == 0 {
                match clean.get_mut(i) {
                    Some(t) => t.merge(c),
                    None => clean.push(c.clone()),
                }
            }
        }
        assert_eq!(h.counts[0].fallback_rows, batch.num_rows() as u64);
    }
    assert_eq!(rows, 200_000);
    // Every rule fires somewhere, and not everywhere, so the comparison means something.
    for (c, n) in clean.iter().zip(fired_rows) {
        assert!(n > 50 && n < 20_000, "{}: fired {n}", c.rule);
    }
    // On unperturbed data the generator's labels are exact for all five rules
    // (rapid_activity as a causal rule sees it: from the fifth row of a burst on).
    for c in &clean {
        assert!(c.labelled.unwrap() > 20, "{c:?}");
        assert_eq!(c.precision(), Some(1.0), "{c:?}");
        assert_eq!(c.recall(), Some(1.0), "{c:?}");
    }
}

#[test]
fn rules_outside_the_subset_go_to_the_fallback() {
    let mut file: RuleFile = common::default_rules();
    let yaml = "rules:\n  - name: custom\n    condition: 'amount.abs() > 100.0'\n    severity: low\n    score: 5\n";
    file.rules
        .extend(RuleFile::from_yaml(yaml, "x").unwrap().rules);
    let tables = common::small_tables();
    let rules = CompiledRules::compile(
        &file,
        &tables,
        CompileOptions {
            fallback: Some(Arc::new(HandWritten::new(&tables))),
            ..CompileOptions::default()
        },
    )
    .unwrap();
    assert_eq!(rules.is_vectorized("custom"), Some(false));
    assert_eq!(rules.is_vectorized("high_value"), Some(true));
    assert_eq!(rules.is_vectorized("rapid_activity"), Some(false));
    let rows: Vec<common::Tx> = (0..14)
        .map(|i| common::Tx {
            account: Some("acct-1"),
            amount: Some(1.0),
            ts: Some(common::DAY0 + 12 * common::HOUR + i * 3_600 * common::SEC),
            ip: Some("3.1.1.1"),
            label: None,
        })
        .collect();
    let out = rules
        .evaluate(&common::batch(&rows), &BatchMeta::contiguous("u", 0))
        .unwrap();
    let custom = out.counts.iter().find(|c| c.rule == "custom").unwrap();
    assert_eq!(custom.fallback_rows, 14);
    assert_eq!(custom.errors, 2);
    assert_eq!(custom.fired, 6, "even rows except row 10, which failed");
    let errors: Vec<(usize, &str)> = out
        .errors
        .iter()
        .map(|e| (e.row, e.message.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (3, "rule custom: custom failure"),
            (10, "rule custom: custom failure")
        ]
    );
    let fired: Vec<bool> = out.fired[5].iter().map(Option::unwrap).collect();
    let want: Vec<bool> = (0..14).map(|r| r % 2 == 0 && r % 7 != 3).collect();
    assert_eq!(fired, want);
    assert_eq!(out.fraud_rules.value(0), "custom");
}

#[test]
fn reference_interpreter_as_an_external_fallback() {
    let tables = common::small_tables();
    let file = common::default_rules();
    let reference = Arc::new(pf_rules::ReferenceInterpreter::new(&file, &tables).unwrap());
    let forced = CompiledRules::compile(
        &file,
        &tables,
        CompileOptions {
            fallback: Some(reference.clone()),
            force_fallback: true,
            ..CompileOptions::default()
        },
    )
    .unwrap();
    let vectorized = CompiledRules::compile(&file, &tables, CompileOptions::default()).unwrap();
    let rows: Vec<common::Tx> = (0..40)
        .map(|i| common::Tx {
            account: [Some("acct-1"), Some("acct-2"), None, Some("acct-9")][i % 4],
            amount: [Some(20_000.0), Some(1.0), None][i % 3],
            ts: Some(common::DAY0 + (i as i64 % 7) * common::HOUR),
            ip: [
                Some("81.1.1.1"),
                Some("3.3.3.3"),
                Some("95.214.53.1"),
                None,
                Some("x"),
            ][i % 5],
            label: None,
        })
        .collect();
    let batch = common::batch(&rows);
    let meta = BatchMeta::contiguous("u", 0);
    let a = vectorized.evaluate(&batch, &meta).unwrap();
    let b = forced.evaluate(&batch, &meta).unwrap();
    assert_same(&a, &b, "reference interpreter as fallback");
    assert_eq!(b.counts[0].fallback_rows, 40);
    // Window rules and unknown indexes are not its business.
    assert!(reference.eval(1, &batch, 0).is_err());
    assert!(reference.eval(99, &batch, 0).is_err());
    // A syntax error is a configuration error here too.
    let bad = RuleFile::from_yaml(
        "rules:\n  - name: r\n    condition: 'amount >'\n    severity: low\n    score: 1\n",
        "x",
    )
    .unwrap();
    assert!(pf_rules::ReferenceInterpreter::new(&bad, &tables).is_err());
}
