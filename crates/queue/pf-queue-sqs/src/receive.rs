//! The ReceiveMessage call shared by the work queue and the DLQ scan.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::operation::receive_message::builders::ReceiveMessageFluentBuilder;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};

/// A ReceiveMessage request on `queue_url` for up to `max` messages, each hidden from
/// other consumers for `visibility_secs` and carrying its receive count and send time
/// (read them with [`receive_count`] and [`age`]). The caller adds the wait time and sends it.
pub(crate) fn receive_request(
    client: &Client,
    queue_url: &str,
    max: i32,
    visibility_secs: i32,
) -> ReceiveMessageFluentBuilder {
    client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max)
        .visibility_timeout(visibility_secs)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
}

/// How many times `message` has been received, this time included (1 when SQS did not
/// say).
pub(crate) fn receive_count(message: &Message) -> u32 {
    message
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// How long ago `message` was first sent, when SQS said (its `SentTimestamp`).
pub(crate) fn age(message: &Message) -> Option<Duration> {
    let sent_ms: u64 = message
        .attributes
        .as_ref()?
        .get(&MessageSystemAttributeName::SentTimestamp)?
        .parse()
        .ok()?;
    let sent = UNIX_EPOCH + Duration::from_millis(sent_ms);
    Some(SystemTime::now().duration_since(sent).unwrap_or_default())
}
