//! The bulk sender's Prometheus metrics, recorded beside the exact [`EsCounters`]
//! (which feed the run summary).
//!
//! [`EsCounters`]: crate::EsCounters

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

/// Counter by `result`: final outcomes of bulk items, and re-sends.
pub const BULK_ITEMS: &str = "paraflow_bulk_items_total";
/// Counter by `outcome`: `_bulk` HTTP requests, every attempt.
pub const BULK_REQUESTS: &str = "paraflow_bulk_requests_total";
/// Histogram, seconds: one `_bulk` round trip (send, server time, response).
pub const BULK_REQUEST_DURATION: &str = "paraflow_bulk_request_duration_seconds";
/// Counter: bytes sent on the wire (after compression), every attempt.
pub const BULK_WIRE_BYTES: &str = "paraflow_bulk_wire_bytes_total";

/// What became of bulk items; the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemResult {
    /// Accepted (`2xx`).
    Indexed,
    /// `409` on `create`: the document was already there; counts as indexed.
    AlreadyIndexed,
    /// Answered `429`/`5xx` and sent again (one count per re-send).
    Retried,
    /// Refused on its own (`4xx`); goes to the record DLQ.
    Rejected,
    /// Its request failed as a whole after every retry; its file is retried.
    Abandoned,
}

impl ItemResult {
    const ALL: [ItemResult; 5] = [
        ItemResult::Indexed,
        ItemResult::AlreadyIndexed,
        ItemResult::Retried,
        ItemResult::Rejected,
        ItemResult::Abandoned,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ItemResult::Indexed => "indexed",
            ItemResult::AlreadyIndexed => "already_indexed",
            ItemResult::Retried => "retried",
            ItemResult::Rejected => "rejected",
            ItemResult::Abandoned => "abandoned",
        }
    }
}

/// Describes the bulk sender's metrics to the installed recorder.
pub fn describe_metrics() {
    describe_counter!(
        BULK_ITEMS,
        Unit::Count,
        "Bulk items by result. indexed, already_indexed (409 on create), rejected (4xx, to the record DLQ) and abandoned (request failed after every retry; the file is retried) are final for one attempt of a file; retried counts re-sends after 429/5xx."
    );
    describe_counter!(
        BULK_REQUESTS,
        Unit::Count,
        "_bulk HTTP requests, every attempt, by outcome: ok (a response to read) or failed (refused, timed out, 5xx as a whole)."
    );
    describe_histogram!(
        BULK_REQUEST_DURATION,
        Unit::Seconds,
        "One _bulk round trip: send, server time, response."
    );
    describe_counter!(
        BULK_WIRE_BYTES,
        Unit::Bytes,
        "Bytes sent in _bulk requests after compression, every attempt."
    );
}

/// Creates the bulk series at zero, so a destination that has sent nothing yet shows.
pub(crate) fn register() {
    for result in ItemResult::ALL {
        counter!(BULK_ITEMS, "result" => result.as_str()).increment(0);
    }
    for outcome in ["ok", "failed"] {
        counter!(BULK_REQUESTS, "outcome" => outcome).increment(0);
    }
    counter!(BULK_WIRE_BYTES).increment(0);
    let _ = histogram!(BULK_REQUEST_DURATION);
}

pub(crate) fn items(result: ItemResult, n: u64) {
    if n > 0 {
        counter!(BULK_ITEMS, "result" => result.as_str()).increment(n);
    }
}

pub(crate) fn request(ok: bool, took: Duration, wire_bytes: u64) {
    counter!(BULK_REQUESTS, "outcome" => if ok { "ok" } else { "failed" }).increment(1);
    histogram!(BULK_REQUEST_DURATION).record(took.as_secs_f64());
    counter!(BULK_WIRE_BYTES).increment(wire_bytes);
}
