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
//!   not counted again, so re-processing a file after a crash does not inflate counts.
//!   The alerts of the qualifying windows that hold it are raised again (once per
//!   request): an alert raised before a crash may not have reached its destination, and
//!   alert ids (`rule|key|t_end`) are deterministic, so a destination keyed by them
//!   (Elasticsearch) absorbs the repeat and a file of alerts may list it twice. A
//!   replayed event that is already too late (below) — the crashed worker went on well
//!   past its checkpoint — is dropped and raises nothing; for that case a shared store
//!   also holds every alert raised for a work item until its worker has flushed them
//!   ([`WindowStore::delivered`]), and the next holder of the item sends them again
//!   ([`WindowStore::undelivered`]). Alerts are therefore delivered at least once.
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

pub use memory::{
    MemoryWindowOptions, MemoryWindowStore, WINDOW_EVENTS, WINDOW_KEYS, WindowStoreStats,
};
// The contract lives in pf-traits so that stores backed by a service (Valkey, in
// pf-coordinator) implement it without depending on the rules engine.
pub use pf_traits::{WindowAlert, WindowOutcome, WindowRequest, WindowStore};
