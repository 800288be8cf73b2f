use pf_error::Result;
use pf_types::{RecordFailure, WorkItem};

use crate::DocBatch;

/// How large one destination request may grow (`indexer.bulk_max_docs`,
/// `indexer.bulk_max_bytes`): the accumulator cuts requests here, and sinks that
/// serialize (Elasticsearch) cut their bodies at the same limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkLimits {
    /// Documents per request.
    pub max_docs: usize,
    /// Bytes per request (in-memory Arrow bytes for the accumulator, body bytes for a
    /// serializing sink).
    pub max_bytes: usize,
}

impl Default for BulkLimits {
    fn default() -> Self {
        BulkLimits {
            max_docs: 5_000,
            max_bytes: 5 << 20,
        }
    }
}

impl BulkLimits {
    /// Room for `requests` requests of these limits (at least one).
    pub fn times(self, requests: usize) -> BulkLimits {
        let n = requests.max(1);
        BulkLimits {
            max_docs: self.max_docs.saturating_mul(n),
            max_bytes: self.max_bytes.saturating_mul(n),
        }
    }
}

/// What the destination did with one request's documents.
///
/// `indexed + failures.len()` equals the number of documents sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexOutcome {
    /// Documents the destination accepted (or already held, for idempotent creates).
    pub indexed: u64,
    /// Documents the destination rejected on their own (e.g. a mapping error).
    pub failures: Vec<RecordFailure>,
}

/// One pipeline thread's connection to a destination.
///
/// `index` returns only once every document has a final outcome, so that a work item
/// can be acknowledged as soon as all its batches were indexed. An `Err` means the
/// request as a whole failed after the indexer's own retries; its class decides
/// whether the file is retried or dead-lettered.
pub trait Indexer: Send {
    /// Indexes `docs`, all from `item`, as one request (or as few as the destination needs).
    fn index(&mut self, item: &WorkItem, docs: &[DocBatch]) -> Result<IndexOutcome>;

    /// A new attempt at `item` starts on this thread: whatever an earlier attempt left
    /// uncommitted is dropped (it will be indexed again from the resume point).
    fn begin(&mut self, item: &WorkItem) {
        let _ = item;
    }

    /// Called at every resume point of `item` (`last`: and once after its last
    /// document). Returns whether every document indexed so far is durable, so the
    /// resume point may be recorded; with `last` it must make them durable and return
    /// `true`. Destinations that buffer output (a Parquet part) decide here where their
    /// files end; those whose `index` is already final (Elasticsearch) keep the default.
    fn commit(&mut self, item: &WorkItem, last: bool) -> Result<bool> {
        let _ = (item, last);
        Ok(true)
    }
}

/// Builds one [`Indexer`] per pipeline thread and shares anything thread-safe between them.
pub trait IndexerFactory: Send + Sync {
    /// The destination's name, for logs and the summary.
    fn name(&self) -> &'static str;
    /// A new indexer for one pipeline thread.
    fn create(&self) -> Result<Box<dyn Indexer>>;
    /// How many requests of [`BulkLimits`] one chunk (one [`Indexer::index`] call, and
    /// the unit of checkpoints) may fill: a destination that sends requests in parallel
    /// gets that many to send at once. `1` by default.
    fn requests_per_chunk(&self) -> usize {
        1
    }
    /// Called once after every pipeline thread finished; flushes shared output.
    fn finish(&self) -> Result<()> {
        Ok(())
    }
    /// Destination-specific counters by stable name (e.g. bulk items sent, retried,
    /// rejected), added to the run summary; none by default.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
