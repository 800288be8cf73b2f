//! SQS as Paraflow's distribution engine.
//!
//! - [`SqsWorkQueue`]: the [`pf_traits::WorkQueue`] workers consume — long polling, a
//!   small prefetch, visibility extension, release with a delay, and dead-lettering with
//!   the failure attached as message attributes.
//! - [`WorkItemSender`]: what the discoverer enqueues with — `SendMessageBatch` of 10,
//!   several calls in flight, retrying only the entries that failed.
//! - [`setup_queues`] and [`DeadLetters`]: the operations behind `pf queue setup` and
//!   `pf dlq inspect|redrive|purge`.
//!
//! Every call blocks the calling thread on the [`pf_aws::AwsContext`] runtime.

mod admin;
mod config;
mod queue;
mod sender;

pub use admin::{DeadLetter, DeadLetters, QueueSpec, QueueUrls, RedriveReport, setup_queues};
pub use config::SqsConfig;
pub use queue::SqsWorkQueue;
pub use sender::{SendReport, WorkItemSender};

/// Message attribute names carried by dead-lettered items.
pub mod attributes {
    /// `transient`, `permanent` or `record`.
    pub const ERROR_CLASS: &str = "pf_error_class";
    /// The error message (truncated to 1,000 characters).
    pub const ERROR_MESSAGE: &str = "pf_error_message";
    /// Processing attempts made.
    pub const ATTEMPTS: &str = "pf_attempts";
    /// The worker that gave up on the item.
    pub const WORKER_ID: &str = "pf_worker_id";
    /// RFC 3339 time of the first failure this worker saw for the item.
    pub const FIRST_FAILURE: &str = "pf_first_failure_time";
    /// The work queue the item came from.
    pub const SOURCE_QUEUE: &str = "pf_source_queue";
}

/// The queue name in an SQS queue URL (its last path segment).
pub fn queue_name(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    #[test]
    fn queue_name_is_the_last_segment() {
        assert_eq!(
            super::queue_name("https://sqs.us-east-1.amazonaws.com/123/work"),
            "work"
        );
        assert_eq!(
            super::queue_name("http://localhost:4566/000/q-dlq/"),
            "q-dlq"
        );
    }
}
