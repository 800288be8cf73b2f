//! Byte access to stored objects.
//!
//! [`LocalObjectSource`] serves `file://` URIs and plain paths with positional reads
//! (no whole-file loads); [`ObjectSources`] routes each URI to the source for its scheme,
//! so the pipeline holds one `Arc<dyn ObjectSource>` whatever the mix of inputs.

mod config;
mod local;
mod router;

pub use config::{LocalAccess, LocalConfig};
pub use local::{LocalObjectSource, file_etag, local_path};
pub use router::ObjectSources;
