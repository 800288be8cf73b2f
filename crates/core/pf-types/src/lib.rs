//! Domain types shared by every Paraflow crate: what a unit of work is, how a file is
//! encoded, how far processing got, and what a run counted.

mod backoff;
mod format;
mod record;
mod secret;
mod stats;
mod work_item;

pub use backoff::{Backoff, random_u64};
pub use format::{Compression, FileFormat};
pub use record::{Alert, RecordFailure, Severity, Stage};
pub use secret::{MASK, Secret, SecretUrl, mask_url_userinfo, with_secrets_revealed};
pub use stats::{FileFailure, FileStats, RunSummary};
pub use work_item::{Checkpoint, ItemRange, MAX_RANGES, ObjectInfo, WorkItem};
