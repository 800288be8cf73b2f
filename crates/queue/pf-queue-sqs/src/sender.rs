use std::collections::VecDeque;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use tokio::task::JoinHandle;

use pf_aws::{AwsContext, classify};
use pf_error::{ErrorClass, PfError, Result};
use pf_types::{Backoff, WorkItem};

/// Entries per SendMessageBatch call (the SQS limit).
const BATCH: usize = 10;
/// Attempts for the failed entries of one batch before they are reported as failed.
const ENTRY_ATTEMPTS: u32 = 5;

/// What a [`WorkItemSender`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendReport {
    /// Messages the queue accepted.
    pub messages: u64,
    /// SendMessageBatch calls made, retries included.
    pub calls: u64,
    /// Entries retried after a partial batch failure or a failed call.
    pub retried: u64,
    /// Items that could not be sent: (uri, reason).
    pub failed: Vec<(String, String)>,
}

impl SendReport {
    fn merge(&mut self, other: SendReport) {
        self.messages += other.messages;
        self.calls += other.calls;
        self.retried += other.retried;
        self.failed.extend(other.failed);
    }
}

/// Enqueues work items with SendMessageBatch: 10 per call, up to `in_flight` calls at
/// once, retrying only the entries a batch rejected.
pub struct WorkItemSender {
    aws: AwsContext,
    client: Client,
    queue_url: String,
    in_flight: usize,
    batch: Vec<(String, String)>,
    running: VecDeque<JoinHandle<SendReport>>,
    report: SendReport,
}

impl WorkItemSender {
    /// A sender to `queue_url` with at most `in_flight` concurrent calls.
    pub fn new(aws: AwsContext, queue_url: String, in_flight: usize) -> Self {
        WorkItemSender {
            client: Client::new(aws.sdk_config()),
            aws,
            queue_url,
            in_flight: in_flight.max(1),
            batch: Vec::with_capacity(BATCH),
            running: VecDeque::new(),
            report: SendReport::default(),
        }
    }

    /// Queues `item`; a full batch is sent in the background. Errors only when an earlier
    /// call failed in a way that retrying cannot fix (no such queue, access denied).
    pub fn send(&mut self, item: &WorkItem) -> Result<()> {
        self.batch.push((item.uri.clone(), item.to_json()));
        if self.batch.len() == BATCH {
            self.dispatch()?;
        }
        Ok(())
    }

    /// Messages accepted so far (by finished calls).
    pub fn sent(&self) -> u64 {
        self.report.messages
    }

    /// Sends what is left, waits for every call and reports.
    pub fn finish(mut self) -> Result<SendReport> {
        if !self.batch.is_empty() {
            self.dispatch()?;
        }
        while let Some(h) = self.running.pop_front() {
            self.collect(h)?;
        }
        Ok(self.report)
    }

    fn dispatch(&mut self) -> Result<()> {
        while self.running.len() >= self.in_flight {
            let h = self.running.pop_front().expect("a running call");
            self.collect(h)?;
        }
        let entries = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let client = self.client.clone();
        let url = self.queue_url.clone();
        self.running
            .push_back(self.aws.runtime().spawn(send_batch(client, url, entries)));
        Ok(())
    }

    fn collect(&mut self, handle: JoinHandle<SendReport>) -> Result<()> {
        let report = self.aws.block_on(handle).map_err(|e| PfError::Service {
            service: "sqs",
            operation: "SendMessageBatch".into(),
            class: ErrorClass::Transient,
            message: format!("send task failed: {e}"),
        })?;
        // A permanent call failure (no queue, no permission) fails every later call too.
        if let Some((_, reason)) = report
            .failed
            .iter()
            .find(|(_, r)| r.starts_with("permanent:"))
        {
            return Err(PfError::Service {
                service: "sqs",
                operation: format!("SendMessageBatch {}", self.queue_url),
                class: ErrorClass::Permanent,
                message: reason.trim_start_matches("permanent: ").to_owned(),
            });
        }
        self.report.merge(report);
        Ok(())
    }
}

/// Delays between sends of a batch's failed entries.
const ENTRY_RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(3200));

/// Sends one batch, retrying failed entries (and failed calls) with backoff.
async fn send_batch(client: Client, url: String, mut entries: Vec<(String, String)>) -> SendReport {
    let mut report = SendReport::default();
    let mut attempt = 0;
    while !entries.is_empty() {
        attempt += 1;
        let request = entries.iter().enumerate().map(|(i, (_, body))| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .build()
                .expect("id and body are set")
        });
        report.calls += 1;
        let retry_ids: Vec<usize> = match client
            .send_message_batch()
            .queue_url(&url)
            .set_entries(Some(request.collect()))
            .send()
            .await
        {
            Ok(out) => {
                report.messages += out.successful().len() as u64;
                let mut retry = Vec::new();
                for f in out.failed() {
                    let Ok(i) = f.id().parse::<usize>() else {
                        continue;
                    };
                    // Sender faults (bad body) never succeed; service faults may.
                    if f.sender_fault() || attempt >= ENTRY_ATTEMPTS {
                        if let Some((uri, _)) = entries.get(i) {
                            report.failed.push((
                                uri.clone(),
                                format!("{}: {}", f.code(), f.message().unwrap_or("")),
                            ));
                        }
                    } else {
                        retry.push(i);
                    }
                }
                retry
            }
            Err(e) => {
                let (class, message) = classify(&e);
                if class == ErrorClass::Permanent || attempt >= ENTRY_ATTEMPTS {
                    let tag = if class == ErrorClass::Permanent {
                        "permanent: "
                    } else {
                        ""
                    };
                    report.failed.extend(
                        entries
                            .drain(..)
                            .map(|(uri, _)| (uri, format!("{tag}{message}"))),
                    );
                    break;
                }
                (0..entries.len()).collect()
            }
        };
        if retry_ids.is_empty() {
            break;
        }
        report.retried += retry_ids.len() as u64;
        let mut kept = Vec::with_capacity(retry_ids.len());
        for (i, e) in entries.into_iter().enumerate() {
            if retry_ids.contains(&i) {
                kept.push(e);
            }
        }
        entries = kept;
        tokio::time::sleep(ENTRY_RETRY.delay(attempt)).await;
    }
    report
}
