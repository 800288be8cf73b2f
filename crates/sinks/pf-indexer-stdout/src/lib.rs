//! Destinations that need no service: for pipelines under test, benchmarks and
//! shell composition.
//!
//! * `stats` — counts documents and batches; the cheapest destination that still
//!   accounts for every record.
//! * `stdout` — writes every document as one NDJSON line, with the same encoder (and
//!   so the same bytes) as the Elasticsearch source lines (`pf-doc-json`).
//! * `null` — accepts and forgets.
//!
//! Fraud alerts have their own local sink, [`NdjsonAlertSink`].

mod alerts;

pub use alerts::{AlertTarget, NdjsonAlertSink};

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pf_doc_json::DocEncoder;

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
            for d in docs {
                let mut encoder = DocEncoder::new(&d.batch)
                    .map_err(|e| stdout_error(format!("cannot serialize documents: {e}")))?;
                for row in 0..d.batch.num_rows() {
                    encoder.write_doc(row, &mut self.buf);
                    self.buf.push(b'\n');
                }
            }
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
}
