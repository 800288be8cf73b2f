//! The contract of stateful sliding-window rules' state (`rapid_activity`), shared by
//! the in-process store (pf-rules) and service-backed stores (pf-coordinator).
//!
//! The semantics every store implements (inclusive windows, exactly-once alerts per
//! `(rule, key, t_end)`, order independence, replays, late data) are documented in
//! `pf_rules::window`.

use arrow::array::{Array, StringArray, TimestampMicrosecondArray};
use arrow::buffer::BooleanBuffer;
use pf_error::PfError;

/// Where a batch comes from: alert keys, alert rows and window event identities use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta<'a> {
    /// URI of the source file.
    pub uri: &'a str,
    /// Ordinal (in the file) of row 0, when rows are contiguous.
    pub first_row: u64,
    /// Per-row ordinals when they are not (after a filter); length = rows.
    pub ordinals: Option<&'a [u64]>,
    /// The work item the rows are processed for (its claim key: the uri, or the uri
    /// and range of a split file): the alerts raised for it are held as undelivered
    /// under this name until [`WindowStore::delivered`].
    pub item: &'a str,
}

impl<'a> BatchMeta<'a> {
    /// Rows `first_row, first_row + 1, …` of `uri`.
    pub fn contiguous(uri: &'a str, first_row: u64) -> Self {
        BatchMeta {
            uri,
            first_row,
            ordinals: None,
            item: uri,
        }
    }

    /// The ordinal of batch row `row` in its file.
    pub fn ordinal(&self, row: usize) -> u64 {
        match self.ordinals {
            Some(o) => o
                .get(row)
                .copied()
                .unwrap_or(self.first_row.saturating_add(row as u64)),
            None => self.first_row.saturating_add(row as u64),
        }
    }
}

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

impl WindowRequest<'_> {
    /// The number of rows, after checking that `keys` and `times` have the same length
    /// (a schema error naming the rule and the file otherwise).
    pub fn rows(&self) -> Result<usize, PfError> {
        let rows = self.keys.len();
        if self.times.len() != rows {
            return Err(PfError::Schema {
                location: self.meta.uri.to_owned(),
                message: format!(
                    "window rule `{}`: {} keys but {} times",
                    self.rule,
                    rows,
                    self.times.len()
                ),
            });
        }
        Ok(rows)
    }
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

    /// The alerts of `rule` raised while processing `item` (by any worker) and not yet
    /// confirmed [`delivered`](Self::delivered): a worker that takes an item over sends
    /// them again, since its previous holder may have died between raising them and
    /// flushing them to their destination, and a replay of the same rows may be too late
    /// to raise them again. A store whose state dies with the process has none.
    fn undelivered(&self, rule: &str, item: &str) -> Result<Vec<WindowAlert>, PfError> {
        let _ = (rule, item);
        Ok(Vec::new())
    }

    /// Every alert raised so far for `item` by this process has reached its destination
    /// (the alert sink was flushed): they are no longer held as undelivered.
    fn delivered(&self, item: &str) -> Result<(), PfError> {
        let _ = item;
        Ok(())
    }
}
