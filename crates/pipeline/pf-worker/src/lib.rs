//! The worker: a pool of pipeline threads fed by a work queue.
//!
//! Each of `threads` rayon threads loops: receive one work item → claim it in the
//! metadata store → run the file end to end ([`pf_file_processor`]) → settle it
//! (acknowledge, release for retry with backoff, or dead-letter). A separate
//! heartbeat thread extends queue visibility and metadata heartbeats of in-flight
//! items. Shutdown stops the intake; in-flight files are finished.

mod config;
mod heartbeat;
mod progress;
mod queue_metrics;
mod stoppable;
mod summary;
mod worker;

pub use config::WorkerConfig;
pub use progress::{ProgressDisplay, ProgressMode};
pub use queue_metrics::describe_metrics;
pub use stoppable::{StoppableThread, Ticks};
pub use summary::render_summary;
pub use worker::{Worker, WorkerComponents, WorkerSettings, default_worker_id, peak_rss_mb};
