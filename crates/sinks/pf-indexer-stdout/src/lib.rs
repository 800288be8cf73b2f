//! Destinations that need no service: for pipelines under test, benchmarks and
//! shell composition.
//!
//! * `stats` — counts documents and batches; the cheapest destination that still
//!   accounts for every record.
//! * `stdout` — writes every document as one NDJSON line.
//! * `null` — accepts and forgets.
//!
//! Fraud alerts have their own local sink, [`NdjsonAlertSink`].

mod alerts;

pub use alerts::{AlertTarget, NdjsonAlertSink};

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::json::LineDelimitedWriter;

use pf_error::{ErrorClass, PfError, Result};
use pf_traits::{DocBatch, IndexOutcome, Indexer, IndexerFactory};
use pf_types::WorkItem;

/// Which local destination to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalDestination {
    /// Count documents only.
    Stats,
    /// NDJSON documents on standard output.
    Stdout,
    /// Discard documents.
    Null,
}

/// Totals seen by a [`LocalIndexerFactory`]'s indexers across all threads.
#[derive(Debug, Default)]
pub struct LocalTotals {
    /// Documents accepted.
    pub docs: AtomicU64,
    /// Requests (chunks) accepted.
    pub requests: AtomicU64,
}

/// Builds local indexers, one per pipeline thread.
#[derive(Debug, Clone)]
pub struct LocalIndexerFactory {
    destination: LocalDestination,
    totals: Arc<LocalTotals>,
}

impl LocalIndexerFactory {
    /// A factory for `destination`.
    pub fn new(destination: LocalDestination) -> Self {
        LocalIndexerFactory {
            destination,
            totals: Arc::default(),
        }
    }

    /// Totals over every indexer built by this factory.
    pub fn totals(&self) -> Arc<LocalTotals> {
        self.totals.clone()
    }
}

impl IndexerFactory for LocalIndexerFactory {
    fn name(&self) -> &'static str {
        match self.destination {
            LocalDestination::Stats => "stats",
            LocalDestination::Stdout => "stdout",
            LocalDestination::Null => "null",
        }
    }

    fn create(&self) -> Result<Box<dyn Indexer>> {
        Ok(Box::new(LocalIndexer {
            destination: self.destination,
            totals: self.totals.clone(),
            buf: Vec::new(),
        }))
    }

    fn finish(&self) -> Result<()> {
        std::io::stdout()
            .flush()
            .map_err(|e| stdout_error(e.to_string()))
    }
}

/// One thread's local indexer; the stdout variant serializes into its own buffer and
/// takes the stdout lock once per request, so threads never interleave documents.
struct LocalIndexer {
    destination: LocalDestination,
    totals: Arc<LocalTotals>,
    buf: Vec<u8>,
}

fn stdout_error(message: String) -> PfError {
    // A closed pipe will not reopen: retrying the file would only fail again.
    PfError::Indexer {
        destination: "stdout",
        class: ErrorClass::Permanent,
        message,
    }
}

impl Indexer for LocalIndexer {
    fn index(&mut self, _item: &WorkItem, docs: &[DocBatch]) -> Result<IndexOutcome> {
        let rows: u64 = docs.iter().map(|d| d.num_rows() as u64).sum();
        if self.destination == LocalDestination::Stdout {
            self.buf.clear();
            let mut writer = LineDelimitedWriter::new(&mut self.buf);
            for d in docs {
                let batch = utc_as_offset(&d.batch)?;
                writer
                    .write(&batch)
                    .map_err(|e| stdout_error(format!("cannot serialize documents: {e}")))?;
            }
            writer
                .finish()
                .map_err(|e| stdout_error(format!("cannot serialize documents: {e}")))?;
            std::io::stdout()
                .lock()
                .write_all(&self.buf)
                .map_err(|e| stdout_error(e.to_string()))?;
        }
        self.totals.docs.fetch_add(rows, Ordering::Relaxed);
        self.totals.requests.fetch_add(1, Ordering::Relaxed);
        Ok(IndexOutcome {
            indexed: rows,
            failures: Vec::new(),
        })
    }
}

/// arrow-json can only render timestamps whose zone is an offset (without the chrono-tz
/// feature), so columns in the named zone `UTC` (what readers and scripts produce) are
/// relabelled `+00:00`: the same instants, written as RFC 3339 with `Z`.
fn utc_as_offset(batch: &arrow::array::RecordBatch) -> Result<arrow::array::RecordBatch> {
    use arrow::datatypes::{DataType, Field, Schema};
    let named_utc = |dt: &DataType| matches!(dt, DataType::Timestamp(_, Some(tz)) if tz.eq_ignore_ascii_case("utc") || tz.as_ref() == "Z");
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| named_utc(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        match f.data_type() {
            DataType::Timestamp(unit, Some(_)) if named_utc(f.data_type()) => {
                let dt = DataType::Timestamp(*unit, Some("+00:00".into()));
                columns
                    .push(arrow::compute::cast(c, &dt).map_err(|e| {
                        stdout_error(format!("cannot convert `{}`: {e}", f.name()))
                    })?);
                fields.push(Field::new(f.name(), dt, f.is_nullable()));
            }
            _ => {
                columns.push(c.clone());
                fields.push(f.as_ref().clone());
            }
        }
    }
    arrow::array::RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| stdout_error(format!("cannot serialize documents: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch};

    #[test]
    fn stats_and_null_count_every_document() {
        let batch =
            RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)])
                .unwrap();
        let item = WorkItem::from_uri("/x.parquet").unwrap();
        for dest in [LocalDestination::Stats, LocalDestination::Null] {
            let f = LocalIndexerFactory::new(dest);
            let mut ix = f.create().unwrap();
            let docs = [
                DocBatch::contiguous(batch.clone(), 0),
                DocBatch::contiguous(batch.slice(1, 2), 1),
            ];
            let out = ix.index(&item, &docs).unwrap();
            assert_eq!(out.indexed, 5);
            assert!(out.failures.is_empty());
            assert_eq!(f.totals().docs.load(Ordering::Relaxed), 5);
            assert_eq!(f.totals().requests.load(Ordering::Relaxed), 1);
        }
    }

    #[test]
    fn utc_timestamps_render_with_an_offset() {
        use arrow::array::TimestampMicrosecondArray;
        let ts = TimestampMicrosecondArray::from(vec![1_767_225_600_000_000]).with_timezone("UTC");
        let batch = RecordBatch::try_from_iter([("t", Arc::new(ts) as _)]).unwrap();
        let out = utc_as_offset(&batch).unwrap();
        let mut buf = Vec::new();
        let mut w = LineDelimitedWriter::new(&mut buf);
        w.write(&out).unwrap();
        w.finish().unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\"t\":\"2026-01-01T00:00:00Z\"}\n"
        );
    }
}
