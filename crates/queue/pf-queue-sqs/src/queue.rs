use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, QueueAttributeName};

use pf_aws::{AwsContext, error_code, service_error};
use pf_error::{ErrorClass, PfError, Result};
use pf_traits::{Delivery, WorkQueue};
use pf_types::{FileFailure, WorkItem};

use crate::attributes as attr;
use crate::receive::{age, receive_count, receive_request};
use crate::sender::WorkItemSender;
use crate::{MESSAGE_AGE, SqsConfig};

/// A received message waiting for a pipeline thread.
struct Prefetched {
    delivery: Delivery,
    received: Instant,
}

/// An SQS work queue with a dead-letter queue.
///
/// Messages that are not work items are dead-lettered at once (class `permanent`); S3
/// test events are deleted; an S3 event with several records is split into one work
/// item message per record.
pub struct SqsWorkQueue {
    aws: AwsContext,
    client: Client,
    config: SqsConfig,
    queue_url: String,
    worker_id: String,
    dlq_url: String,
    prefetched: Mutex<VecDeque<Prefetched>>,
    /// First failure time per item key, for the dead-letter attributes.
    first_failure: Mutex<HashMap<String, String>>,
}

impl SqsWorkQueue {
    /// Connects to the queue, finding its DLQ from the redrive policy when
    /// `options.dlq_url` is not given.
    pub fn connect(aws: AwsContext, config: &SqsConfig, worker_id: &str) -> Result<Self> {
        let queue_url = config.queue_url.clone().ok_or_else(|| {
            PfError::config(
                "queue.sqs.queue_url",
                "is required when queue.kind is sqs (--sqs-queue-url)",
            )
        })?;
        let client = Client::new(aws.sdk_config());
        let dlq_url = match &config.dlq_url {
            Some(url) => url.clone(),
            None => dlq_from_redrive_policy(&aws, &client, &queue_url)?,
        };
        tracing::info!(queue = %queue_url, dlq = %dlq_url, "SQS work queue ready");
        Ok(SqsWorkQueue {
            aws,
            client,
            config: config.clone(),
            queue_url,
            worker_id: worker_id.to_owned(),
            dlq_url,
            prefetched: Mutex::new(VecDeque::new()),
            first_failure: Mutex::new(HashMap::new()),
        })
    }

    /// The dead-letter queue in use.
    pub fn dlq_url(&self) -> &str {
        &self.dlq_url
    }

    fn visibility_secs(d: Duration) -> i32 {
        d.as_secs().clamp(0, 43_200) as i32
    }

    /// One ReceiveMessage call; every message becomes a delivery or is settled here.
    fn fetch(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let wait_secs = wait
            .as_secs_f64()
            .ceil()
            .min(f64::from(self.config.wait_time_secs.min(20))) as i32;
        let request = receive_request(
            &self.client,
            &self.queue_url,
            max.clamp(1, 10) as i32,
            Self::visibility_secs(self.config.visibility_timeout()),
        );
        let out = self
            .aws
            .block_on(request.wait_time_seconds(wait_secs).send())
            .map_err(|e| service_error("sqs", "ReceiveMessage", &e))?;
        let mut deliveries = Vec::new();
        for message in out.messages.unwrap_or_default() {
            if let Some(d) = self.accept(message)? {
                deliveries.push(d);
            }
        }
        Ok(deliveries)
    }

    /// Turns a message into a delivery, or settles it when it carries no single item.
    fn accept(&self, message: Message) -> Result<Option<Delivery>> {
        let handle = message.receipt_handle.clone().unwrap_or_default();
        let body = message.body.as_deref().unwrap_or("");
        let receive_count = receive_count(&message);
        if let Some(age) = age(&message) {
            metrics::histogram!(MESSAGE_AGE).record(age.as_secs_f64());
        }
        match WorkItem::parse_message(body) {
            Ok(mut items) if items.len() == 1 => Ok(Some(Delivery {
                item: items.pop().expect("one item"),
                handle,
                receive_count,
            })),
            Ok(items) if items.is_empty() => {
                tracing::debug!("S3 test event or event without created objects; deleting it");
                self.delete(&handle)?;
                Ok(None)
            }
            Ok(items) => {
                // One delivery per file keeps acknowledgement per file: re-enqueue each
                // record as its own work item, then drop the original event.
                tracing::info!(
                    files = items.len(),
                    "S3 event with several records; splitting it into work items"
                );
                if let Some(unsent) = self.enqueue_then_delete(&handle, &items)? {
                    // Keep the event; a later receive splits it again (duplicates are
                    // harmless: completed files are acknowledged without work).
                    tracing::warn!(
                        failed = unsent,
                        "could not re-enqueue every record; keeping the event"
                    );
                }
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "message is not a work item; dead-lettering it");
                let failure = FileFailure {
                    uri: String::new(),
                    class: ErrorClass::Permanent,
                    error: e.to_string(),
                    attempts: receive_count,
                };
                self.send_to_dlq(body, &failure, None)?;
                self.delete(&handle)?;
                Ok(None)
            }
        }
    }

    /// Sends `items` as messages of their own, then deletes the message `handle`. When
    /// some entries could not be sent the message stays, and the number unsent is
    /// returned; a call that cannot work at all (no such queue, access denied) is an error.
    fn enqueue_then_delete(&self, handle: &str, items: &[WorkItem]) -> Result<Option<usize>> {
        let mut sender = WorkItemSender::new(self.aws.clone(), self.queue_url.clone(), 2);
        for item in items {
            sender.send(item)?;
        }
        let report = sender.finish()?;
        if !report.failed.is_empty() {
            return Ok(Some(report.failed.len()));
        }
        self.delete(handle)?;
        Ok(None)
    }

    fn delete(&self, handle: &str) -> Result<()> {
        match self.aws.block_on(
            self.client
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(handle)
                .send(),
        ) {
            Ok(_) => Ok(()),
            Err(e) if stale_handle(error_code(&e)) => {
                // The visibility lapsed and the message went to another consumer; that
                // consumer settles it (a completed item is acknowledged without work).
                tracing::warn!(
                    "receipt handle expired before DeleteMessage; the item will be seen again"
                );
                Ok(())
            }
            Err(e) => Err(service_error("sqs", "DeleteMessage", &e)),
        }
    }

    fn change_visibility(&self, delivery: &Delivery, timeout: Duration) -> Result<()> {
        match self.aws.block_on(
            self.client
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(&delivery.handle)
                .visibility_timeout(Self::visibility_secs(timeout))
                .send(),
        ) {
            Ok(_) => Ok(()),
            Err(e) if stale_handle(error_code(&e)) => Err(PfError::Service {
                service: "sqs",
                operation: "ChangeMessageVisibility".into(),
                class: ErrorClass::Permanent,
                message: format!(
                    "receipt handle of {} is no longer valid (visibility lapsed?)",
                    delivery.item.uri
                ),
            }),
            Err(e) => Err(service_error("sqs", "ChangeMessageVisibility", &e)),
        }
    }

    fn send_to_dlq(&self, body: &str, failure: &FileFailure, key: Option<&str>) -> Result<()> {
        let first = key
            .and_then(|k| self.first_failure.lock().ok()?.remove(k))
            .unwrap_or_else(now_rfc3339);
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(body);
        for (name, value) in [
            (attr::ERROR_CLASS, failure.class.as_str().to_owned()),
            (attr::ERROR_MESSAGE, failure.error.clone()),
            (attr::ATTEMPTS, failure.attempts.to_string()),
            (attr::WORKER_ID, self.worker_id.clone()),
            (attr::FIRST_FAILURE, first),
            (attr::SOURCE_QUEUE, self.queue_url.clone()),
        ] {
            if value.is_empty() {
                continue;
            }
            let data_type = if name == attr::ATTEMPTS {
                "Number"
            } else {
                "String"
            };
            request = request.message_attributes(
                name,
                MessageAttributeValue::builder()
                    .data_type(data_type)
                    .string_value(attr::value_text(&value))
                    .build()
                    .map_err(|e| PfError::InvalidWorkItem {
                        message: format!("dead-letter attribute {name}: {e}"),
                    })?,
            );
        }
        self.aws
            .block_on(request.send())
            .map_err(|e| service_error("sqs", "SendMessage (DLQ)", &e))?;
        Ok(())
    }
}

impl WorkQueue for SqsWorkQueue {
    fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let max = max.max(1);
        let mut ready = Vec::new();
        {
            let mut buffer = self.prefetched.lock().expect("prefetch buffer poisoned");
            while ready.len() < max {
                let Some(p) = buffer.pop_front() else { break };
                ready.push(p);
            }
        }
        if ready.is_empty() {
            let want = (max + self.config.prefetch as usize)
                .min((self.config.max_messages as usize).max(max));
            let fetched = self.fetch(want, wait)?;
            let now = Instant::now();
            let mut fetched = fetched.into_iter();
            ready.extend(fetched.by_ref().take(max).map(|delivery| Prefetched {
                delivery,
                received: now,
            }));
            let mut buffer = self.prefetched.lock().expect("prefetch buffer poisoned");
            buffer.extend(fetched.map(|delivery| Prefetched {
                delivery,
                received: now,
            }));
        }
        let mut out = Vec::with_capacity(ready.len());
        for p in ready {
            // A prefetched item waited with its visibility clock running; renew it before
            // work starts so the heartbeat takes over with a full timeout.
            if p.received.elapsed() > self.config.visibility_timeout() / 4
                && let Err(e) =
                    self.extend_visibility(&p.delivery, self.config.visibility_timeout())
            {
                tracing::warn!(uri = %p.delivery.item.uri, error = %e, "prefetched item expired; skipping it (it will be redelivered)");
                continue;
            }
            out.push(p.delivery);
        }
        Ok(out)
    }

    fn ack(&self, delivery: &Delivery) -> Result<()> {
        if let Ok(mut m) = self.first_failure.lock() {
            m.remove(&delivery.item.key());
        }
        self.delete(&delivery.handle)
    }

    fn release(&self, delivery: &Delivery, delay: Duration) -> Result<()> {
        if let Ok(mut m) = self.first_failure.lock()
            && m.len() < 100_000
        {
            m.entry(delivery.item.key()).or_insert_with(now_rfc3339);
        }
        match self.change_visibility(delivery, delay) {
            Err(e) if !e.is_transient() => {
                tracing::warn!(uri = %delivery.item.uri, error = %e, "cannot release; the item reappears when its visibility lapses");
                Ok(())
            }
            other => other,
        }
    }

    fn replace(&self, delivery: &Delivery, items: Vec<WorkItem>) -> Result<()> {
        match self.enqueue_then_delete(&delivery.handle, &items)? {
            None => Ok(()),
            Some(unsent) => Err(PfError::Service {
                service: "sqs",
                operation: "SendMessageBatch".into(),
                class: ErrorClass::Transient,
                message: format!(
                    "could not enqueue {unsent} of {} ranges of {} to {}; the message stays",
                    items.len(),
                    delivery.item.uri,
                    self.queue_url
                ),
            }),
        }
    }

    fn extend_visibility(&self, delivery: &Delivery, timeout: Duration) -> Result<()> {
        self.change_visibility(delivery, timeout)
    }

    fn dead_letter(&self, delivery: &Delivery, failure: &FileFailure) -> Result<()> {
        let key = delivery.item.key();
        self.send_to_dlq(&delivery.item.to_json(), failure, Some(&key))?;
        self.delete(&delivery.handle)
    }

    fn visibility_timeout(&self) -> Option<Duration> {
        Some(self.config.visibility_timeout())
    }

    fn close(&self) -> Result<()> {
        let pending: Vec<_> = self
            .prefetched
            .lock()
            .map(|mut b| b.drain(..).collect())
            .unwrap_or_default();
        for p in pending {
            self.change_visibility(&p.delivery, Duration::ZERO)?;
        }
        Ok(())
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn stale_handle(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ReceiptHandleIsInvalid"
                | "InvalidParameterValue"
                | "MessageNotInflight"
                | "AWS.SimpleQueueService.MessageNotInflight"
        )
    )
}

/// The DLQ URL named by the queue's `RedrivePolicy` attribute.
fn dlq_from_redrive_policy(aws: &AwsContext, client: &Client, queue_url: &str) -> Result<String> {
    let attrs = aws
        .block_on(
            client
                .get_queue_attributes()
                .queue_url(queue_url)
                .attribute_names(QueueAttributeName::RedrivePolicy)
                .send(),
        )
        .map_err(|e| service_error("sqs", format!("GetQueueAttributes {queue_url}"), &e))?;
    let policy = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        .ok_or_else(|| {
            PfError::config(
                "queue.sqs.dlq_url",
                format!(
                    "{queue_url} has no redrive policy, so permanently failing files would \
                     have nowhere to go; set queue.sqs.dlq_url (--sqs-dlq-url) or create the \
                     queues with `pf queue setup`"
                ),
            )
        })?;
    let arn = serde_json::from_str::<serde_json::Value>(policy)
        .ok()
        .and_then(|v| v.get("deadLetterTargetArn")?.as_str().map(str::to_owned))
        .ok_or_else(|| {
            PfError::config(
                "queue.sqs.dlq_url",
                format!("cannot read the DLQ from the redrive policy of {queue_url}: {policy}"),
            )
        })?;
    // arn:aws:sqs:<region>:<account>:<name>
    let mut parts = arn.rsplitn(3, ':');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    let out = aws
        .block_on(
            client
                .get_queue_url()
                .queue_name(name)
                .queue_owner_aws_account_id(account)
                .send(),
        )
        .map_err(|e| service_error("sqs", format!("GetQueueUrl {name}"), &e))?;
    out.queue_url()
        .map(str::to_owned)
        .ok_or_else(|| PfError::config("queue.sqs.dlq_url", format!("no URL for the DLQ {arn}")))
}
