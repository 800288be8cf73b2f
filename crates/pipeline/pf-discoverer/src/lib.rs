//! Discovery: list objects under a root, keep the ones that match, emit work items.
//!
//! Listing streams (work items come out while the listing is still running), so a
//! prefix with millions of objects needs no more memory than one listing page.

use chrono::{DateTime, Utc};
use globset::{GlobBuilder, GlobMatcher};

use pf_error::{PfError, Result};
use pf_traits::ObjectSource;
use pf_types::{FileFormat, ObjectInfo, WorkItem};

/// What to discover.
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// Directory, `file://` URI or `s3://bucket/prefix` to list.
    pub root: String,
    /// Glob over the key relative to `root` (`*`, `**`, `?`, `{a,b}`); a pattern without
    /// `/` matches the file name at any depth.
    pub pattern: Option<String>,
    /// Descend into subdirectories (always true for object stores).
    pub recursive: bool,
    /// Skip objects smaller than this many bytes.
    pub min_size: Option<u64>,
    /// Skip objects larger than this many bytes.
    pub max_size: Option<u64>,
    /// Skip objects last modified before this time (objects without a time are kept).
    pub modified_after: Option<DateTime<Utc>>,
    /// Skip objects last modified at or after this time (objects without a time are kept).
    pub modified_before: Option<DateTime<Utc>>,
    /// Attached to every work item.
    pub job_id: Option<String>,
    /// Cut splittable files larger than this many bytes into one work item per range
    /// of this size (see [`WorkItem::split`]), so a fleet shares one large file.
    pub split_size: Option<u64>,
}

/// Counters for one discovery run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    /// Objects listed.
    pub listed: u64,
    /// Files that matched (each emitted whole or as ranges).
    pub files: u64,
    /// Work items emitted: whole files plus ranges.
    pub emitted: u64,
    /// Files cut into ranges.
    pub split_files: u64,
    /// Bytes in the emitted objects.
    pub bytes: u64,
    /// Objects skipped by pattern or size filters.
    pub filtered: u64,
    /// Objects skipped because their format is not recognised.
    pub unknown_format: u64,
}

/// Lists `options.root` through `source` and calls `emit` for each matching work item,
/// in listing order. Stops at the first error from the listing or from `emit`.
pub fn discover(
    source: &dyn ObjectSource,
    options: &DiscoverOptions,
    emit: &mut dyn FnMut(WorkItem) -> Result<()>,
) -> Result<DiscoveryStats> {
    let filter = Filter::new(options)?;
    let root_prefix = listing_prefix(&options.root)?;
    let mut stats = DiscoveryStats::default();
    for object in source.list(&options.root, options.recursive)? {
        let object = object?;
        stats.listed += 1;
        let relative = object.uri.strip_prefix(&root_prefix).unwrap_or(&object.uri);
        if !filter.accepts(relative, &object) {
            stats.filtered += 1;
            continue;
        }
        let Some((format, compression)) = FileFormat::infer(&object.uri) else {
            stats.unknown_format += 1;
            tracing::debug!(uri = %object.uri, "skipping object of unknown format");
            continue;
        };
        stats.files += 1;
        stats.bytes += object.size;
        let item = WorkItem {
            uri: object.uri,
            size: Some(object.size),
            etag: object.etag,
            format,
            compression,
            job_id: options.job_id.clone(),
            last_modified: object.last_modified,
            range: None,
        };
        match options.split_size.and_then(|size| item.split(size)) {
            Some(ranges) => {
                stats.split_files += 1;
                for range in ranges {
                    stats.emitted += 1;
                    emit(range)?;
                }
            }
            None => {
                stats.emitted += 1;
                emit(item)?;
            }
        }
    }
    Ok(stats)
}

/// The URI prefix that listed objects share with the root, so patterns match keys
/// relative to it: the root folder (or, for `s3://bucket/some/pre`, `s3://bucket/some/`).
fn listing_prefix(root: &str) -> Result<String> {
    if let Some(rest) = root.strip_prefix("s3://") {
        return Ok(match rest.rsplit_once('/') {
            Some((dir, _)) => format!("s3://{dir}/"),
            None => format!("s3://{rest}/"),
        });
    }
    // The local source lists canonical paths, so the prefix must be canonical too.
    let path = root.strip_prefix("file://").unwrap_or(root);
    let canonical = std::fs::canonicalize(path).map_err(|e| PfError::io(root, e))?;
    let dir = if canonical.is_file() {
        canonical
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or(canonical)
    } else {
        canonical
    };
    let mut prefix = format!("file://{}", dir.display());
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(prefix)
}

struct Filter {
    glob: Option<GlobMatcher>,
    name_only: bool,
    min_size: Option<u64>,
    max_size: Option<u64>,
    modified_after: Option<DateTime<Utc>>,
    modified_before: Option<DateTime<Utc>>,
}

impl Filter {
    fn new(o: &DiscoverOptions) -> Result<Self> {
        let glob = o
            .pattern
            .as_deref()
            .map(|p| {
                GlobBuilder::new(p)
                    .literal_separator(true)
                    .build()
                    .map(|g| g.compile_matcher())
                    .map_err(|e| PfError::config("--pattern", format!("invalid glob `{p}`: {e}")))
            })
            .transpose()?;
        Ok(Filter {
            glob,
            name_only: o.pattern.as_deref().is_some_and(|p| !p.contains('/')),
            min_size: o.min_size,
            max_size: o.max_size,
            modified_after: o.modified_after,
            modified_before: o.modified_before,
        })
    }

    fn accepts(&self, relative: &str, object: &ObjectInfo) -> bool {
        if self.min_size.is_some_and(|m| object.size < m)
            || self.max_size.is_some_and(|m| object.size > m)
        {
            return false;
        }
        if self.modified_after.is_some() || self.modified_before.is_some() {
            let modified = object
                .last_modified
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            if let Some(t) = modified
                && (self.modified_after.is_some_and(|a| t < a)
                    || self.modified_before.is_some_and(|b| t >= b))
            {
                return false;
            }
        }
        match &self.glob {
            None => true,
            Some(g) if self.name_only => {
                g.is_match(relative.rsplit('/').next().unwrap_or(relative))
            }
            Some(g) => g.is_match(relative),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pf_storage::LocalObjectSource;
    use pf_types::Compression;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("2026/01")).unwrap();
        for (f, len) in [
            ("a.parquet", 10),
            ("b.ndjson.gz", 20),
            ("notes.txt", 5),
            ("2026/01/c.parquet", 30),
            ("2026/01/d.jsonl", 1),
        ] {
            std::fs::write(dir.path().join(f), vec![b'x'; len]).unwrap();
        }
        dir
    }

    fn run(o: DiscoverOptions) -> (Vec<WorkItem>, DiscoveryStats) {
        let mut items = Vec::new();
        let stats = discover(&LocalObjectSource, &o, &mut |i| {
            items.push(i);
            Ok(())
        })
        .unwrap();
        (items, stats)
    }

    fn names(items: &[WorkItem]) -> Vec<&str> {
        items
            .iter()
            .map(|i| i.uri.rsplit('/').next().unwrap())
            .collect()
    }

    #[test]
    fn discovers_recursively_with_formats_and_sizes() {
        let dir = tree();
        let root = dir.path().to_str().unwrap().to_owned();
        let (items, stats) = run(DiscoverOptions {
            root: root.clone(),
            recursive: true,
            job_id: Some("j1".into()),
            ..Default::default()
        });
        assert_eq!(
            names(&items),
            ["a.parquet", "b.ndjson.gz", "c.parquet", "d.jsonl"]
        );
        assert_eq!(stats.listed, 5);
        assert_eq!(stats.unknown_format, 1);
        assert_eq!(stats.bytes, 61);
        assert_eq!(items[1].compression, Compression::Gzip);
        assert_eq!(items[0].size, Some(10));
        assert!(items[0].uri.starts_with("file:///"));
        assert!(
            items
                .iter()
                .all(|i| i.job_id.as_deref() == Some("j1") && i.etag.is_some())
        );

        let (items, _) = run(DiscoverOptions {
            root: root.clone(),
            ..Default::default()
        });
        assert_eq!(names(&items), ["a.parquet", "b.ndjson.gz"]);
    }

    #[test]
    fn large_splittable_files_are_emitted_as_ranges() {
        let dir = tree();
        let (items, stats) = run(DiscoverOptions {
            root: dir.path().to_str().unwrap().to_owned(),
            recursive: true,
            split_size: Some(12),
            ..Default::default()
        });
        let cut: Vec<_> = items
            .iter()
            .map(|i| {
                let name = i.uri.rsplit('/').next().unwrap();
                (name, i.range.map(|r| (r.index, r.count, r.start, r.end)))
            })
            .collect();
        assert_eq!(
            cut,
            [
                ("a.parquet", None),
                ("b.ndjson.gz", None),
                ("c.parquet", Some((0, 3, 0, 12))),
                ("c.parquet", Some((1, 3, 12, 24))),
                ("c.parquet", Some((2, 3, 24, 30))),
                ("d.jsonl", None),
            ]
        );
        assert_eq!((stats.files, stats.emitted, stats.split_files), (4, 6, 1));
        assert_eq!(stats.bytes, 61, "a split file's bytes count once");
    }

    #[test]
    fn patterns_and_size_filters() {
        let dir = tree();
        let root = dir.path().to_str().unwrap().to_owned();
        let opts = |pattern: &str| DiscoverOptions {
            root: root.clone(),
            pattern: Some(pattern.into()),
            recursive: true,
            ..Default::default()
        };
        assert_eq!(names(&run(opts("*.parquet")).0), ["a.parquet", "c.parquet"]);
        assert_eq!(
            names(&run(opts("2026/**/*.{parquet,jsonl}")).0),
            ["c.parquet", "d.jsonl"]
        );
        assert_eq!(names(&run(opts("?.parquet")).0), ["a.parquet", "c.parquet"]);
        assert_eq!(names(&run(opts("*/c.parquet")).0), Vec::<&str>::new());
        let (items, stats) = run(DiscoverOptions {
            min_size: Some(10),
            max_size: Some(20),
            ..opts("*")
        });
        assert_eq!(names(&items), ["a.parquet", "b.ndjson.gz"]);
        assert_eq!(stats.filtered, 3);
        let err = discover(&LocalObjectSource, &opts("a[.parquet"), &mut |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("invalid glob"), "{err}");
    }

    #[test]
    fn modification_time_window() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let filter = Filter::new(&DiscoverOptions {
            modified_after: Some(t("2026-01-01T00:00:00Z")),
            modified_before: Some(t("2026-02-01T00:00:00Z")),
            ..Default::default()
        })
        .unwrap();
        let object = |m: Option<&str>| ObjectInfo {
            uri: "s3://b/k.parquet".into(),
            size: 1,
            etag: None,
            last_modified: m.map(str::to_owned),
        };
        assert!(filter.accepts("k.parquet", &object(Some("2026-01-01T00:00:00Z"))));
        assert!(filter.accepts("k.parquet", &object(Some("2026-01-31T23:59:59.999Z"))));
        assert!(!filter.accepts("k.parquet", &object(Some("2025-12-31T23:59:59Z"))));
        assert!(!filter.accepts("k.parquet", &object(Some("2026-02-01T00:00:00Z"))));
        assert!(filter.accepts("k.parquet", &object(None)));
    }
}
