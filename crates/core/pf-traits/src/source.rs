use std::io::Read;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use pf_error::{PfError, Result};
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

    /// [`read_range`](Self::read_range) of the object's version `etag` only: a different
    /// version fails with [`object_changed`]. The default cannot tell versions apart and
    /// reads whatever is there.
    fn read_range_pinned(&self, uri: &str, range: Range<u64>, etag: &str) -> Result<Bytes> {
        let _ = etag;
        self.read_range(uri, range)
    }

    /// [`read_from`](Self::read_from) of the object's version `etag` only (including any
    /// re-request after a broken connection).
    fn read_from_pinned(&self, uri: &str, offset: u64, etag: &str) -> Result<Box<dyn Read + Send>> {
        let _ = etag;
        self.read_from(uri, offset)
    }
}

/// The permanent failure of a read pinned to the version discovered when the object is
/// now another: its bytes are never mixed with the old version's.
pub fn object_changed(uri: &str, etag: &str, now: Option<&str>) -> PfError {
    PfError::InvalidWorkItem {
        message: format!(
            "object changed since discovery: {uri} (discovered version {etag}, now {})",
            now.unwrap_or("another")
        ),
    }
}

/// `inner` with every read pinned to one version of each object (the etag a work item
/// carries): what a file processor reads through, so an object rewritten between
/// discovery and read, or between two attempts, fails instead of being spliced.
pub struct PinnedSource {
    inner: Arc<dyn ObjectSource>,
    etag: String,
}

impl PinnedSource {
    /// Reads of `inner` pinned to `etag` (as S3 writes it or bare: quotes and a weak
    /// `W/` prefix are dropped, as every source reports etags without them).
    pub fn new(inner: Arc<dyn ObjectSource>, etag: &str) -> Self {
        let etag = etag.trim();
        let etag = etag.strip_prefix("W/").unwrap_or(etag).trim_matches('"');
        PinnedSource {
            inner,
            etag: etag.to_owned(),
        }
    }
}

impl ObjectSource for PinnedSource {
    fn stat(&self, uri: &str) -> Result<ObjectInfo> {
        let info = self.inner.stat(uri)?;
        match info.etag.as_deref() {
            Some(now) if now != self.etag => Err(object_changed(uri, &self.etag, Some(now))),
            _ => Ok(info),
        }
    }

    fn read_range(&self, uri: &str, range: Range<u64>) -> Result<Bytes> {
        self.inner.read_range_pinned(uri, range, &self.etag)
    }

    fn read_from(&self, uri: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        self.inner.read_from_pinned(uri, offset, &self.etag)
    }

    fn list(&self, root: &str, recursive: bool) -> Result<ObjectListing<'_>> {
        self.inner.list(root, recursive)
    }
}
