//! `queue.sqs`: the one declaration of the SQS work queue's settings.

use std::ops::RangeInclusive;
use std::time::Duration;

use pf_aws::{AwsContext, AwsSettings};
use pf_error::{PfError, Result};
use serde::{Deserialize, Serialize};

use crate::SqsWorkQueue;

/// Longest SQS long poll, seconds.
const MAX_WAIT_SECS: u32 = 20;
/// Most messages per ReceiveMessage call.
const MAX_MESSAGES: u32 = 10;
/// Longest SQS visibility timeout, seconds (12 hours).
const MAX_VISIBILITY_SECS: u32 = 43_200;

/// Why a bound is what it is, when SQS sets it.
const SQS_LIMIT: &str = " (SQS limit)";

/// `Ok` when `value` lies in `bounds`; else a config error at `key`: `must be between
/// <min> and <max><why>, got <value>`.
fn within_bounds(key: &str, value: u32, bounds: RangeInclusive<u32>, why: &str) -> Result<()> {
    if bounds.contains(&value) {
        return Ok(());
    }
    Err(PfError::config(
        key,
        format!(
            "must be between {} and {}{why}, got {value}",
            bounds.start(),
            bounds.end()
        ),
    ))
}

/// `queue.sqs`: the SQS queue and how it is polled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqsConfig {
    /// `queue_url`: URL of the work queue. Default `null`; required when `queue.kind` is
    /// `sqs`.
    pub queue_url: Option<String>,
    /// `dlq_url`: URL of the dead-letter queue for items that failed permanently or
    /// `worker.max_attempts` times. Default `null`: the queue's own redrive policy.
    pub dlq_url: Option<String>,
    /// `endpoint`: custom endpoint (LocalStack, moto). Default `null`: the
    /// `storage.s3.endpoint` when set, else AWS.
    pub endpoint: Option<String>,
    /// `region`: AWS region. Default `null`: the AWS default chain (`AWS_REGION`,
    /// profile).
    pub region: Option<String>,
    /// `wait_time_secs`: long-poll duration, seconds, 0–20 (SQS limit). Default `20`.
    pub wait_time_secs: u32,
    /// `visibility_timeout_secs`: how long a received item stays hidden from other
    /// workers, seconds; the worker extends it at half this interval while it works on
    /// the file. 1–43200 (SQS limit). Default `300`.
    pub visibility_timeout_secs: u32,
    /// `max_messages`: messages fetched per receive call, 1–10 (SQS limit). Default `10`.
    pub max_messages: u32,
    /// `prefetch`: items received ahead of demand and held for the next free pipeline
    /// thread (their visibility is renewed before work starts). Small values keep items
    /// available to other workers. 0–10. Default `1`.
    pub prefetch: u32,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            queue_url: None,
            dlq_url: None,
            endpoint: None,
            region: None,
            wait_time_secs: 20,
            visibility_timeout_secs: 300,
            max_messages: 10,
            prefetch: 1,
        }
    }
}

impl SqsConfig {
    /// The defaults for `queue_url`, as tests start from.
    pub fn for_queue(queue_url: impl Into<String>) -> Self {
        SqsConfig {
            queue_url: Some(queue_url.into()),
            ..SqsConfig::default()
        }
    }

    /// How long a received item stays hidden.
    pub fn visibility_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.visibility_timeout_secs))
    }

    /// Checks the SQS limits; `in_use`: `queue.kind` is `sqs` (the URL is then required).
    pub fn validate(&self, in_use: bool) -> Result<()> {
        let err = |key: &str, message: String| Err(PfError::config(key, message));
        if in_use
            && self
                .queue_url
                .as_deref()
                .is_none_or(|v| v.trim().is_empty())
        {
            return err(
                "queue.sqs.queue_url",
                "is required when queue.kind is sqs".into(),
            );
        }
        within_bounds(
            "queue.sqs.wait_time_secs",
            self.wait_time_secs,
            0..=MAX_WAIT_SECS,
            SQS_LIMIT,
        )?;
        within_bounds(
            "queue.sqs.visibility_timeout_secs",
            self.visibility_timeout_secs,
            1..=MAX_VISIBILITY_SECS,
            SQS_LIMIT,
        )?;
        within_bounds("queue.sqs.prefetch", self.prefetch, 0..=MAX_MESSAGES, "")?;
        within_bounds(
            "queue.sqs.max_messages",
            self.max_messages,
            1..=MAX_MESSAGES,
            SQS_LIMIT,
        )?;
        Ok(())
    }

    /// Connects to the queue (and finds its DLQ) as worker `worker_id`.
    pub fn build(&self, worker_id: &str) -> Result<SqsWorkQueue> {
        let aws = AwsContext::connect(&AwsSettings::new(
            self.endpoint.clone(),
            self.region.clone(),
        ))?;
        SqsWorkQueue::connect(aws, self, worker_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(config: SqsConfig) -> String {
        config.validate(false).unwrap_err().to_string()
    }

    #[test]
    fn out_of_bounds_settings_name_their_key_and_limit() {
        assert!(SqsConfig::default().validate(false).is_ok());
        let e = refusal(SqsConfig {
            wait_time_secs: 21,
            ..SqsConfig::default()
        });
        assert!(e.contains("queue.sqs.wait_time_secs"), "{e}");
        assert!(
            e.contains("must be between 0 and 20 (SQS limit), got 21"),
            "{e}"
        );
        let e = refusal(SqsConfig {
            prefetch: 11,
            ..SqsConfig::default()
        });
        assert!(e.contains("must be between 0 and 10, got 11"), "{e}");
        let e = refusal(SqsConfig {
            visibility_timeout_secs: 0,
            ..SqsConfig::default()
        });
        assert!(
            e.contains("must be between 1 and 43200 (SQS limit), got 0"),
            "{e}"
        );
    }
}
