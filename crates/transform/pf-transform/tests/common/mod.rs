//! Shared fixtures: small enrichment tables and an engine over them.

#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use pf_enrichment::{EnrichmentTable, EnrichmentTables, TableKind};
use pf_transform::{ScriptEngine, ScriptLimits};

pub fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap()
}

pub fn strings(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

/// geo (cidr): network → country (Utf8), asn (Int64); threats (cidr): network → list;
/// users (exact): account_id → home_country.
pub fn tables() -> EnrichmentTables {
    let geo = EnrichmentTable::from_batch(
        "geo",
        TableKind::Cidr,
        "network",
        &batch(vec![
            (
                "network",
                strings(&["10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32"]),
            ),
            ("country", strings(&["US", "GB", "DE"])),
            (
                "asn",
                Arc::new(Int64Array::from(vec![Some(100), None, Some(300)])),
            ),
        ]),
    )
    .unwrap();
    let threats = EnrichmentTable::from_batch(
        "threats",
        TableKind::Cidr,
        "network",
        &batch(vec![
            ("network", strings(&["66.6.6.0/24"])),
            ("list", strings(&["botnet"])),
        ]),
    )
    .unwrap();
    let users = EnrichmentTable::from_batch(
        "users",
        TableKind::Exact,
        "account_id",
        &batch(vec![
            ("account_id", strings(&["acct-1", "acct-2", "42"])),
            ("home_country", strings(&["US", "FR", "IT"])),
        ]),
    )
    .unwrap();
    EnrichmentTables::from_tables([geo, threats, users]).unwrap()
}

pub fn engine() -> ScriptEngine {
    ScriptEngine::new(tables(), ScriptLimits::default()).unwrap()
}

pub fn engine_with(limits: ScriptLimits) -> ScriptEngine {
    ScriptEngine::new(tables(), limits).unwrap()
}
