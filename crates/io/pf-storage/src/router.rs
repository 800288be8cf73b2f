use std::io::Read;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use pf_error::{PfError, Result};
use pf_traits::{ObjectListing, ObjectSource};
use pf_types::ObjectInfo;

use crate::{LocalAccess, LocalObjectSource};

/// Routes every URI to the source registered for its scheme.
///
/// Local paths and `file://` work where the [`LocalAccess`] allows them (anywhere by
/// default); `s3://` works once an S3 source is registered with
/// [`ObjectSources::with_s3`].
#[derive(Clone, Default)]
pub struct ObjectSources {
    s3: Option<Arc<dyn ObjectSource>>,
    local: LocalAccess,
}

impl ObjectSources {
    /// Local files only, any path.
    pub fn local_only() -> Self {
        Self::default()
    }

    /// Local files limited to what `access` allows.
    pub fn with_local_access(mut self, access: LocalAccess) -> Self {
        self.local = access;
        self
    }

    /// Adds the source that serves `s3://` URIs.
    pub fn with_s3(mut self, s3: Arc<dyn ObjectSource>) -> Self {
        self.s3 = Some(s3);
        self
    }

    fn route(&self, uri: &str) -> Result<&dyn ObjectSource> {
        if uri.starts_with("s3://") {
            return self.s3.as_deref().ok_or_else(|| {
                PfError::config(
                    "storage.s3",
                    format!("`{uri}` is an S3 URI but no S3 source is configured"),
                )
            });
        }
        if let Some(path) = crate::local_path(uri) {
            self.local.check(uri, path)?;
            return Ok(&LocalObjectSource);
        }
        Err(PfError::InvalidWorkItem {
            message: format!(
                "unsupported URI scheme in `{uri}` (expected s3://, file:// or a path)"
            ),
        })
    }
}

impl ObjectSource for ObjectSources {
    fn stat(&self, uri: &str) -> Result<ObjectInfo> {
        self.route(uri)?.stat(uri)
    }

    fn read_range(&self, uri: &str, range: Range<u64>) -> Result<Bytes> {
        self.route(uri)?.read_range(uri, range)
    }

    fn read_from(&self, uri: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        self.route(uri)?.read_from(uri, offset)
    }

    fn list(&self, root: &str, recursive: bool) -> Result<ObjectListing<'_>> {
        self.route(root)?.list(root, recursive)
    }

    fn read_range_pinned(&self, uri: &str, range: Range<u64>, etag: &str) -> Result<Bytes> {
        self.route(uri)?.read_range_pinned(uri, range, etag)
    }

    fn read_from_pinned(&self, uri: &str, offset: u64, etag: &str) -> Result<Box<dyn Read + Send>> {
        self.route(uri)?.read_from_pinned(uri, offset, etag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unconfigured_and_unknown_schemes() {
        let s = ObjectSources::local_only();
        let e = s.stat("s3://b/k.parquet").unwrap_err();
        assert!(e.to_string().contains("no S3 source"), "{e}");
        let e = s.stat("gs://b/k.parquet").unwrap_err();
        assert!(e.to_string().contains("unsupported URI scheme"), "{e}");
    }
}
