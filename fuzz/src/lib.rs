//! Helpers shared by the fuzz targets: an in-memory [`ObjectSource`] and a panic hook
//! for code that is meant to catch panics itself.

use std::collections::HashSet;
use std::io::{Cursor, Read};
use std::ops::Range;
use std::sync::{Mutex, Once};

use bytes::Bytes;

use pf_error::{PfError, Result};
use pf_traits::{ObjectListing, ObjectSource};
use pf_types::ObjectInfo;

/// One object, held in memory, served under every URI.
pub struct MemSource {
    data: Bytes,
}

impl MemSource {
    /// A source whose every object is `data`.
    pub fn new(data: impl Into<Bytes>) -> Self {
        MemSource { data: data.into() }
    }

    fn len(&self) -> u64 {
        self.data.len() as u64
    }
}

fn short(uri: &str, what: String) -> PfError {
    PfError::io(
        uri,
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what),
    )
}

impl ObjectSource for MemSource {
    fn stat(&self, uri: &str) -> Result<ObjectInfo> {
        Ok(ObjectInfo {
            uri: uri.to_owned(),
            size: self.len(),
            etag: Some("fuzz".to_owned()),
            last_modified: None,
        })
    }

    /// Exactly `range`, as the trait requires: a range past the end is an error.
    fn read_range(&self, uri: &str, range: Range<u64>) -> Result<Bytes> {
        if range.start > range.end || range.end > self.len() {
            return Err(short(
                uri,
                format!("range {range:?} of a {}-byte object", self.len()),
            ));
        }
        Ok(self.data.slice(range.start as usize..range.end as usize))
    }

    /// Like the local source: an offset at or past the end reads nothing.
    fn read_from(&self, _uri: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        let from = offset.min(self.len()) as usize;
        Ok(Box::new(Cursor::new(self.data.slice(from..))))
    }

    fn list(&self, _root: &str, _recursive: bool) -> Result<ObjectListing<'_>> {
        Ok(Box::new(std::iter::empty()))
    }
}

static CAUGHT_SITES: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Replaces libfuzzer-sys' abort-on-panic hook with one that lets the panic unwind.
///
/// For code under test that catches panics on purpose (the Parquet reader wraps the
/// parquet decoder in `catch_unwind` and turns a panic into an `InvalidData` error):
/// those panics are the designed behaviour, not crashes. A panic that escapes the code
/// under test still reaches libfuzzer-sys' own `catch_unwind`, which aborts, so real
/// crashes are still reported. Each distinct panic site is printed once, so the log
/// shows which decoder panics the reader absorbed.
pub fn unwind_panics_reporting_sites() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let site = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_else(|| "<unknown>".to_owned());
            let mut sites = CAUGHT_SITES.lock().unwrap_or_else(|e| e.into_inner());
            if sites.get_or_insert_with(HashSet::new).insert(site.clone()) {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("<non-string payload>");
                eprintln!("[fuzz] panic (unwinding; new site) at {site}: {message}");
            }
        }));
    });
}
