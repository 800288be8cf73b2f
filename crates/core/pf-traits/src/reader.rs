use std::sync::Arc;

use arrow::array::RecordBatch;

use pf_error::Result;
use pf_types::{Checkpoint, FileFormat, FileStats, RecordFailure, WorkItem};

use crate::ObjectSource;

/// A point after which reading can resume without repeating records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResumePoint {
    /// See [`Checkpoint::position`].
    pub position: u64,
    /// See [`Checkpoint::next_row`].
    pub next_row: u64,
    /// See [`Checkpoint::lines_done`].
    pub lines_done: u64,
}

impl ResumePoint {
    /// The checkpoint that resumes here, with `stats` the counters of the work before it.
    pub fn checkpoint(self, stats: FileStats) -> Checkpoint {
        Checkpoint {
            position: self.position,
            next_row: self.next_row,
            lines_done: self.lines_done,
            stats,
        }
    }
}

/// One decoded stretch of a file.
#[derive(Debug, Clone)]
pub struct ReadBatch {
    /// The decoded records (may have zero rows when a stretch held only bad records).
    pub batch: RecordBatch,
    /// Ordinal of the batch's first record in the file (rows are contiguous ordinals
    /// from it unless `ordinals` is set).
    pub first_row: u64,
    /// Per-row ordinals when they are not contiguous, one per row of `batch`: NDJSON
    /// records are numbered by the byte offset of their line, so that a range read on
    /// its own numbers them as a read of the whole file does.
    pub ordinals: Option<Vec<u64>>,
    /// Records in this stretch that failed to decode; they count as read.
    pub failures: Vec<RecordFailure>,
    /// Source bytes read since the previous batch.
    pub bytes_read: u64,
    /// Set when, once this batch and all before it are indexed, a reader opened at this
    /// point continues exactly after it.
    pub resume: Option<ResumePoint>,
}

/// A stream of decoded batches; an `Err` ends the file (transient or permanent).
pub type BatchStream = Box<dyn Iterator<Item = Result<ReadBatch>> + Send>;

/// A reader's decoding loop, one batch a call; [`BatchSteps::into_stream`] makes it a
/// [`BatchStream`] that ends at the first error or at the end, as every stream must.
pub trait BatchSteps: Send + Sized + 'static {
    /// The next batch; `Ok(None)` at the end of the file or range.
    fn next_batch(&mut self) -> Result<Option<ReadBatch>>;

    /// Called once when the stream ends (error or end), so decoders and buffers are
    /// released then rather than when the stream is dropped.
    fn release(&mut self) {}

    /// The stream of this loop's batches.
    fn into_stream(self) -> BatchStream {
        Box::new(Stepped {
            steps: self,
            done: false,
        })
    }
}

/// The [`BatchStream`] of a [`BatchSteps`]: no call after an error or the end.
struct Stepped<S> {
    steps: S,
    done: bool,
}

impl<S: BatchSteps> Iterator for Stepped<S> {
    type Item = Result<ReadBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let step = self.steps.next_batch();
        if !matches!(step, Ok(Some(_))) {
            self.done = true;
            self.steps.release();
        }
        step.transpose()
    }
}

/// Decodes one file format into Arrow batches, streaming.
pub trait Reader: Send + Sync {
    /// The format this reader decodes.
    fn format(&self) -> FileFormat;
    /// Opens `item` through `source`, resuming after `resume` (the default checkpoint
    /// starts at the beginning).
    fn open(
        &self,
        source: Arc<dyn ObjectSource>,
        item: &WorkItem,
        resume: &Checkpoint,
    ) -> Result<BatchStream>;
}
