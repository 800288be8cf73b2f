use serde::{Deserialize, Serialize};

use pf_error::Result;
use pf_types::{Checkpoint, FileFailure, FileStats, WorkItem};

/// Lifecycle state of one work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Known (registered by discovery or released for retry) but not being processed.
    Pending,
    /// A worker holds it.
    Processing,
    /// Every record has an outcome; the item was acknowledged.
    Completed,
    /// Failed permanently (or ran out of attempts) and went to the DLQ.
    Failed,
}

/// The result of trying to take an item for processing.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This worker now holds the item; resume from `checkpoint` when present.
    Acquired {
        /// Attempts so far, including this one.
        attempts: u32,
        /// Where an earlier attempt got to.
        checkpoint: Option<Checkpoint>,
    },
    /// A previous delivery completed the item: acknowledge it without work.
    AlreadyCompleted,
    /// Another worker holds it with a fresh heartbeat: give it back to the queue.
    HeldElsewhere {
        /// The holder's id.
        worker: String,
    },
}

/// What completing an item settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// A whole file: an unsplit item, or the last range of a split file to complete.
    File,
    /// One range of a split file whose other ranges are not all completed yet.
    Range,
}

/// Everything the store knows about one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// Current state.
    pub status: ItemStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// The worker that last held it.
    pub worker: Option<String>,
    /// Unix milliseconds (store clock) when the latest attempt started.
    pub started_ms: Option<u64>,
    /// Unix milliseconds of the last heartbeat.
    pub heartbeat_ms: Option<u64>,
    /// Unix milliseconds when it completed or failed.
    pub finished_ms: Option<u64>,
    /// Progress of the latest attempt.
    pub checkpoint: Option<Checkpoint>,
    /// Final counters, once completed.
    pub stats: Option<FileStats>,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// Durable per-item state: status, attempts, heartbeats and checkpoints.
///
/// Every call is one atomic state change. Stale holders (no heartbeat for the store's
/// configured threshold) lose their claim to the next worker that asks. A holder is one
/// pipeline thread (`<worker id>/t<n>`), not a process, so even two threads of one worker
/// never process an item at once. Every state change after the claim checks that the
/// caller still holds the item and fails with [`pf_error::PfError::ClaimLost`] when it
/// does not: the caller then stops at once and settles nothing.
pub trait MetadataStore: Send + Sync {
    /// Tries to take `item` for `worker`.
    fn claim(&self, item: &WorkItem, worker: &str) -> Result<Claim>;
    /// Records that `worker` is still alive and working on `item`.
    fn heartbeat(&self, item: &WorkItem, worker: &str) -> Result<()>;
    /// Records progress after a batch was indexed.
    fn checkpoint(&self, item: &WorkItem, worker: &str, checkpoint: &Checkpoint) -> Result<()>;
    /// Marks the item completed with its final counters; says whether that completed
    /// its whole file, so a split file is counted once (by its last range).
    fn complete(&self, item: &WorkItem, worker: &str, stats: &FileStats) -> Result<Completion>;
    /// Marks the item failed for good.
    fn fail(&self, item: &WorkItem, worker: &str, failure: &FileFailure) -> Result<()>;
    /// Gives the item back (transient failure, shutdown); its checkpoint is kept.
    fn release(&self, item: &WorkItem, worker: &str, error: Option<&str>) -> Result<()>;
    /// What the store knows about `item`.
    fn get(&self, item: &WorkItem) -> Result<Option<ItemRecord>>;
    /// Records what discovery enqueued for `job_id` (replacing earlier totals), so
    /// progress can be reported as a share of the whole.
    fn register_job(&self, job_id: &str, totals: &JobTotals) -> Result<()>;
    /// Progress of `job_id` (items without a job are under [`NO_JOB`]); `None` when the
    /// store knows nothing of it.
    fn job_progress(&self, job_id: &str) -> Result<Option<JobProgress>>;
    /// The jobs the store knows, most recently active first.
    fn jobs(&self) -> Result<Vec<String>>;
}

/// The job id of work items that carry none.
pub const NO_JOB: &str = "-";

/// What discovery enqueued for one job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTotals {
    /// Work items enqueued.
    pub files: u64,
    /// Their sizes, summed.
    pub bytes: u64,
}

/// One item of a job as `pf status` lists it (failed or in processing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemProgress {
    /// The file.
    pub uri: String,
    /// Its version tag.
    pub etag: Option<String>,
    /// Everything known about it.
    #[serde(flatten)]
    pub record: ItemRecord,
}

/// A job's progress, as one consistent read of the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    /// The job.
    pub job_id: String,
    /// The store's clock when read (Unix ms); staleness is measured against it.
    pub now_ms: u64,
    /// What discovery registered, when it did.
    pub totals: Option<JobTotals>,
    /// When discovery registered the job (Unix ms).
    pub registered_ms: Option<u64>,
    /// When the first item was claimed (Unix ms).
    pub started_ms: Option<u64>,
    /// When the last item completed or failed (Unix ms).
    pub last_finished_ms: Option<u64>,
    /// Files completed (a split file once all its ranges are).
    pub files_completed: u64,
    /// Items failed for good.
    pub files_failed: u64,
    /// Source bytes of completed and failed items plus bytes read by items in processing.
    pub bytes_done: u64,
    /// Records read, of completed and failed items plus checkpoints of items in
    /// processing.
    pub rows_done: u64,
    /// Records indexed, counted the same way.
    pub rows_indexed: u64,
    /// Records sent to the record DLQ, counted the same way.
    pub rows_failed: u64,
    /// Items in processing, with their holder and heartbeat.
    pub processing: Vec<ItemProgress>,
    /// Items that failed, with their last error.
    pub failed: Vec<ItemProgress>,
}
