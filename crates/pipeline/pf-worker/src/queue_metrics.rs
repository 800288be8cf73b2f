//! Queue figures for every queue kind (SQS, stdin, in-process), recorded around the
//! [`WorkQueue`] calls the worker makes. Only calls that succeeded are counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use pf_error::Result;
use pf_traits::{Delivery, WorkQueue};
use pf_types::{FileFailure, WorkItem};

/// Counter by `event`: deliveries received, acked, released, dead-lettered or split.
pub const QUEUE_MESSAGES: &str = "paraflow_queue_messages_total";
/// Counter: visibility extensions (the visibility heartbeat) that succeeded.
pub const QUEUE_VISIBILITY_EXTENSIONS: &str = "paraflow_queue_visibility_extensions_total";
/// Histogram, seconds: one receive call, long-poll wait included.
pub const QUEUE_RECEIVE_DURATION: &str = "paraflow_queue_receive_duration_seconds";

const EVENTS: [&str; 5] = ["received", "acked", "released", "dead_lettered", "split"];

/// Describes the queue metrics to the installed recorder.
pub fn describe_metrics() {
    describe_counter!(
        QUEUE_MESSAGES,
        Unit::Count,
        "Work-item deliveries by event: received, acked (done for good), released (back to the queue for a retry or shutdown), dead_lettered, split (replaced by its ranges)."
    );
    describe_counter!(
        QUEUE_VISIBILITY_EXTENSIONS,
        Unit::Count,
        "Visibility extensions sent by the visibility heartbeat that succeeded."
    );
    describe_histogram!(
        QUEUE_RECEIVE_DURATION,
        Unit::Seconds,
        "One receive call, long-poll wait included (a long wait means an empty queue)."
    );
}

/// A [`WorkQueue`] that records what passes through it.
pub(crate) struct MeasuredQueue {
    inner: Arc<dyn WorkQueue>,
}

impl MeasuredQueue {
    pub(crate) fn wrap(inner: Arc<dyn WorkQueue>) -> Arc<dyn WorkQueue> {
        for event in EVENTS {
            counter!(QUEUE_MESSAGES, "event" => event).increment(0);
        }
        counter!(QUEUE_VISIBILITY_EXTENSIONS).increment(0);
        let _ = histogram!(QUEUE_RECEIVE_DURATION);
        Arc::new(MeasuredQueue { inner })
    }
}

fn count<T>(result: Result<T>, event: &'static str) -> Result<T> {
    if result.is_ok() {
        counter!(QUEUE_MESSAGES, "event" => event).increment(1);
    }
    result
}

impl WorkQueue for MeasuredQueue {
    fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let started = Instant::now();
        let received = self.inner.receive(max, wait);
        histogram!(QUEUE_RECEIVE_DURATION).record(started.elapsed().as_secs_f64());
        if let Ok(deliveries) = &received {
            counter!(QUEUE_MESSAGES, "event" => "received").increment(deliveries.len() as u64);
        }
        received
    }

    fn ack(&self, delivery: &Delivery) -> Result<()> {
        count(self.inner.ack(delivery), "acked")
    }

    fn release(&self, delivery: &Delivery, delay: Duration) -> Result<()> {
        count(self.inner.release(delivery, delay), "released")
    }

    fn extend_visibility(&self, delivery: &Delivery, timeout: Duration) -> Result<()> {
        let extended = self.inner.extend_visibility(delivery, timeout);
        if extended.is_ok() {
            counter!(QUEUE_VISIBILITY_EXTENSIONS).increment(1);
        }
        extended
    }

    fn replace(&self, delivery: &Delivery, items: Vec<WorkItem>) -> Result<()> {
        count(self.inner.replace(delivery, items), "split")
    }

    fn dead_letter(&self, delivery: &Delivery, failure: &FileFailure) -> Result<()> {
        count(self.inner.dead_letter(delivery, failure), "dead_lettered")
    }

    fn visibility_timeout(&self) -> Option<Duration> {
        self.inner.visibility_timeout()
    }

    fn close(&self) -> Result<()> {
        self.inner.close()
    }

    fn is_drained(&self) -> bool {
        self.inner.is_drained()
    }
}
