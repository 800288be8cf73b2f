//! Domain types shared by every Paraflow crate: what a unit of work is, how a file is
//! encoded, how far processing got, and what a run counted.

mod format;
mod record;
mod stats;
mod work_item;

pub use format::{Compression, FileFormat};
pub use record::{Alert, RecordFailure, Severity, Stage};
pub use stats::{FileFailure, FileStats, RunSummary};
pub use work_item::{Checkpoint, ObjectInfo, WorkItem};
