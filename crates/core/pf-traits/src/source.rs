use std::io::Read;
use std::ops::Range;

use bytes::Bytes;

use pf_error::Result;
use pf_types::ObjectInfo;

/// Objects listed under a root, streamed as the listing proceeds.
pub type ObjectListing<'a> = Box<dyn Iterator<Item = Result<ObjectInfo>> + Send + 'a>;

/// Byte access to stored objects (local files, S3), addressed by URI.
pub trait ObjectSource: Send + Sync {
    /// Size, version and modification time of one object.
    fn stat(&self, uri: &str) -> Result<ObjectInfo>;
    /// Exactly the bytes in `range` (end exclusive); a short object is an error.
    fn read_range(&self, uri: &str, range: Range<u64>) -> Result<Bytes>;
    /// A sequential reader from `offset` to the end of the object.
    fn read_from(&self, uri: &str, offset: u64) -> Result<Box<dyn Read + Send>>;
    /// Objects under `root` (a directory or prefix URI), in key order.
    fn list(&self, root: &str, recursive: bool) -> Result<ObjectListing<'_>>;
}
