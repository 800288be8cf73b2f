//! Fixtures over generated transactions shared by tests and benchmarks of other crates:
//! indexer input, the rapid-activity window request and a small transform script.

use arrow::array::{AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use pf_error::Result;
use pf_traits::{BatchMeta, DocBatch, WindowOutcome, WindowRequest, WindowStore};

use crate::TransactionGenerator;

/// `rows` generated transactions of `seed` in batches of `batch_rows`, with their file
/// ordinals (as one file).
pub fn doc_batches(seed: u64, rows: u64, batch_rows: usize) -> Vec<DocBatch> {
    let mut g = TransactionGenerator::single_file(seed, rows, batch_rows);
    let mut out = Vec::new();
    let mut first = 0;
    while let Some(b) = g.next_batch() {
        let n = b.num_rows() as u64;
        out.push(DocBatch::contiguous(b, first));
        first += n;
    }
    out
}

/// `store` observing the rows of `batch` (generated transactions), `first_row` on in
/// `uri`, for the shipped rapid-activity rule: 5 events of one `account_id` within 60 s
/// of `timestamp`.
///
/// Panics when `batch` lacks those columns.
pub fn observe_rapid_activity(
    store: &dyn WindowStore,
    uri: &str,
    batch: &RecordBatch,
    first_row: u64,
) -> Result<WindowOutcome> {
    let keys: &StringArray = batch.column_by_name("account_id").unwrap().as_string();
    let times: &TimestampMicrosecondArray =
        batch.column_by_name("timestamp").unwrap().as_primitive();
    let meta = BatchMeta::contiguous(uri, first_row);
    store.observe(&WindowRequest {
        rule: "rapid_activity",
        keys,
        times,
        seconds: 60,
        min_count: 5,
        meta: &meta,
    })
}

/// A Rhai transform touching three fields of a generated transaction: it adds
/// `amount_usd` and `big` to every record and `flag` to ATM ones.
pub const THREE_FIELD_SCRIPT: &str = r#"fn transform(record) {
    record.amount_usd = record.amount * 1.1;
    record.big = record.amount > 1000.0;
    if record.channel == "atm" { record.flag = true }
    record
}"#;
