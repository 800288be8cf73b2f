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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::Schema;

    use super::*;

    /// Yields `outcomes` in order (`true`: a batch, `false`: an error), then the end;
    /// counts its calls and releases.
    struct Script {
        outcomes: Vec<bool>,
        calls: usize,
        released: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl BatchSteps for Script {
        fn next_batch(&mut self) -> Result<Option<ReadBatch>> {
            let outcome = self.outcomes.get(self.calls).copied();
            self.calls += 1;
            match outcome {
                Some(true) => Ok(Some(ReadBatch {
                    batch: RecordBatch::new_empty(Arc::new(Schema::empty())),
                    first_row: self.calls as u64,
                    ordinals: None,
                    failures: Vec::new(),
                    bytes_read: 0,
                    resume: None,
                })),
                Some(false) => Err(pf_error::PfError::io(
                    "script",
                    std::io::Error::other("boom"),
                )),
                None => Ok(None),
            }
        }

        fn release(&mut self) {
            self.released
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn run(outcomes: Vec<bool>) -> (Vec<std::result::Result<u64, String>>, usize) {
        let released = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stream = Script {
            outcomes,
            calls: 0,
            released: released.clone(),
        }
        .into_stream();
        // Taken past the end, to see that nothing comes after it.
        let seen = stream
            .take(10)
            .map(|r| r.map(|b| b.first_row).map_err(|e| e.to_string()))
            .collect();
        (seen, released.load(std::sync::atomic::Ordering::Relaxed))
    }

    #[test]
    fn a_stream_ends_at_its_first_error_and_releases_once() {
        let (seen, released) = run(vec![true, false, true]);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0], Ok(1));
        assert!(
            seen[1].as_ref().is_err_and(|e| e.contains("boom")),
            "{seen:?}"
        );
        assert_eq!(released, 1);
    }

    #[test]
    fn a_stream_ends_at_its_end_and_releases_once() {
        let (seen, released) = run(vec![true, true]);
        assert_eq!(seen, [Ok(1), Ok(2)]);
        assert_eq!(released, 1);
    }
}
