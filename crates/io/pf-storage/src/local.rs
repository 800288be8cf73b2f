use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bytes::Bytes;

use pf_error::{PfError, Result};
use pf_traits::{ObjectListing, ObjectSource};
use pf_types::ObjectInfo;

/// Local files addressed as `file:///abs/path` or as a plain path.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalObjectSource;

/// The filesystem path behind a `file://` URI or plain path; `None` for other schemes.
pub fn local_path(uri: &str) -> Option<&Path> {
    if let Some(rest) = uri.strip_prefix("file://") {
        return Some(Path::new(rest));
    }
    if uri.contains("://") {
        return None;
    }
    Some(Path::new(uri))
}

fn path_of(uri: &str) -> Result<&Path> {
    local_path(uri).ok_or_else(|| PfError::InvalidWorkItem {
        message: format!("`{uri}` is not a local file URI"),
    })
}

/// Fails with [`pf_traits::object_changed`] unless the file's version (size and
/// modification time, as in its etag) is still `etag`.
/// Exactly the bytes of `range` of `file`; a short file is an error.
fn read_exact_range(file: &File, uri: &str, range: Range<u64>) -> Result<Bytes> {
    let len = range.end.checked_sub(range.start).ok_or_else(|| {
        PfError::invalid_data(uri, "byte range", format!("inverted range {range:?}"))
    })?;
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, range.start)
        .map_err(|e| PfError::io(format!("{uri} bytes {range:?}"), e))?;
    Ok(Bytes::from(buf))
}

/// The file of `uri`, opened, after checking that the opened file (not whatever the path
/// names a moment later) is version `etag`; with its size.
fn open_version(uri: &str, etag: &str) -> Result<(File, u64)> {
    let file = File::open(path_of(uri)?).map_err(|e| PfError::io(uri, e))?;
    let meta = file.metadata().map_err(|e| PfError::io(uri, e))?;
    let now = file_etag(&meta);
    if now != etag {
        return Err(pf_traits::object_changed(uri, etag, Some(&now)));
    }
    Ok((file, meta.len()))
}

/// The etag of a local file: modification time (ns) and size, in hex; changes whenever
/// the file is rewritten, like an S3 ETag does.
pub fn file_etag(meta: &fs::Metadata) -> String {
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{mtime_ns:x}-{:x}", meta.len())
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn object_info(path: &Path, meta: &fs::Metadata) -> ObjectInfo {
    let modified = meta.modified().ok();
    ObjectInfo {
        uri: file_uri(path),
        size: meta.len(),
        etag: Some(file_etag(meta)),
        last_modified: modified.map(|m| {
            chrono::DateTime::<chrono::Utc>::from(m)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        }),
    }
}

impl ObjectSource for LocalObjectSource {
    fn stat(&self, uri: &str) -> Result<ObjectInfo> {
        let path = path_of(uri)?;
        let meta = fs::metadata(path).map_err(|e| PfError::io(uri, e))?;
        if !meta.is_file() {
            return Err(PfError::InvalidWorkItem {
                message: format!("`{uri}` is not a regular file"),
            });
        }
        let abs = fs::canonicalize(path).map_err(|e| PfError::io(uri, e))?;
        Ok(object_info(&abs, &meta))
    }

    fn read_range(&self, uri: &str, range: Range<u64>) -> Result<Bytes> {
        let file = File::open(path_of(uri)?).map_err(|e| PfError::io(uri, e))?;
        read_exact_range(&file, uri, range)
    }

    fn read_range_pinned(&self, uri: &str, range: Range<u64>, etag: &str) -> Result<Bytes> {
        let (file, _) = open_version(uri, etag)?;
        let bytes = read_exact_range(&file, uri, range)?;
        // Checked again after the read: an in-place rewrite during the read is caught.
        let now = file.metadata().map(|m| file_etag(&m)).unwrap_or_default();
        if now != etag {
            return Err(pf_traits::object_changed(uri, etag, Some(&now)));
        }
        Ok(bytes)
    }

    fn read_from_pinned(&self, uri: &str, offset: u64, etag: &str) -> Result<Box<dyn Read + Send>> {
        let (mut file, len) = open_version(uri, etag)?;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| PfError::io(uri, e))?;
        }
        // Never past the version's end: lines appended since are not this version's.
        Ok(Box::new(file.take(len.saturating_sub(offset))))
    }

    fn read_from(&self, uri: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        let mut file = File::open(path_of(uri)?).map_err(|e| PfError::io(uri, e))?;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| PfError::io(uri, e))?;
        }
        Ok(Box::new(file))
    }

    fn list(&self, root: &str, recursive: bool) -> Result<ObjectListing<'_>> {
        let root = fs::canonicalize(path_of(root)?).map_err(|e| PfError::io(root, e))?;
        let meta = fs::metadata(&root).map_err(|e| PfError::io(root.display().to_string(), e))?;
        if meta.is_file() {
            return Ok(Box::new(std::iter::once(Ok(object_info(&root, &meta)))));
        }
        Ok(Box::new(DirWalk {
            stack: vec![root],
            files: Vec::new(),
            recursive,
        }))
    }
}

/// Depth-first walk in name order, one directory in memory at a time.
struct DirWalk {
    stack: Vec<PathBuf>,
    files: Vec<(PathBuf, fs::Metadata)>,
    recursive: bool,
}

impl DirWalk {
    fn read_dir(&mut self, dir: &Path) -> Result<()> {
        let loc = || dir.display().to_string();
        let mut entries = fs::read_dir(dir)
            .map_err(|e| PfError::io(loc(), e))?
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| PfError::io(loc(), e))?;
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for entry in entries {
            let path = entry.path();
            // Follows symlinks, so a linked data directory is listed like a real one.
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if self.recursive {
                    subdirs.push(path);
                }
            } else if meta.is_file() {
                self.files.push((path, meta));
            }
        }
        // Files of this directory come out first, then subdirectories in name order.
        self.files.reverse();
        self.stack.extend(subdirs.into_iter().rev());
        Ok(())
    }
}

impl Iterator for DirWalk {
    type Item = Result<ObjectInfo>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((path, meta)) = self.files.pop() {
                return Some(Ok(object_info(&path, &meta)));
            }
            let dir = self.stack.pop()?;
            if let Err(e) = self.read_dir(&dir) {
                return Some(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn ranged_reads_and_stat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        fs::write(&path, b"0123456789").unwrap();
        let uri = file_uri(&path);
        let src = LocalObjectSource;
        assert_eq!(&src.read_range(&uri, 2..5).unwrap()[..], b"234");
        assert_eq!(
            &src.read_range(path.to_str().unwrap(), 0..0).unwrap()[..],
            b""
        );
        let err = src.read_range(&uri, 8..20).unwrap_err();
        assert_eq!(err.class(), pf_error::ErrorClass::Permanent);
        let mut s = String::new();
        src.read_from(&uri, 7)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "789");
        let info = src.stat(&uri).unwrap();
        assert_eq!(info.size, 10);
        assert!(info.etag.is_some() && info.last_modified.is_some());
        let missing = src.stat(&format!("{uri}.nope")).unwrap_err();
        assert!(matches!(missing, PfError::NotFound { .. }));
        assert!(src.stat("s3://b/k").is_err());
    }

    #[test]
    fn lists_in_order_with_and_without_recursion() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
        for f in [
            "b.parquet",
            "a.ndjson",
            "sub/c.parquet",
            "sub/deeper/d.jsonl",
        ] {
            fs::write(dir.path().join(f), b"x").unwrap();
        }
        let root = dir.path().to_str().unwrap();
        let names = |recursive| -> Vec<String> {
            LocalObjectSource
                .list(root, recursive)
                .unwrap()
                .map(|o| {
                    let uri = o.unwrap().uri;
                    uri.rsplit('/').next().unwrap().to_owned()
                })
                .collect()
        };
        assert_eq!(names(false), ["a.ndjson", "b.parquet"]);
        assert_eq!(
            names(true),
            ["a.ndjson", "b.parquet", "c.parquet", "d.jsonl"]
        );
        assert!(
            LocalObjectSource
                .list("/definitely/not/here", true)
                .is_err()
        );
    }

    #[test]
    fn pinned_reads_see_only_the_version_discovered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.ndjson");
        std::fs::write(&path, "{\"a\":1}\n").unwrap();
        let uri = format!("file://{}", path.display());
        let src = LocalObjectSource;
        let etag = src.stat(&uri).unwrap().etag.unwrap();
        // Opened at the discovered version; lines appended afterwards are not read.
        let mut r = src.read_from_pinned(&uri, 0, &etag).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"a\":2}\n")
            .unwrap();
        let mut text = String::new();
        r.read_to_string(&mut text).unwrap();
        assert_eq!(text, "{\"a\":1}\n");
        // The file is now another version: every pinned read fails, naming the change.
        let e = src.read_from_pinned(&uri, 0, &etag).err().unwrap();
        assert!(
            e.to_string().contains("object changed since discovery"),
            "{e}"
        );
        let e = src.read_range_pinned(&uri, 0..2, &etag).unwrap_err();
        assert!(
            e.to_string().contains("object changed since discovery"),
            "{e}"
        );
        assert!(
            src.read_range(&uri, 0..2).is_ok(),
            "unpinned reads still work"
        );
    }
}
