use std::time::Duration;

use pf_error::Result;
use pf_types::{FileFailure, WorkItem};

/// A work item handed to a worker, with what the queue needs to settle it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The file to process.
    pub item: WorkItem,
    /// Opaque queue handle (an SQS receipt handle, an in-memory id).
    pub handle: String,
    /// How many times this message has been received, including this time.
    pub receive_count: u32,
}

/// A source of work items with at-least-once delivery.
///
/// A received item stays invisible to other consumers until it is acknowledged,
/// released or dead-lettered, or until its visibility timeout lapses.
pub trait WorkQueue: Send + Sync {
    /// Waits up to `wait` for at most `max` deliveries; an empty vector means none arrived.
    ///
    /// Messages that are not valid work items are reported and settled by the queue
    /// itself, never returned.
    fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>>;
    /// Removes a processed item from the queue for good.
    fn ack(&self, delivery: &Delivery) -> Result<()>;
    /// Makes the item visible again after `delay` (transient failure or shutdown).
    fn release(&self, delivery: &Delivery, delay: Duration) -> Result<()>;
    /// Keeps the item invisible for `timeout` from now (the visibility heartbeat).
    fn extend_visibility(&self, delivery: &Delivery, timeout: Duration) -> Result<()>;
    /// Replaces the delivery by `items` (the ranges of a split file), enqueued for any
    /// consumer, then removes it; when not every item could be enqueued the delivery
    /// stays and an error says so (a later delivery splits it again, and ranges already
    /// completed are acknowledged without work).
    fn replace(&self, delivery: &Delivery, items: Vec<WorkItem>) -> Result<()>;
    /// Moves the item to the dead-letter queue with its failure attached.
    fn dead_letter(&self, delivery: &Delivery, failure: &FileFailure) -> Result<()>;
    /// The queue's visibility timeout, when deliveries expire on their own.
    fn visibility_timeout(&self) -> Option<Duration> {
        None
    }
    /// Gives back anything received but not yet handed out (a prefetch buffer), so that
    /// other workers can take it at once; called when the worker stops.
    fn close(&self) -> Result<()> {
        Ok(())
    }
    /// True once no item is queued, in flight or still to come (stdin at EOF).
    /// Queues fed by other processes (SQS) never report drained.
    fn is_drained(&self) -> bool {
        false
    }
}
