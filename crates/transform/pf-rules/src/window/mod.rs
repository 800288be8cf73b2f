//! Stateful sliding-window rules (`rapid_activity`: 5+ transactions of one account in
//! 60 s).
//!
//! # Semantics
//!
//! Per rule and key, the store keeps the *events* it has seen: each record with a
//! non-null key and time is one event, identified by its source `(uri, row)`.
//!
//! * **Row flag.** A record fires when, at the moment it is processed, its own window
//!   `[t − seconds, t]` (inclusive at both ends) holds at least `min_count` events of its
//!   key: itself, every event stored earlier (from any batch, file or worker) and the
//!   earlier rows of its own batch. Flags reflect what was known when the record was
//!   processed; they are never revised.
//! * **Alerts.** An event *qualifies* when its window holds at least `min_count` events.
//!   An alert is identified by `(rule, key, t_end)` where `t_end` is the time of a
//!   qualifying event, and each is raised exactly once (events sharing a time share one
//!   alert). When an event arrives late — older than events already stored for its key —
//!   the stored events within `seconds` after it are re-checked: they may qualify now,
//!   and their alerts are raised at that point (flagged [`WindowAlert::late`]), naming the
//!   record at `t_end`, not the late one. Hence the *set* of alerts is the same for any
//!   split of the data across threads, workers and files and for any processing order:
//!   it is `{(key, t) : some event at t has ≥ min_count events of its key in [t − seconds, t]}`.
//!   (Which call raises an alert, its `count` and therefore the row flags do depend on
//!   order.)
//! * **Replays.** An event whose `(uri, row)` is already stored for its key and time is
//!   not counted again, so re-processing a file after a crash neither inflates counts nor
//!   re-raises alerts.
//! * **Nulls.** A record with a null key or time is not an event and never fires.
//!
//! # Bounded memory and late data
//!
//! A key's events older than `newest − seconds − allowed_lateness` (`newest` being the
//! latest time seen for that key) are evicted; an event that arrives already older than
//! that is *too late*: it is not stored, does not fire, raises nothing, and is counted in
//! [`WindowOutcome::late_dropped`]. As long as no event arrives more than
//! `allowed_lateness` behind the newest event of its key, eviction never removes an event
//! a later window needs and the alert set is exactly the order-independent set above.
//! Beyond that, or when caps evict state (a key count cap, least recently used keys
//! first; a per-key event cap, oldest events first), windows are under-counted (missed
//! alerts) and an alert whose record of having been raised was evicted may be raised a
//! second time if late events complete its window again; alert keys are stable, so a
//! destination that deduplicates by key absorbs that.

mod memory;

use arrow::array::{StringArray, TimestampMicrosecondArray};
use arrow::buffer::BooleanBuffer;
use pf_error::PfError;

pub use memory::{MemoryWindowOptions, MemoryWindowStore, WindowStoreStats};

use crate::BatchMeta;

/// One batch of one window rule, handed to a [`WindowStore`] in a single call.
#[derive(Debug, Clone, Copy)]
pub struct WindowRequest<'a> {
    /// The rule's name; the store keeps separate state per rule.
    pub rule: &'a str,
    /// The key of every row (null: not an event).
    pub keys: &'a StringArray,
    /// The time of every row, µs since the epoch UTC (null: not an event); same length as
    /// `keys`.
    pub times: &'a TimestampMicrosecondArray,
    /// Window length in seconds.
    pub seconds: u64,
    /// Events needed in a window.
    pub min_count: u32,
    /// Where the rows come from: their `(uri, row)` identifies events.
    pub meta: &'a BatchMeta<'a>,
}

/// What a [`WindowStore`] made of one [`WindowRequest`].
#[derive(Debug, Clone)]
pub struct WindowOutcome {
    /// Per row: whether its window held at least `min_count` events when processed.
    pub fired: BooleanBuffer,
    /// Alerts newly raised by this batch (possibly for records of earlier batches).
    pub alerts: Vec<WindowAlert>,
    /// Rows ignored for arriving later than the allowed lateness.
    pub late_dropped: u64,
}

/// A qualifying window, raised once per `(rule, key, window_end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowAlert {
    /// The key (e.g. the account id).
    pub key: String,
    /// `t_end`: time of the qualifying event, µs since the epoch UTC.
    pub window_end: i64,
    /// Events in `[window_end − seconds, window_end]` known when the alert was raised.
    pub count: u32,
    /// Source file of the (first seen) event at `window_end`.
    pub uri: String,
    /// Its row ordinal in that file.
    pub row: u64,
    /// Raised by a re-check after a late event, not by the event at `window_end` itself.
    pub late: bool,
}

/// Sliding-window state shared by every pipeline thread (and, for a Valkey-backed
/// implementation, every worker process), with the semantics in the module docs.
///
/// Called once per batch and window rule, never per record, so a remote store can do one
/// round trip (a pipeline or a script) per batch.
pub trait WindowStore: Send + Sync {
    /// Adds the request's events and returns each row's flag and the alerts newly
    /// raised. An error (e.g. a store that cannot be reached) fails the batch; it should
    /// be [transient](pf_error::ErrorClass::Transient) if a retry may succeed.
    fn observe(&self, request: &WindowRequest<'_>) -> Result<WindowOutcome, PfError>;
}
