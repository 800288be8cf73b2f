//! The decompressed byte stream of one file, with compressed-byte accounting and error
//! classification.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use flate2::read::MultiGzDecoder;

use pf_error::{PfError, Result};
use pf_traits::ObjectSource;
use pf_types::Compression;

/// Largest zstd window accepted, as a power of two (128 MiB, zstd's own default limit,
/// set here so that it is a decision): the decoder holds the whole window, so a frame
/// that declares a larger one is refused as corrupt instead of allocated.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Decompressed bytes of one object, read from some offset onwards.
pub(crate) struct Input {
    reader: Box<dyn Read + Send>,
    compressed: Arc<AtomicU64>,
    source_error: Arc<Mutex<Option<io::Error>>>,
    uri: String,
    compression: Compression,
}

impl Input {
    /// Opens `uri` at the stored (compressed) byte `offset`.
    pub(crate) fn open(
        source: &dyn ObjectSource,
        uri: &str,
        compression: Compression,
        offset: u64,
    ) -> Result<Self> {
        let raw = source.read_from(uri, offset)?;
        let compressed = Arc::new(AtomicU64::new(0));
        let source_error = Arc::new(Mutex::new(None));
        let counting = CountingReader {
            inner: raw,
            count: Arc::clone(&compressed),
            error: Arc::clone(&source_error),
        };
        let reader: Box<dyn Read + Send> = match compression {
            Compression::None => Box::new(counting),
            // Multi-member: concatenated gzip files (common for appended logs) are one stream.
            Compression::Gzip => Box::new(MultiGzDecoder::new(counting)),
            Compression::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::new(counting)
                    .map_err(|e| PfError::io(uri.to_owned(), e))?;
                decoder
                    .window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(|e| PfError::io(uri.to_owned(), e))?;
                Box::new(decoder)
            }
        };
        Ok(Input {
            reader,
            compressed,
            source_error,
            uri: uri.to_owned(),
            compression,
        })
    }

    /// Reads decompressed bytes into `buf`; `Ok(0)` only at the end of the data.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            match self.reader.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.classify(e)),
            }
        }
    }

    /// Stored (compressed) bytes read from the source so far.
    pub(crate) fn compressed_bytes(&self) -> u64 {
        self.compressed.load(Ordering::Relaxed)
    }

    /// A transport failure keeps the class of its I/O error (a reset connection is
    /// transient); anything the decompressor itself rejects is a corrupt file, which no
    /// retry will fix.
    fn classify(&self, err: io::Error) -> PfError {
        let source_err = self
            .source_error
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        if let Some(original) = source_err {
            return PfError::io(self.uri.clone(), original);
        }
        match self.compression {
            Compression::None => PfError::io(self.uri.clone(), err),
            other => PfError::invalid_data(
                self.uri.clone(),
                "ndjson",
                format!("corrupt {} stream: {err}", other.as_str()),
            ),
        }
    }
}

/// Counts stored bytes and keeps the source's own errors, since decompressors may
/// rewrap or replace them before they reach us.
struct CountingReader {
    inner: Box<dyn Read + Send>,
    count: Arc<AtomicU64>,
    error: Arc<Mutex<Option<io::Error>>>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let stand_in = io::Error::new(e.kind(), e.to_string());
                if let Ok(mut slot) = self.error.lock() {
                    slot.get_or_insert(e);
                }
                Err(stand_in)
            }
        }
    }
}
