//! Metadata stores: who is processing what, how far it got, and what is done; plus the
//! Valkey-backed window store that fraud rules share across workers.
//!
//! [`MemoryMetadataStore`] serves the embedded mode (one process);
//! [`ValkeyMetadataStore`] is shared by the workers, discoverers and `pf status` of a
//! deployment. Both implement this state machine (one shared test suite runs against
//! both, `tests/store_suite.rs`):
//!
//! ```text
//! (none | pending) --claim--> processing --complete--> completed
//!                                 |  \--fail-------> failed
//!                                 \--release-------> pending (checkpoint kept)
//! processing, heartbeat older than `stale_after` --claim by another worker--> processing
//! failed --claim--> processing (a redelivery after the DLQ was redriven)
//! completed --claim--> AlreadyCompleted (acknowledge without work)
//! ```
//! Only the current holder moves an item on: a worker that lost its claim to a stale
//! takeover has its late heartbeats, checkpoints and completion ignored.
//!
//! # Valkey key layout
//!
//! Every key starts with the configurable prefix (`coordinator.valkey.key_prefix`,
//! default `pf:`); `<item>` is the item key `<job>|<uri>|<etag>` (`-` for a missing job
//! or etag), plus `#<index>/<count>` for one range of a split file (`<file>` is the key
//! without it); `<job>` is the job id (`-` for items without one).
//!
//! | Key | Type | Content |
//! |---|---|---|
//! | `pf:item:<item>` | hash | `status` (pending/processing/completed/failed), `attempts`, `worker`, `started_ms`, `heartbeat_ms`, `finished_ms` (server clock, Unix ms), `cp` (checkpoint JSON: position, next_row, lines_done, stats), `stats` (final counters JSON), `err` (last error), `uri`, `etag`, `size`, `job` |
//! | `pf:job:<job>` | hash | `files_total`, `bytes_total`, `registered_ms` (from the discoverer); `started_ms` (first claim), `last_finished_ms`; `files_completed`, `bytes_completed`, `rows_read`, `rows_indexed`, `rows_failed` (counted on the processing → completed transition only; a split file counts in `files_completed` when its last range completes); `ranges:<file>` (ranges of a split file completed so far) |
//! | `pf:job:<job>:processing` | sorted set | `<item>` scored by its last heartbeat: in-flight and stale items |
//! | `pf:job:<job>:failed` | set | `<item>` of failed items |
//! | `pf:jobs` | sorted set | job ids scored by last activity (`pf status` without `--job`) |
//! | `pf:windows:{<rule>:<group>}` | hash | a field per key holding its window state (newest time, uris, event times with uri and row, alerted times; varints), each field expiring `ttl_secs` after the key's last event; `<group>` = xxh3(key) mod [`SLOT_GROUPS`] |
//! | `pf:winheld:{<rule>:<group>}:<item>` | list | window alerts raised for a work item and not yet flushed by its worker; read back by the next holder |
//!
//! Every write refreshes the TTL (`coordinator.valkey.ttl_secs`, default 7 days) of the
//! keys it touches, so finished jobs expire on their own. Every state change is one Lua
//! script that reads the current state and decides, so it is atomic and safe to repeat
//! after a lost reply; times come from the server's clock (`TIME`), so staleness does
//! not depend on the workers' clocks agreeing.
//!
//! # Outages
//!
//! Calls that hit a dropped connection, a refused connect, a timeout or a loading
//! server reconnect and retry with backoff (logged once when Valkey goes away, every
//! tenth attempt after, and once when it is back) for up to
//! `coordinator.valkey.outage_limit_secs`; only then do they fail with a transient
//! `valkey` service error. Pipeline threads therefore wait out an outage instead of
//! acknowledging work whose metadata could not be written. If the server comes back
//! empty (no persistence), the holders of in-flight items re-create their records on
//! their next heartbeat, checkpoint or completion; registered job totals and finished
//! items written before the restart are lost with it.

mod config;
mod connection;
mod memory;
mod status;
mod valkey;
mod window;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use config::{ValkeyConfig, WindowPlacement};
pub use connection::{VALKEY_CALL_DURATION, VALKEY_PASSWORD_ENV, describe_metrics};
pub use memory::MemoryMetadataStore;
pub use status::{JobStatus, job_status, print_status, register_job_totals};
pub use valkey::ValkeyMetadataStore;
pub use window::{SLOT_GROUPS, ValkeyWindowOptions, ValkeyWindowStore, WINDOW_CONFLICTS};
/// Entry points for the fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::window::fuzz_stored_state;
}

/// The error of a state change by `worker` on an item it no longer holds.
pub(crate) fn claim_lost(item: &pf_types::WorkItem, worker: &str) -> pf_error::PfError {
    pf_error::PfError::ClaimLost {
        location: item.uri.clone(),
        holder: worker.to_owned(),
    }
}

/// Default time without a heartbeat after which a holder is presumed dead.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(120);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
