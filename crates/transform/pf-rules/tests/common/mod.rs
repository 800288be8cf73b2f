//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use pf_datagen::transaction_schema;
use pf_enrichment::{EnrichmentTable, EnrichmentTables, TableKind};
use pf_rules::RuleFile;

/// The shipped default rules.
pub fn default_rules() -> RuleFile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../config/rules/fraud.yaml");
    RuleFile::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn table(name: &str, kind: TableKind, key: &str, columns: &[(&str, Vec<&str>)]) -> EnrichmentTable {
    let fields: Vec<arrow::datatypes::Field> = columns
        .iter()
        .map(|(n, _)| arrow::datatypes::Field::new(*n, arrow::datatypes::DataType::Utf8, false))
        .collect();
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|(_, v)| Arc::new(StringArray::from(v.clone())) as ArrayRef)
        .collect();
    let batch =
        RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), arrays).unwrap();
    EnrichmentTable::from_batch(name, kind, key, &batch).unwrap()
}

/// A cidr table keyed by `network`, with one value column `column`.
fn cidr_table(name: &str, column: &str, rows: &[(&str, &str)]) -> EnrichmentTable {
    let networks = rows.iter().map(|r| r.0).collect();
    let values = rows.iter().map(|r| r.1).collect();
    table(
        name,
        TableKind::Cidr,
        "network",
        &[("network", networks), (column, values)],
    )
}

/// Small hand-made tables: geo (cidr), users (exact), threats (cidr).
///
/// * geo: 81.0.0.0/8 GB, 3.0.0.0/8 US, 95.0.0.0/8 RU, 2001::/16 US
/// * users: acct-1 US, acct-2 GB, acct-3 (home_country missing → not in table)
/// * threats: 95.214.52.0/22 tor_exit, 1.2.3.4 scanner
pub fn small_tables() -> EnrichmentTables {
    EnrichmentTables::from_tables([
        cidr_table(
            "geo",
            "country",
            &[
                ("81.0.0.0/8", "GB"),
                ("3.0.0.0/8", "US"),
                ("95.0.0.0/8", "RU"),
                ("2001::/16", "US"),
            ],
        ),
        table(
            "users",
            TableKind::Exact,
            "account_id",
            &[
                ("account_id", vec!["acct-1", "acct-2"]),
                ("home_country", vec!["US", "GB"]),
            ],
        ),
        cidr_table(
            "threats",
            "category",
            &[("95.214.52.0/22", "tor_exit"), ("1.2.3.4", "scanner")],
        ),
    ])
    .unwrap()
}

/// One transaction for [`batch`]; `None` fields are null (the schema is made nullable).
#[derive(Debug, Clone, Default)]
pub struct Tx {
    pub account: Option<&'static str>,
    pub amount: Option<f64>,
    pub ts: Option<i64>,
    pub ip: Option<&'static str>,
    pub label: Option<&'static str>,
}

/// 2026-01-01T00:00:00Z in µs.
pub const DAY0: i64 = 1_767_225_600_000_000;
pub const HOUR: i64 = 3_600_000_000;
pub const SEC: i64 = 1_000_000;

/// A batch in the transaction schema (every field nullable).
pub fn batch(rows: &[Tx]) -> RecordBatch {
    let n = rows.len();
    let schema = transaction_schema();
    let fields: Vec<arrow::datatypes::Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let s = |v: Vec<Option<String>>| Arc::new(StringArray::from(v)) as ArrayRef;
    let columns: Vec<ArrayRef> = vec![
        s((0..n).map(|i| Some(format!("tx-{i}"))).collect()),
        s(rows.iter().map(|r| r.account.map(str::to_owned)).collect()),
        s(vec![Some("merch-1".to_owned()); n]),
        Arc::new(Float64Array::from(
            rows.iter().map(|r| r.amount).collect::<Vec<_>>(),
        )),
        s(vec![Some("USD".to_owned()); n]),
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(|r| r.ts).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        s(rows.iter().map(|r| r.ip.map(str::to_owned)).collect()),
        s(vec![Some("US".to_owned()); n]),
        s(vec![Some("web".to_owned()); n]),
        Arc::new(BooleanArray::from(vec![false; n])),
        Arc::new(BooleanArray::from(
            rows.iter().map(|r| r.label.is_some()).collect::<Vec<_>>(),
        )),
        s(rows.iter().map(|r| r.label.map(str::to_owned)).collect()),
    ];
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns).unwrap()
}

/// SplitMix64, for deterministic shuffles without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Generated geo (cidr), users (exact) and threats (cidr) tables of the given sizes,
/// written as Parquet into `dir` and loaded.
pub fn generated_tables(
    dir: &std::path::Path,
    geo: usize,
    users: usize,
    threats: usize,
    seed: u64,
) -> EnrichmentTables {
    use pf_datagen::layout::{write_geo_table, write_threat_table, write_users_table};
    use pf_enrichment::TableConfig;
    let g = dir.join("geo.parquet");
    let u = dir.join("users.parquet");
    let t = dir.join("threats.parquet");
    write_geo_table(&g, geo, seed).unwrap();
    write_users_table(&u, users, seed).unwrap();
    write_threat_table(&t, threats, seed).unwrap();
    let config = |name: &str, kind, path: PathBuf, key: &str| TableConfig {
        name: name.into(),
        kind,
        path,
        format: None,
        key: key.into(),
        values: vec![],
    };
    EnrichmentTables::load(&[
        config("geo", TableKind::Cidr, g, "network"),
        config("users", TableKind::Exact, u, "account_id"),
        config("threats", TableKind::Cidr, t, "network"),
    ])
    .unwrap_or_else(|e| panic!("{e}"))
}
