//! Streaming NDJSON reader: newline-delimited JSON (plain, gzip or zstd) → Arrow batches.
//!
//! A file is read sequentially through [`ObjectSource::read_from`], decompressed on the
//! fly and cut into lines in large chunks, so memory stays bounded by the chunk size,
//! the longest accepted line and one output batch, whatever the file size.
//!
//! Lines are decoded with arrow-json straight from the chunk buffer, without copies or
//! per-line allocations, and flushed to one batch per run of lines. Only when a run
//! fails are the offending lines isolated (syntax errors point at their line directly,
//! type errors are bisected with fresh decoders), so one bad line costs a record
//! failure, never the file.
//!
//! # Records, lines and failures
//!
//! * Every non-blank line is one record. Blank and whitespace-only lines are skipped
//!   but still counted for line numbers. CRLF line ends and a missing final newline are
//!   accepted; a UTF-8 byte-order mark at the start of the file is ignored.
//! * A record that is not exactly one JSON object matching the schema (malformed JSON,
//!   type mismatch, invalid UTF-8, several values on one line, a line longer than
//!   [`NdjsonReaderOptions::max_line_bytes`]) becomes a [`RecordFailure`] at
//!   [`Stage::Read`] with its 1-based line number (when known, see below), its
//!   ordinal and (truncated) text.
//! * A record's ordinal (its document id's suffix, `row` of a failure) is the
//!   decompressed byte offset of its line's first byte. Offsets, unlike line counts,
//!   are known to a read that starts anywhere in the file, so a bad or blank line does
//!   not shift the ids after it, and a range read on its own numbers its records as a
//!   read of the whole file does.
//!
//! # Ranges
//!
//! An uncompressed file may be cut into byte ranges ([`ItemRange`]), each read on its
//! own. A range owns the lines whose first byte lies in it: it reads from the byte
//! before its start (when that byte is not a line end, the bytes up to the next line
//! end belong to the range before), and past its end only to finish its last line.
//! Without a configured schema, a range decodes with the schema a read of the whole
//! file infers from the file's head. A range that starts after the first byte does not
//! know its line numbers: its failures carry the ordinal only.
//!
//! # Schema
//!
//! With [`NdjsonReaderOptions::schema`] set, lines are decoded strictly against it
//! (fields missing from the schema are ignored; a value of the wrong type fails the
//! line). Without one, the schema is inferred from the first
//! [`NdjsonReaderOptions::infer_rows`] valid lines of the first chunk that holds a
//! JSON object; those head lines are kept in memory and decoded like all others.
//! Inferred schemas are made tolerant of what a small head cannot show: fields that
//! were always `null` become nullable strings, and numbers and booleans are accepted in
//! string columns (inference widens mixed-type fields to strings). Integer columns
//! decode exactly: a later value that is not an integer (`5.5` where the head showed
//! integers) fails its line instead of being truncated (see `integers.rs`); set `schema`
//! or a larger `infer_rows` when such columns are expected.
//!
//! # Resuming
//!
//! Every batch carries a [`ResumePoint`]: decompressed bytes consumed through the end
//! of the batch's last line, the records and the lines consumed. A
//! [`Checkpoint`] built from it resumes with a ranged read for plain files, and by
//! decompressing and discarding the done prefix for gzip and zstd (those streams cannot
//! be entered in the middle). Without a configured schema a resumed read reads the file's
//! head again and decodes with the schema inferred from it — the schema of the first
//! attempt — so every line decodes to the same record, fails the same way and keeps its
//! ordinal (its document id) whatever checkpoint a file resumes from.
//!
//! [`ObjectSource::read_from`]: pf_traits::ObjectSource::read_from
//! [`RecordFailure`]: pf_types::RecordFailure
//! [`Stage::Read`]: pf_types::Stage::Read
//! [`ResumePoint`]: pf_traits::ResumePoint
//! [`Checkpoint`]: pf_types::Checkpoint
//! [`ItemRange`]: pf_types::ItemRange

mod config;
mod decode;
mod infer;
mod input;
mod integers;
mod stream;

#[cfg(test)]
mod tests;

pub use config::{FieldSpec, FieldType, NdjsonConfig};

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use pf_error::{PfError, Result};
use pf_traits::{BatchSteps, BatchStream, ObjectSource, Reader};
use pf_types::{Checkpoint, FileFormat, WorkItem};

/// Default number of records per batch.
pub const DEFAULT_BATCH_SIZE: usize = 65_536;
/// Default number of head lines used for schema inference.
pub const DEFAULT_INFER_ROWS: usize = 1_000;
/// Default longest accepted line, in bytes (1 MiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
/// Default most line bytes decoded into one batch (8 MiB).
pub const DEFAULT_MAX_BATCH_BYTES: usize = 8 << 20;
/// Decompressed bytes read and cut into lines at a time (4 MiB).
const DEFAULT_CHUNK_BYTES: usize = 4 << 20;
/// Upper bound for the test-only chunk override, so that a careless value cannot
/// allocate the machine away.
const MAX_CHUNK_BYTES: usize = 256 << 20;

/// How an [`NdjsonReader`] decodes files.
#[derive(Debug, Clone)]
pub struct NdjsonReaderOptions {
    /// Most records (decoded or failed) per batch; at least 1.
    pub batch_size: usize,
    /// The schema to decode against; `None` infers one from the head of each file.
    pub schema: Option<SchemaRef>,
    /// Non-blank head lines looked at for inference; at least 1.
    pub infer_rows: usize,
    /// Longest accepted line in bytes (excluding the line end); longer lines are record
    /// failures and are skipped without being buffered. At least 1.
    pub max_line_bytes: usize,
    /// Most line bytes decoded into one batch: a batch ends at `batch_size` records or
    /// at this many bytes of input lines (plus at most one read chunk), whichever comes
    /// first, so wide records make batches shorter instead of memory larger. At least 1.
    pub max_batch_bytes: usize,
}

impl Default for NdjsonReaderOptions {
    fn default() -> Self {
        NdjsonReaderOptions {
            batch_size: DEFAULT_BATCH_SIZE,
            schema: None,
            infer_rows: DEFAULT_INFER_ROWS,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }
}

/// Reads NDJSON files into Arrow batches; see the [crate documentation](crate).
#[derive(Debug, Clone)]
pub struct NdjsonReader {
    options: NdjsonReaderOptions,
    chunk_bytes: usize,
}

impl NdjsonReader {
    /// A reader with `options`; zero sizes are raised to 1 rather than rejected, since
    /// they can only mean "as small as possible".
    pub fn new(mut options: NdjsonReaderOptions) -> Self {
        options.batch_size = options.batch_size.max(1);
        options.infer_rows = options.infer_rows.max(1);
        options.max_line_bytes = options.max_line_bytes.max(1);
        options.max_batch_bytes = options.max_batch_bytes.max(1);
        NdjsonReader {
            options,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }

    /// The effective options.
    pub fn options(&self) -> &NdjsonReaderOptions {
        &self.options
    }

    /// Overrides the decompressed chunk size, so tests can put chunk boundaries inside
    /// lines; not a tuning knob.
    #[doc(hidden)]
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes.clamp(1, MAX_CHUNK_BYTES);
        self
    }
}

impl Default for NdjsonReader {
    fn default() -> Self {
        NdjsonReader::new(NdjsonReaderOptions::default())
    }
}

impl Reader for NdjsonReader {
    fn format(&self) -> FileFormat {
        FileFormat::Ndjson
    }

    fn open(
        &self,
        source: Arc<dyn ObjectSource>,
        item: &WorkItem,
        resume: &Checkpoint,
    ) -> Result<BatchStream> {
        if item.format != FileFormat::Ndjson {
            return Err(PfError::InvalidWorkItem {
                message: format!(
                    "`{}` is {}, not ndjson; it was routed to the wrong reader",
                    item.uri, item.format
                ),
            });
        }
        let stream = stream::NdjsonStream::open(
            source.as_ref(),
            item,
            resume,
            &self.options,
            self.chunk_bytes,
        )?;
        Ok(stream.into_stream())
    }
}
