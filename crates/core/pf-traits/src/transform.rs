use pf_error::Result;
use pf_types::{Alert, RecordFailure, WorkItem};

use crate::DocBatch;

/// What a transform made of one batch.
#[derive(Debug, Clone)]
pub struct TransformOutput {
    /// The surviving records, with their source ordinals.
    pub docs: DocBatch,
    /// Records the script deliberately dropped.
    pub dropped: u64,
    /// Records whose evaluation failed (script error); they are not in `docs`.
    pub failures: Vec<RecordFailure>,
    /// Records in `docs` flagged as fraud.
    pub fraud_rows: u64,
    /// Alerts raised while transforming this batch.
    pub alerts: Vec<Alert>,
}

/// Where alerts go (stdout, a file, later an Elasticsearch index); shared by all threads.
pub trait AlertSink: Send + Sync {
    /// Delivers one batch's alerts. Called once per batch, never per record.
    fn send(&self, alerts: &[Alert]) -> Result<()>;
    /// Makes everything sent so far durable.
    fn flush(&self) -> Result<()>;
}

/// One pipeline thread's transform (script, enrichment, rules), with per-thread state.
pub trait Transform: Send {
    /// Transforms one batch of records read from `item`.
    fn apply(&mut self, item: &WorkItem, input: DocBatch) -> Result<TransformOutput>;

    /// Alerts raised for `item` by an earlier holder that may never have reached their
    /// destination (it died between raising and flushing them): sent before the item is
    /// processed again. None by default.
    fn undelivered_alerts(&mut self, item: &WorkItem) -> Result<Vec<Alert>> {
        let _ = item;
        Ok(Vec::new())
    }

    /// Every alert raised so far for `item` has been flushed to its destination.
    fn alerts_delivered(&mut self, item: &WorkItem) -> Result<()> {
        let _ = item;
        Ok(())
    }
}

/// Builds one [`Transform`] per pipeline thread, sharing compiled scripts and tables.
pub trait TransformFactory: Send + Sync {
    /// A new transform for one pipeline thread.
    fn create(&self) -> Result<Box<dyn Transform>>;
}

/// Passes every record through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdentityTransform;

impl Transform for IdentityTransform {
    fn apply(&mut self, _item: &WorkItem, input: DocBatch) -> Result<TransformOutput> {
        Ok(TransformOutput {
            docs: input,
            dropped: 0,
            failures: Vec::new(),
            fraud_rows: 0,
            alerts: Vec::new(),
        })
    }
}

impl TransformFactory for IdentityTransform {
    fn create(&self) -> Result<Box<dyn Transform>> {
        Ok(Box::new(IdentityTransform))
    }
}
