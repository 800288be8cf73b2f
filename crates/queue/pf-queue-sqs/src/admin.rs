use std::collections::{BTreeMap, HashSet};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;

use pf_aws::{AwsContext, error_code, service_error};
use pf_error::{ErrorClass, PfError, Result};

use crate::attributes as attr;
use crate::receive::{receive_count, receive_request};

/// The work queue and DLQ that `pf queue setup` creates.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    /// Work queue name.
    pub name: String,
    /// DLQ name; default `<name>-dlq`.
    pub dlq_name: Option<String>,
    /// Visibility timeout of the work queue, seconds.
    pub visibility_timeout_secs: u32,
    /// Receives before SQS itself moves a message to the DLQ (the backstop for items
    /// that crash workers before they can dead-letter them).
    pub max_receive_count: u32,
    /// How long messages are kept, seconds (both queues).
    pub retention_secs: u32,
}

/// URLs of a work queue and its DLQ.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueUrls {
    /// The work queue.
    pub queue_url: String,
    /// Its dead-letter queue.
    pub dlq_url: String,
}

/// Creates (or updates) the DLQ and the work queue with its redrive policy and
/// visibility timeout. Running it again with the same spec changes nothing.
pub fn setup_queues(aws: &AwsContext, spec: &QueueSpec) -> Result<QueueUrls> {
    let client = Client::new(aws.sdk_config());
    let dlq_name = spec
        .dlq_name
        .clone()
        .unwrap_or_else(|| format!("{}-dlq", spec.name));
    let retention = spec.retention_secs.to_string();
    let dlq_url = ensure_queue(
        aws,
        &client,
        &dlq_name,
        &[(
            QueueAttributeName::MessageRetentionPeriod,
            retention.clone(),
        )],
    )?;
    let arn = aws
        .block_on(
            client
                .get_queue_attributes()
                .queue_url(&dlq_url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send(),
        )
        .map_err(|e| service_error("sqs", "GetQueueAttributes", &e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| PfError::Service {
            service: "sqs",
            operation: "GetQueueAttributes".into(),
            class: ErrorClass::Transient,
            message: format!("no QueueArn for {dlq_url}"),
        })?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": arn,
        "maxReceiveCount": spec.max_receive_count.to_string(),
    })
    .to_string();
    let queue_url = ensure_queue(
        aws,
        &client,
        &spec.name,
        &[
            (
                QueueAttributeName::VisibilityTimeout,
                spec.visibility_timeout_secs.to_string(),
            ),
            (QueueAttributeName::MessageRetentionPeriod, retention),
            (QueueAttributeName::RedrivePolicy, redrive),
        ],
    )?;
    Ok(QueueUrls { queue_url, dlq_url })
}

/// The queue's URL, creating it if needed, with `attributes` applied either way.
fn ensure_queue(
    aws: &AwsContext,
    client: &Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String> {
    let existing = aws.block_on(client.get_queue_url().queue_name(name).send());
    let url = match existing {
        Ok(out) => out.queue_url().unwrap_or_default().to_owned(),
        Err(e)
            if matches!(
                error_code(&e),
                Some(
                    "AWS.SimpleQueueService.NonExistentQueue"
                        | "QueueDoesNotExist"
                        | "NonExistentQueue"
                )
            ) =>
        {
            let out = aws
                .block_on(
                    client
                        .create_queue()
                        .queue_name(name)
                        .set_attributes(Some(attributes.iter().cloned().collect()))
                        .send(),
                )
                .map_err(|e| service_error("sqs", format!("CreateQueue {name}"), &e))?;
            return Ok(out.queue_url().unwrap_or_default().to_owned());
        }
        Err(e) => return Err(service_error("sqs", format!("GetQueueUrl {name}"), &e)),
    };
    aws.block_on(
        client
            .set_queue_attributes()
            .queue_url(&url)
            .set_attributes(Some(attributes.iter().cloned().collect()))
            .send(),
    )
    .map_err(|e| service_error("sqs", format!("SetQueueAttributes {name}"), &e))?;
    Ok(url)
}

/// One message in the DLQ, as `pf dlq inspect` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    /// SQS message id.
    pub message_id: String,
    /// The body: a work item (or the unparseable original message).
    pub body: String,
    /// The `pf_*` failure attributes (class, message, attempts, worker, first failure).
    pub attributes: BTreeMap<String, String>,
    /// How often the message was received (from the DLQ too).
    pub receive_count: u32,
}

impl DeadLetter {
    /// The error class attribute, when present.
    pub fn error_class(&self) -> Option<&str> {
        self.attributes.get(attr::ERROR_CLASS).map(String::as_str)
    }
}

/// What `pf dlq redrive` moved.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RedriveReport {
    /// Messages moved back to the work queue.
    pub moved: u64,
    /// Messages left in the DLQ because they did not match the filter.
    pub kept: u64,
}

/// Operations on a dead-letter queue.
pub struct DeadLetters {
    aws: AwsContext,
    client: Client,
    dlq_url: String,
}

/// How long inspected messages stay hidden while the DLQ is scanned; they are made
/// visible again right after.
const SCAN_VISIBILITY_SECS: i32 = 30;

impl DeadLetters {
    /// Operations on the DLQ at `dlq_url`.
    pub fn new(aws: AwsContext, dlq_url: String) -> Self {
        DeadLetters {
            client: Client::new(aws.sdk_config()),
            aws,
            dlq_url,
        }
    }

    /// Up to `limit` messages with their failure attributes, without consuming them:
    /// each is received once, then made visible again.
    pub fn inspect(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let (letters, handles) = self.scan(limit)?;
        self.make_visible(&handles);
        Ok(letters)
    }

    /// Moves messages back to `queue_url` (only those whose error class is `class`, when
    /// given); the rest stay in the DLQ.
    pub fn redrive(&self, queue_url: &str, class: Option<ErrorClass>) -> Result<RedriveReport> {
        let mut report = RedriveReport::default();
        let mut keep = Vec::new();
        loop {
            let (letters, handles) = self.scan(100)?;
            if letters.is_empty() {
                break;
            }
            for (letter, handle) in letters.into_iter().zip(handles) {
                let matches = class.is_none_or(|c| letter.error_class() == Some(c.as_str()));
                if !matches {
                    report.kept += 1;
                    keep.push(handle);
                    continue;
                }
                self.aws
                    .block_on(
                        self.client
                            .send_message()
                            .queue_url(queue_url)
                            .message_body(&letter.body)
                            .send(),
                    )
                    .map_err(|e| service_error("sqs", "SendMessage (redrive)", &e))?;
                self.aws
                    .block_on(
                        self.client
                            .delete_message()
                            .queue_url(&self.dlq_url)
                            .receipt_handle(&handle)
                            .send(),
                    )
                    .map_err(|e| service_error("sqs", "DeleteMessage (DLQ)", &e))?;
                report.moved += 1;
            }
        }
        self.make_visible(&keep);
        Ok(report)
    }

    /// Deletes every message in the DLQ.
    pub fn purge(&self) -> Result<()> {
        self.aws
            .block_on(self.client.purge_queue().queue_url(&self.dlq_url).send())
            .map_err(|e| service_error("sqs", "PurgeQueue", &e))?;
        Ok(())
    }

    /// Receives until the DLQ shows nothing new or `limit` messages were seen; returns
    /// the messages and their receipt handles (all hidden for a short while).
    fn scan(&self, limit: usize) -> Result<(Vec<DeadLetter>, Vec<String>)> {
        let mut seen = HashSet::new();
        let mut letters = Vec::new();
        let mut handles = Vec::new();
        while letters.len() < limit {
            let want = (limit - letters.len()).min(10) as i32;
            let request = receive_request(&self.client, &self.dlq_url, want, SCAN_VISIBILITY_SECS)
                .wait_time_seconds(0)
                .message_attribute_names("All");
            let out = self
                .aws
                .block_on(request.send())
                .map_err(|e| service_error("sqs", "ReceiveMessage (DLQ)", &e))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let id = m.message_id.clone().unwrap_or_default();
                let handle = m.receipt_handle.clone().unwrap_or_default();
                if !seen.insert(id.clone()) {
                    continue;
                }
                let receive_count = receive_count(&m);
                let attributes = m
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.string_value?)))
                    .collect();
                letters.push(DeadLetter {
                    message_id: id,
                    body: m.body.unwrap_or_default(),
                    attributes,
                    receive_count,
                });
                handles.push(handle);
            }
        }
        Ok((letters, handles))
    }

    /// Best effort: a message left hidden reappears when its scan visibility lapses.
    fn make_visible(&self, handles: &[String]) {
        for handle in handles {
            if let Err(e) = self.aws.block_on(
                self.client
                    .change_message_visibility()
                    .queue_url(&self.dlq_url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send(),
            ) {
                tracing::warn!(error = %service_error("sqs", "ChangeMessageVisibility (DLQ)", &e),
                    "a DLQ message stays hidden until its scan visibility lapses");
            }
        }
    }
}
