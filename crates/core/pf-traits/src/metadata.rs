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

/// Everything the store knows about one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// Current state.
    pub status: ItemStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// The worker that last held it.
    pub worker: Option<String>,
    /// Unix milliseconds of the last heartbeat.
    pub heartbeat_ms: Option<u64>,
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
/// configured threshold) lose their claim to the next worker that asks.
pub trait MetadataStore: Send + Sync {
    /// Tries to take `item` for `worker`.
    fn claim(&self, item: &WorkItem, worker: &str) -> Result<Claim>;
    /// Records that `worker` is still alive and working on `item`.
    fn heartbeat(&self, item: &WorkItem, worker: &str) -> Result<()>;
    /// Records progress after a batch was indexed.
    fn checkpoint(&self, item: &WorkItem, worker: &str, checkpoint: &Checkpoint) -> Result<()>;
    /// Marks the item completed with its final counters.
    fn complete(&self, item: &WorkItem, worker: &str, stats: &FileStats) -> Result<()>;
    /// Marks the item failed for good.
    fn fail(&self, item: &WorkItem, worker: &str, failure: &FileFailure) -> Result<()>;
    /// Gives the item back (transient failure, shutdown); its checkpoint is kept.
    fn release(&self, item: &WorkItem, worker: &str, error: Option<&str>) -> Result<()>;
    /// What the store knows about `item`.
    fn get(&self, item: &WorkItem) -> Result<Option<ItemRecord>>;
}
