//! One file, end to end, on one thread.
//!
//! ```text
//! Reader ─▶ Transform ─▶ Accumulator ─▶ Indexer
//!    │          │                          │
//!    └──────────┴──── record failures ─────┴──▶ record DLQ
//! ```
//!
//! A [`FileProcessor`] owns one thread's transform and indexer, so nothing on the
//! per-record path is shared. It reports a checkpoint each time every record up to a
//! reader resume point has an outcome, and returns only when every record of the file
//! has one (indexed, dropped or in the record DLQ) — the condition for acknowledging
//! the work item.

use std::sync::Arc;
use std::time::Instant;

use pf_accumulator::{Accumulator, Chunk, ChunkLimits};
use pf_error::{PfError, Result};
use pf_metrics::Metrics;
use pf_traits::{DocBatch, Indexer, ObjectSource, ReadBatch, Reader, RecordDlq, Transform};
use pf_types::{Checkpoint, FileFormat, FileStats, RecordFailure, Stage, WorkItem};

/// What a [`FileProcessor`] shares with the other pipeline threads.
#[derive(Clone)]
pub struct SharedParts {
    /// Byte access to every input URI.
    pub source: Arc<dyn ObjectSource>,
    /// Decoder for Parquet files.
    pub parquet: Arc<dyn Reader>,
    /// Decoder for NDJSON files.
    pub ndjson: Arc<dyn Reader>,
    /// Where failed records go.
    pub record_dlq: Arc<dyn RecordDlq>,
    /// Live counters.
    pub metrics: Arc<Metrics>,
    /// Index request size limits.
    pub chunk_limits: ChunkLimits,
}

/// A file that stopped before every record had an outcome.
#[derive(Debug)]
pub struct FileError {
    /// Why it stopped; the class decides retry or dead-letter.
    pub error: PfError,
    /// What was done before it stopped (already indexed records stay indexed).
    pub partial: FileStats,
}

/// One pipeline thread's processor.
pub struct FileProcessor {
    parts: SharedParts,
    transform: Box<dyn Transform>,
    indexer: Box<dyn Indexer>,
}

impl FileProcessor {
    /// A processor using this thread's own `transform` and `indexer`.
    pub fn new(
        parts: SharedParts,
        transform: Box<dyn Transform>,
        indexer: Box<dyn Indexer>,
    ) -> Self {
        FileProcessor {
            parts,
            transform,
            indexer,
        }
    }

    /// Processes `item` from `resume` (the default checkpoint starts at the beginning).
    ///
    /// `on_checkpoint` is called with cumulative progress whenever a resume point became
    /// safe; an error from it stops the file (it is how lost claims surface).
    pub fn process(
        &mut self,
        item: &WorkItem,
        resume: &Checkpoint,
        on_checkpoint: &mut dyn FnMut(&Checkpoint) -> Result<()>,
    ) -> std::result::Result<FileStats, Box<FileError>> {
        let mut run = FileRun {
            item,
            parts: &self.parts,
            indexer: self.indexer.as_mut(),
            stats: resume.stats,
            on_checkpoint,
        };
        match run.execute(self.transform.as_mut(), resume) {
            Ok(()) => Ok(run.stats),
            Err(error) => Err(Box::new(FileError {
                error,
                partial: run.stats,
            })),
        }
    }
}

/// The state of one file being processed.
struct FileRun<'a> {
    item: &'a WorkItem,
    parts: &'a SharedParts,
    indexer: &'a mut dyn Indexer,
    stats: FileStats,
    on_checkpoint: &'a mut dyn FnMut(&Checkpoint) -> Result<()>,
}

impl FileRun<'_> {
    fn execute(&mut self, transform: &mut dyn Transform, resume: &Checkpoint) -> Result<()> {
        let reader = match self.item.format {
            FileFormat::Parquet => &self.parts.parquet,
            FileFormat::Ndjson => &self.parts.ndjson,
        };
        let mut stream = reader.open(self.parts.source.clone(), self.item, resume)?;
        let mut acc = Accumulator::new(self.parts.chunk_limits);
        loop {
            let t = Instant::now();
            let Some(next) = stream.next() else { break };
            self.parts.metrics.add_stage_time(Stage::Read, t.elapsed());
            let ReadBatch {
                batch,
                first_row,
                failures,
                bytes_read,
                resume,
            } = next?;
            let read = FileStats {
                rows_read: (batch.num_rows() + failures.len()) as u64,
                bytes_read,
                ..Default::default()
            };
            self.add(read);
            self.fail_records(Stage::Read, failures)?;

            let t = Instant::now();
            let out = transform.apply(self.item, DocBatch::contiguous(batch, first_row))?;
            self.parts
                .metrics
                .add_stage_time(Stage::Transform, t.elapsed());
            self.add(FileStats {
                rows_dropped: out.dropped,
                fraud_rows: out.fraud_rows,
                ..Default::default()
            });
            self.fail_records(Stage::Transform, out.failures)?;

            for chunk in acc.push(out.docs, resume) {
                self.index(chunk)?;
            }
        }
        if let Some(chunk) = acc.flush() {
            self.index(chunk)?;
        }
        self.parts.record_dlq.flush()
    }

    fn index(&mut self, chunk: Chunk) -> Result<()> {
        if chunk.rows > 0 {
            let t = Instant::now();
            let outcome = self.indexer.index(self.item, &chunk.docs)?;
            self.parts.metrics.add_stage_time(Stage::Index, t.elapsed());
            let accounted = outcome.indexed + outcome.failures.len() as u64;
            if accounted != chunk.rows as u64 {
                // An indexer that loses track of documents would break exact accounting
                // silently; refuse to acknowledge anything it touched.
                return Err(PfError::Indexer {
                    destination: "indexer",
                    class: pf_error::ErrorClass::Transient,
                    message: format!("reported {accounted} outcomes for {} documents", chunk.rows),
                });
            }
            self.add(FileStats {
                rows_indexed: outcome.indexed,
                batches: 1,
                ..Default::default()
            });
            self.fail_records(Stage::Index, outcome.failures)?;
        }
        if let Some(r) = chunk.resume {
            // Failed records must be durable before progress claims they were handled.
            self.parts.record_dlq.flush()?;
            (self.on_checkpoint)(&Checkpoint {
                position: r.position,
                next_row: r.next_row,
                lines_done: r.lines_done,
                stats: self.stats,
            })?;
        }
        Ok(())
    }

    fn fail_records(&mut self, stage: Stage, failures: Vec<RecordFailure>) -> Result<()> {
        if failures.is_empty() {
            return Ok(());
        }
        let n = failures.len() as u64;
        self.parts.record_dlq.write(&failures)?;
        self.stats.rows_failed += n;
        self.parts.metrics.add_failed(stage, n);
        Ok(())
    }

    fn add(&mut self, delta: FileStats) {
        self.stats += delta;
        self.parts.metrics.add_stats(&delta);
    }
}
