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
mod receive;
mod sender;

pub use admin::{DeadLetter, DeadLetters, QueueSpec, QueueUrls, RedriveReport, setup_queues};
pub use config::SqsConfig;
pub use queue::SqsWorkQueue;
pub use sender::{SendReport, WorkItemSender};

/// Histogram, seconds: how long a message waited in SQS since it was first sent, at
/// each receipt (the queue's lag as this worker sees it).
pub const MESSAGE_AGE: &str = "paraflow_queue_message_age_seconds";

/// Describes the SQS queue's metrics to the installed recorder.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        MESSAGE_AGE,
        metrics::Unit::Seconds,
        "Time a work item waited in SQS since it was first sent, at each receipt (queue lag)."
    );
}

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

    /// Longest attribute value written, in characters.
    pub const MAX_VALUE_CHARS: usize = 1000;

    /// `text` as SQS accepts it in a message attribute: characters outside the set SQS
    /// allows (#x9, #xA, #xD, #x20–#xD7FF, #xE000–#xFFFD, #x10000–#x10FFFF) replaced by
    /// U+FFFD, and cut to [`MAX_VALUE_CHARS`] — an error message quoting a crafted URI
    /// must not make the dead-lettering itself fail.
    pub fn value_text(text: &str) -> String {
        text.chars()
            .take(MAX_VALUE_CHARS)
            .map(|c| match c {
                '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' => c,
                c if c >= '\u{10000}' => c,
                _ => '\u{FFFD}',
            })
            .collect()
    }
}

/// The queue name in an SQS queue URL (its last path segment).
pub fn queue_name(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    #[test]
    fn attribute_values_are_what_sqs_accepts() {
        let crafted = "not found: file:///a\u{1}b\u{0}c\u{FFFE}d\té😀";
        assert_eq!(
            super::attributes::value_text(crafted),
            "not found: file:///a\u{FFFD}b\u{FFFD}c\u{FFFD}d\té😀"
        );
        let long = "x".repeat(5000);
        assert_eq!(super::attributes::value_text(&long).chars().count(), 1000);
    }

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
