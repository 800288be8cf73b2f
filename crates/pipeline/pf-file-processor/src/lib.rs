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

use pf_accumulator::{Accumulator, Chunk};
use pf_error::{PfError, Result};
use pf_metrics::Metrics;
use pf_traits::{
    AlertSink, BulkLimits, DocBatch, Indexer, ObjectSource, PinnedSource, ReadBatch, Reader,
    RecordDlq, Transform,
};
use pf_types::{Checkpoint, FileFormat, FileStats, RecordFailure, Stage, WorkItem};

/// What a [`FileProcessor`] shares with the other pipeline threads.
#[derive(Clone)]
pub struct SharedParts {
    /// Byte access to every input URI.
    pub source: Arc<dyn ObjectSource>,
    /// A decoder per file format.
    pub readers: FormatReaders,
    /// Where failed records go.
    pub record_dlq: Arc<dyn RecordDlq>,
    /// Where fraud alerts go.
    pub alerts: Arc<dyn AlertSink>,
    /// Live counters.
    pub metrics: Arc<Metrics>,
    /// Index request size limits.
    pub chunk_limits: BulkLimits,
}

/// The reader registry: one decoder per [`FileFormat`]. A format without a reader is a
/// permanent failure of the files that have it, naming the formats that are known.
#[derive(Clone, Default)]
pub struct FormatReaders(Vec<(FileFormat, Arc<dyn Reader>)>);

impl FormatReaders {
    /// Registers `reader` for `format` (replacing an earlier one).
    pub fn with(mut self, format: FileFormat, reader: Arc<dyn Reader>) -> Self {
        self.0.retain(|(f, _)| *f != format);
        self.0.push((format, reader));
        self
    }

    /// The reader of `format`.
    pub fn get(&self, format: FileFormat) -> Result<&Arc<dyn Reader>> {
        self.0
            .iter()
            .find(|(f, _)| *f == format)
            .map(|(_, r)| r)
            .ok_or_else(|| PfError::InvalidWorkItem {
                message: format!(
                    "no reader for {format:?} files; readers: {:?}",
                    self.0.iter().map(|(f, _)| *f).collect::<Vec<_>>()
                ),
            })
    }
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
        let reader = self.parts.readers.get(self.item.format)?;
        // Every read is pinned to the version discovered: an object rewritten since
        // fails permanently instead of being read half old, half new.
        let source: Arc<dyn ObjectSource> = match &self.item.etag {
            Some(etag) => Arc::new(PinnedSource::new(self.parts.source.clone(), etag)),
            None => self.parts.source.clone(),
        };
        let mut stream = reader.open(source, self.item, resume)?;
        self.indexer.begin(self.item);
        // An earlier holder of the item may have died between raising alerts and
        // flushing them; a replay of its rows may come too late to raise them again.
        let held = transform.undelivered_alerts(self.item)?;
        if !held.is_empty() {
            tracing::info!(uri = %self.item.uri, alerts = held.len(), "sending again the alerts an earlier attempt raised and may not have delivered");
            self.parts.alerts.send(&held)?;
        }
        let mut acc = Accumulator::new(self.parts.chunk_limits);
        loop {
            let t = Instant::now();
            let Some(next) = stream.next() else { break };
            self.parts.metrics.add_stage_time(Stage::Read, t.elapsed());
            let ReadBatch {
                batch,
                first_row,
                ordinals,
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
            let docs = DocBatch {
                batch,
                first_row,
                ordinals,
            };
            let out = transform.apply(self.item, docs)?;
            self.parts
                .metrics
                .add_stage_time(Stage::Transform, t.elapsed());
            self.add(FileStats {
                rows_dropped: out.dropped,
                fraud_rows: out.fraud_rows,
                ..Default::default()
            });
            self.fail_records(Stage::Transform, out.failures)?;
            self.parts.alerts.send(&out.alerts)?;

            for chunk in acc.push(out.docs, resume) {
                self.index(chunk, transform)?;
            }
        }
        if let Some(chunk) = acc.flush() {
            self.index(chunk, transform)?;
        }
        if !self.indexer.commit(self.item, true)? {
            return Err(PfError::Indexer {
                destination: "indexer",
                class: pf_error::ErrorClass::Transient,
                message: "did not commit the end of the file".into(),
            });
        }
        self.flush_alerts(transform)?;
        self.parts.record_dlq.flush()
    }

    /// Makes the alerts sent so far durable, then lets the window store forget them.
    fn flush_alerts(&self, transform: &mut dyn Transform) -> Result<()> {
        self.parts.alerts.flush()?;
        transform.alerts_delivered(self.item)
    }

    fn index(&mut self, chunk: Chunk, transform: &mut dyn Transform) -> Result<()> {
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
            // A destination that buffers output (a Parquet part) lets a resume point be
            // recorded only once everything before it is durable.
            if !self.indexer.commit(self.item, false)? {
                return Ok(());
            }
            // Failed records and alerts must be durable before progress claims they were
            // handled: a resume after a crash starts from here and will not raise them again.
            self.flush_alerts(transform)?;
            self.parts.record_dlq.flush()?;
            (self.on_checkpoint)(&r.checkpoint(self.stats))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use arrow::array::{Int64Array, RecordBatch};
    use pf_error::ErrorClass;
    use pf_traits::{BatchStream, IdentityTransform, IndexOutcome, ObjectListing, ResumePoint};
    use pf_types::{Alert, ObjectInfo};

    /// Three batches of 10 rows; the second also reports 2 undecodable records.
    struct FakeReader;

    impl Reader for FakeReader {
        fn format(&self) -> FileFormat {
            FileFormat::Parquet
        }
        fn open(
            &self,
            _: Arc<dyn ObjectSource>,
            item: &WorkItem,
            resume: &Checkpoint,
        ) -> Result<BatchStream> {
            let uri = item.uri.clone();
            let start = resume.position;
            Ok(Box::new((start..3).map(move |i| {
                let first = i * 10;
                let col = Int64Array::from_iter_values((first..first + 10).map(|v| v as i64));
                let failures = if i == 1 {
                    (0..2)
                        .map(|n| RecordFailure {
                            uri: uri.clone(),
                            line: Some(n),
                            row: None,
                            stage: Stage::Read,
                            class: ErrorClass::Record,
                            error: "bad".into(),
                            record: None,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                Ok(ReadBatch {
                    batch: RecordBatch::try_from_iter([("v", Arc::new(col) as _)]).unwrap(),
                    first_row: first,
                    ordinals: None,
                    failures,
                    bytes_read: 100,
                    resume: Some(ResumePoint {
                        position: i + 1,
                        next_row: first + 10,
                        lines_done: 0,
                    }),
                })
            })))
        }
    }

    struct NoSource;
    impl ObjectSource for NoSource {
        fn stat(&self, _: &str) -> Result<ObjectInfo> {
            unreachable!()
        }
        fn read_range(&self, _: &str, _: std::ops::Range<u64>) -> Result<bytes::Bytes> {
            unreachable!()
        }
        fn read_from(&self, _: &str, _: u64) -> Result<Box<dyn std::io::Read + Send>> {
            unreachable!()
        }
        fn list(&self, _: &str, _: bool) -> Result<ObjectListing<'_>> {
            unreachable!()
        }
    }

    #[derive(Default)]
    struct Collect(Mutex<Vec<RecordFailure>>);
    impl RecordDlq for Collect {
        fn write(&self, f: &[RecordFailure]) -> Result<()> {
            self.0.lock().unwrap().extend_from_slice(f);
            Ok(())
        }
        fn flush(&self) -> Result<()> {
            Ok(())
        }
        fn written(&self) -> u64 {
            self.0.lock().unwrap().len() as u64
        }
        fn location(&self) -> String {
            "memory".into()
        }
    }
    impl AlertSink for Collect {
        fn send(&self, _: &[Alert]) -> Result<()> {
            Ok(())
        }
        fn flush(&self) -> Result<()> {
            Ok(())
        }
    }

    /// Rejects documents whose ordinal is a multiple of 7.
    struct PickyIndexer;
    impl Indexer for PickyIndexer {
        fn index(&mut self, item: &WorkItem, docs: &[DocBatch]) -> Result<IndexOutcome> {
            let mut out = IndexOutcome::default();
            for d in docs {
                for i in 0..d.num_rows() {
                    if d.ordinal(i) % 7 == 0 {
                        out.failures.push(RecordFailure {
                            uri: item.uri.clone(),
                            line: None,
                            row: Some(d.ordinal(i)),
                            stage: Stage::Index,
                            class: ErrorClass::Record,
                            error: "mapper_parsing_exception".into(),
                            record: None,
                        });
                    } else {
                        out.indexed += 1;
                    }
                }
            }
            Ok(out)
        }
    }

    fn processor(dlq: Arc<Collect>) -> FileProcessor {
        let parts = SharedParts {
            source: Arc::new(NoSource),
            readers: FormatReaders::default()
                .with(FileFormat::Parquet, Arc::new(FakeReader))
                .with(FileFormat::Ndjson, Arc::new(FakeReader)),
            record_dlq: dlq.clone(),
            alerts: dlq,
            metrics: Metrics::new(),
            chunk_limits: BulkLimits {
                max_docs: 4,
                max_bytes: usize::MAX,
            },
        };
        FileProcessor::new(parts, Box::new(IdentityTransform), Box::new(PickyIndexer))
    }

    #[test]
    fn accounts_exactly_and_checkpoints_at_resume_points() {
        let dlq = Arc::new(Collect::default());
        let mut p = processor(dlq.clone());
        let item = WorkItem::from_uri("/x.parquet").unwrap();
        let mut checkpoints = Vec::new();
        let stats = p
            .process(&item, &Checkpoint::default(), &mut |cp| {
                checkpoints.push(*cp);
                Ok(())
            })
            .unwrap();
        // 30 decoded + 2 undecodable; ordinals 0, 7, 14, 21, 28 rejected by the indexer.
        assert_eq!(stats.rows_read, 32);
        assert_eq!(stats.rows_indexed, 25);
        assert_eq!(stats.rows_failed, 7);
        assert_eq!(stats.bytes_read, 300);
        assert_eq!(
            stats.rows_read,
            stats.rows_indexed + stats.rows_dropped + stats.rows_failed
        );
        assert_eq!(dlq.0.lock().unwrap().len(), 7);
        // Every resume point checkpoints, whatever the request size.
        assert_eq!(
            checkpoints.iter().map(|c| c.position).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(checkpoints.last().unwrap().stats, stats);

        // Resuming from any checkpoint counts the rest on top of it: the checkpoint's
        // counters cover exactly the records before it.
        for cp in &checkpoints {
            let resumed = p.process(&item, cp, &mut |_| Ok(())).unwrap();
            assert_eq!(resumed, stats, "resumed from {cp:?}");
        }
    }

    /// Counts alerts sent and alerts flushed.
    #[derive(Default)]
    struct AlertLog {
        sent: std::sync::atomic::AtomicU64,
        flushed: std::sync::atomic::AtomicU64,
    }
    impl AlertSink for AlertLog {
        fn send(&self, alerts: &[Alert]) -> Result<()> {
            self.sent
                .fetch_add(alerts.len() as u64, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
        fn flush(&self) -> Result<()> {
            let sent = self.sent.load(std::sync::atomic::Ordering::SeqCst);
            self.flushed
                .store(sent, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }

    /// Passes records through and raises one alert per batch.
    struct AlertPerBatch;
    impl Transform for AlertPerBatch {
        fn apply(&mut self, item: &WorkItem, docs: DocBatch) -> Result<pf_traits::TransformOutput> {
            Ok(pf_traits::TransformOutput {
                alerts: vec![Alert {
                    rule: "r".into(),
                    severity: pf_types::Severity::Low,
                    uri: item.uri.clone(),
                    row: docs.first_row,
                    key: format!("r|{}", docs.first_row),
                    details: Default::default(),
                }],
                docs,
                dropped: 0,
                failures: Vec::new(),
                fraud_rows: 0,
            })
        }
    }

    #[test]
    fn alerts_are_flushed_before_every_checkpoint() {
        let log = Arc::new(AlertLog::default());
        let mut parts = processor(Arc::new(Collect::default())).parts;
        parts.alerts = log.clone();
        let mut p = FileProcessor::new(parts, Box::new(AlertPerBatch), Box::new(PickyIndexer));
        let item = WorkItem::from_uri("/x.parquet").unwrap();
        let mut checkpoints = 0;
        p.process(&item, &Checkpoint::default(), &mut |_| {
            // Everything raised before a resume point is durable when it is recorded.
            let sent = log.sent.load(std::sync::atomic::Ordering::SeqCst);
            assert!(sent > 0);
            assert_eq!(log.flushed.load(std::sync::atomic::Ordering::SeqCst), sent);
            checkpoints += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(checkpoints, 3);
    }

    #[test]
    fn checkpoint_errors_stop_the_file_with_partial_counts() {
        let mut p = processor(Arc::new(Collect::default()));
        let item = WorkItem::from_uri("/x.parquet").unwrap();
        let err = p
            .process(&item, &Checkpoint::default(), &mut |cp| {
                if cp.position == 2 {
                    Err(PfError::Service {
                        service: "metadata",
                        operation: "checkpoint".into(),
                        class: ErrorClass::Transient,
                        message: "claim lost".into(),
                    })
                } else {
                    Ok(())
                }
            })
            .unwrap_err();
        assert!(err.error.is_transient());
        assert_eq!(err.partial.rows_read, 22);
    }
}
