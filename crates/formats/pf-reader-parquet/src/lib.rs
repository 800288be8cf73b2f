//! Streaming Parquet reader: Parquet files from any [`ObjectSource`] into Arrow batches.
//!
//! Nothing ever holds the whole file. The footer is fetched once (one ranged read of the
//! file's tail), then the file is decoded row group by row group, fetching only the
//! projected column chunks of the current row group through bounded read-ahead windows,
//! while the next row group's first windows and each window's next bytes are fetched on
//! background threads (round trips, not bandwidth, bound a reader on S3; see `chunks`).
//! Checkpoints are row-group boundaries: the last batch of each row group carries a
//! [`ResumePoint`], and a reader opened at that point skips the finished row groups
//! without reading them.
//!
//! Failures keep their class: a source error (network, throttling) stays whatever the
//! source said it was, while anything wrong with the bytes themselves (not Parquet, a
//! truncated footer, corrupt pages) is a permanent [`PfError::InvalidData`].

mod chunks;
mod config;

pub use config::ParquetConfig;

use std::any::Any;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use arrow::error::ArrowError;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    ColumnChunkMetaData, PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader,
};
use parquet::schema::types::Type;

use pf_error::{PfError, Result};
use pf_traits::{BatchSteps, BatchStream, ObjectSource, ReadBatch, Reader, ResumePoint};
use pf_types::{Checkpoint, FileFormat, WorkItem};

use crate::chunks::{ColumnChunk, ObjectChunks};

/// Name used for this format in [`PfError::InvalidData`].
const FORMAT: &str = "parquet";

/// `PAR1` at both ends plus the 4-byte metadata length: nothing shorter can be Parquet.
const MIN_FILE_LEN: u64 = 12;

/// Default [`ParquetReaderOptions::look_ahead_bytes`]: 8 MiB, two row groups of the
/// default 131,072 rows, which hides 50 ms round trips at ~2/3 of local speed.
pub const DEFAULT_LOOK_AHEAD_BYTES: u64 = 8 * 1024 * 1024;

/// Default [`ParquetReaderOptions::window_bytes`]: 5 MiB, the most that keeps 1M-row
/// groups read from S3 within 64 MB per thread; it still hides 20 ms round trips.
pub const DEFAULT_WINDOW_BYTES: u64 = 5 * 1024 * 1024;

/// How to read Parquet files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetReaderOptions {
    /// Most rows per Arrow batch; row groups are cut into batches of this size, and a
    /// row group's last batch may be smaller. Zero is treated as one.
    pub batch_size: usize,
    /// Top-level columns to decode, by name; `None` decodes every column. Columns come
    /// out in file order whatever the order here. A name the file lacks is a permanent
    /// [`PfError::Schema`] error, since every retry would fail the same way.
    pub columns: Option<Vec<String>>,
    /// Most bytes of the row groups after the current one fetched while it decodes
    /// (their first column windows). The reader fetches the next group, and one group
    /// further each time decoding catches up with the fetches (small row groups decode in
    /// less time than an S3 round trip takes), while they fit in this; each group ahead
    /// costs its bytes in memory.
    pub look_ahead_bytes: u64,
    /// Bytes of the current row group's column chunks read ahead at once, shared by the
    /// columns in proportion to their sizes (each window between 64 KiB and half of
    /// this); a window and its next fetch can both be in memory.
    pub window_bytes: u64,
}

impl Default for ParquetReaderOptions {
    fn default() -> Self {
        ParquetReaderOptions {
            batch_size: 65_536,
            columns: None,
            look_ahead_bytes: DEFAULT_LOOK_AHEAD_BYTES,
            window_bytes: DEFAULT_WINDOW_BYTES,
        }
    }
}

/// Byte-fetching parameters, fixed in production and shrunk by tests to exercise the
/// windows on small files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IoTuning {
    /// Bytes fetched from the end of the file up front; the footer of most files fits,
    /// so opening costs one request.
    footer_prefetch: u64,
    /// Read-ahead shared by the projected columns of one row group; bounds memory.
    window_budget: u64,
    /// [`ParquetReaderOptions::look_ahead_bytes`].
    look_ahead: u64,
    /// Per-column window bounds: large enough to keep request counts low on S3, small
    /// enough that wide projections stay within the memory budget.
    min_window: u64,
    max_window: u64,
}

impl Default for IoTuning {
    fn default() -> Self {
        IoTuning {
            footer_prefetch: 64 * 1024,
            window_budget: DEFAULT_WINDOW_BYTES,
            look_ahead: DEFAULT_LOOK_AHEAD_BYTES,
            min_window: 64 * 1024,
            max_window: DEFAULT_WINDOW_BYTES / 2,
        }
    }
}

impl IoTuning {
    /// Each of `chunks` (one row group's projected column chunks) with its read-ahead
    /// window: the budget shared in proportion to the chunks' sizes, because the decoder
    /// consumes every column at the rate of its share of the group's bytes. Equal windows
    /// would leave the largest column waiting a round trip at each refill while the small
    /// ones idle on bytes they will not need for a while.
    fn windows(&self, chunks: Vec<Range<u64>>) -> Vec<ColumnChunk> {
        let total: u128 = chunks.iter().map(|c| u128::from(c.end - c.start)).sum();
        let (min, max) = (self.min_window, self.max_window.max(self.min_window));
        chunks
            .into_iter()
            .map(|bytes| {
                let len = bytes.end - bytes.start;
                let share = u128::from(self.window_budget) * u128::from(len) / total.max(1);
                let window = u64::try_from(share).unwrap_or(u64::MAX).clamp(min, max);
                ColumnChunk { bytes, window }
            })
            .collect()
    }
}

/// Decodes Parquet files into Arrow batches, streaming row group by row group.
#[derive(Debug, Clone, Default)]
pub struct ParquetReader {
    options: ParquetReaderOptions,
    io: IoTuning,
}

impl ParquetReader {
    /// A reader with `options`.
    pub fn new(options: ParquetReaderOptions) -> Self {
        let window_budget = options.window_bytes.max(1);
        let io = IoTuning {
            look_ahead: options.look_ahead_bytes,
            window_budget,
            max_window: (window_budget / 2).max(IoTuning::default().min_window),
            ..IoTuning::default()
        };
        ParquetReader { options, io }
    }

    #[cfg(test)]
    fn with_io(mut self, io: IoTuning) -> Self {
        self.io = io;
        self
    }
}

impl Reader for ParquetReader {
    fn format(&self) -> FileFormat {
        FileFormat::Parquet
    }

    fn open(
        &self,
        source: Arc<dyn ObjectSource>,
        item: &WorkItem,
        resume: &Checkpoint,
    ) -> Result<BatchStream> {
        let uri = item.uri.as_str();
        let len = match item.size {
            Some(size) => size,
            None => source.stat(uri)?.size,
        };
        if len < MIN_FILE_LEN {
            return Err(invalid(
                uri,
                format!("{len} bytes is too small to be a Parquet file"),
            ));
        }
        let chunks = ObjectChunks::new(source, uri.to_owned(), len);
        chunks.prefetch_tail(self.io.footer_prefetch)?;

        let metadata = guarded(|| {
            ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Skip)
                .parse_and_finish(&chunks)
        })
        .map_err(|panic| invalid(uri, panic))?
        .map_err(|e| parquet_error(&chunks, e))?;
        chunks.trim_tail(self.io.footer_prefetch);
        let groups = validate(&metadata, len).map_err(|message| invalid(uri, message))?;
        let owned = groups.owned_by(item);
        let row_counts = groups.rows;
        let metadata =
            guarded(|| ArrowReaderMetadata::try_new(Arc::new(metadata), ArrowReaderOptions::new()))
                .map_err(|panic| invalid(uri, panic))?
                .map_err(|e| parquet_error(&chunks, e))?;

        let (projection, leaves) = projection(&metadata, self.options.columns.as_deref(), uri)?;
        let (next_group, next_row) = resume_at(&row_counts, resume, uri)?;

        Ok(RowGroupBatches {
            chunks,
            metadata,
            projection,
            leaves,
            row_counts,
            owned,
            batch_size: self.options.batch_size.max(1),
            io: self.io,
            next_group,
            prefetched_through: 0,
            groups_ahead: 1,
            next_row,
            current: None,
        }
        .into_stream())
    }
}

/// Per row group, what the footer says, checked.
struct Groups {
    /// Row count of each group.
    rows: Vec<u64>,
    /// Offset of each group's first column chunk (4, after the magic, for a group
    /// without columns).
    starts: Vec<u64>,
}

impl Groups {
    /// Which row groups `item` reads: all of them, or for a range of a split file those
    /// whose first column chunk starts in the range, so every group has exactly one owner.
    fn owned_by(&self, item: &WorkItem) -> Vec<bool> {
        self.starts
            .iter()
            .map(|&start| item.range.is_none_or(|r| r.contains(start)))
            .collect()
    }
}

/// Checks what parquet would otherwise assert on (and panic), returning each row
/// group's row count and first offset.
fn validate(metadata: &ParquetMetaData, len: u64) -> std::result::Result<Groups, String> {
    let columns = metadata.file_metadata().schema_descr().num_columns();
    let mut counts = Vec::with_capacity(metadata.num_row_groups());
    let mut starts = Vec::with_capacity(metadata.num_row_groups());
    // Checked once here so that ordinals, which are sums of these counts, cannot overflow.
    let mut total: u64 = 0;
    for (i, group) in metadata.row_groups().iter().enumerate() {
        let rows = u64::try_from(group.num_rows())
            .ok()
            .filter(|&rows| total.checked_add(rows).is_some())
            .ok_or_else(|| format!("row group {i} claims {} rows", group.num_rows()))?;
        total += rows;
        if group.columns().len() != columns {
            return Err(format!(
                "row group {i} has {} column chunks for {columns} columns",
                group.columns().len()
            ));
        }
        let mut start = None::<u64>;
        for (c, column) in group.columns().iter().enumerate() {
            let chunk = chunk_range(column, len)
                .map_err(|message| format!("row group {i}, column {c}: {message}"))?;
            start = Some(start.map_or(chunk.start, |s| s.min(chunk.start)));
        }
        counts.push(rows);
        starts.push(start.unwrap_or(4));
    }
    Ok(Groups {
        rows: counts,
        starts,
    })
}

/// The bytes of one column chunk, checked to lie within the file.
fn chunk_range(column: &ColumnChunkMetaData, len: u64) -> std::result::Result<Range<u64>, String> {
    let start = column
        .dictionary_page_offset()
        .unwrap_or(column.data_page_offset());
    let size = column.compressed_size();
    let (Ok(start), Ok(size)) = (u64::try_from(start), u64::try_from(size)) else {
        return Err(format!("negative chunk offset {start} or size {size}"));
    };
    match start.checked_add(size) {
        Some(end) if end <= len => Ok(start..end),
        _ => Err(format!(
            "chunk of {size} bytes at {start} lies beyond the end of the {len}-byte file"
        )),
    }
}

/// The projection mask for `columns` and the leaf columns it selects.
fn projection(
    metadata: &ArrowReaderMetadata,
    columns: Option<&[String]>,
    uri: &str,
) -> Result<(ProjectionMask, Vec<usize>)> {
    let descr = metadata.parquet_schema();
    let mask = match columns {
        None => ProjectionMask::all(),
        Some(names) => {
            let Type::GroupType { fields, .. } = descr.root_schema() else {
                return Err(invalid(uri, "the schema root is not a group"));
            };
            let mut roots = Vec::with_capacity(names.len());
            for name in names {
                let Some(i) = fields.iter().position(|f| f.name() == name) else {
                    let available: Vec<&str> = fields.iter().map(|f| f.name()).collect();
                    return Err(PfError::Schema {
                        location: uri.to_owned(),
                        message: format!(
                            "column `{name}` is not in the file; it has: {}",
                            available.join(", ")
                        ),
                    });
                };
                roots.push(i);
            }
            ProjectionMask::roots(descr, roots)
        }
    };
    let leaves = (0..descr.num_columns())
        .filter(|&leaf| mask.leaf_included(leaf))
        .collect();
    Ok((mask, leaves))
}

/// The first row group to read and the ordinal of its first row.
fn resume_at(row_counts: &[u64], resume: &Checkpoint, uri: &str) -> Result<(usize, u64)> {
    let done = usize::try_from(resume.position)
        .ok()
        .filter(|&done| done <= row_counts.len())
        .ok_or_else(|| {
            invalid(
                uri,
                format!(
                    "checkpoint says {} row groups are done but the file has {}; \
                     it changed since the checkpoint",
                    resume.position,
                    row_counts.len()
                ),
            )
        })?;
    let skipped: u64 = row_counts[..done].iter().sum();
    if resume.next_row != 0 && resume.next_row != skipped {
        return Err(invalid(
            uri,
            format!(
                "checkpoint says row {} follows row group {done} but the file has {skipped} \
                 rows before it; it changed since the checkpoint",
                resume.next_row
            ),
        ));
    }
    Ok((done, skipped))
}

/// The batches of one file, row group by row group.
struct RowGroupBatches {
    chunks: ObjectChunks,
    metadata: ArrowReaderMetadata,
    projection: ProjectionMask,
    /// Leaf columns selected by `projection`, whose chunks get read-ahead windows.
    leaves: Vec<usize>,
    row_counts: Vec<u64>,
    /// Row groups this item reads (see [`Groups::owned_by`]).
    owned: Vec<bool>,
    batch_size: usize,
    io: IoTuning,
    next_group: usize,
    /// The last row group whose first windows were asked for (current or ahead).
    prefetched_through: usize,
    /// How many row groups to fetch ahead (within `io.look_ahead`): one, plus one each
    /// time the decoder caught up with the fetches ahead.
    groups_ahead: usize,
    /// Ordinal in the file of the next row to come out.
    next_row: u64,
    current: Option<Group>,
}

/// The row group being decoded.
struct Group {
    index: usize,
    reader: ParquetRecordBatchReader,
    /// Rows the metadata promises that have not come out yet.
    remaining: u64,
}

impl BatchSteps for RowGroupBatches {
    fn release(&mut self) {
        self.current = None;
        self.chunks.clear_column_chunks();
    }

    fn next_batch(&mut self) -> Result<Option<ReadBatch>> {
        let group = match &mut self.current {
            Some(group) => group,
            None => {
                // Empty row groups hold no rows to read, and groups of another range
                // are not ours; skipping either needs no I/O.
                while self.next_group < self.row_counts.len()
                    && (self.row_counts[self.next_group] == 0 || !self.owned[self.next_group])
                {
                    self.next_row += self.row_counts[self.next_group];
                    self.next_group += 1;
                }
                if self.next_group >= self.row_counts.len() {
                    return Ok(None);
                }
                let group = self.open_group(self.next_group)?;
                self.current.insert(group)
            }
        };
        let index = group.index;
        let batch = match guarded(|| group.reader.next()) {
            Err(panic) => return Err(invalid(self.chunks.uri(), panic)),
            Ok(None) => {
                return Err(invalid(
                    self.chunks.uri(),
                    format!(
                        "row group {index} ended {} rows short of the {} its metadata declares",
                        group.remaining, self.row_counts[index]
                    ),
                ));
            }
            Ok(Some(Err(e))) => return Err(arrow_error(&self.chunks, e)),
            Ok(Some(Ok(batch))) => batch,
        };
        let rows = batch.num_rows() as u64;
        if rows == 0 || rows > group.remaining {
            return Err(invalid(
                self.chunks.uri(),
                format!(
                    "row group {index} produced a batch of {rows} rows with {} rows left",
                    group.remaining
                ),
            ));
        }
        group.remaining -= rows;
        let first_row = self.next_row;
        self.next_row += rows;
        let resume = if group.remaining == 0 {
            self.current = None;
            self.chunks.release_windows();
            self.next_group = index + 1;
            Some(ResumePoint {
                position: self.next_group as u64,
                next_row: self.next_row,
                lines_done: 0,
            })
        } else {
            None
        };
        Ok(Some(ReadBatch {
            batch,
            first_row,
            ordinals: None,
            failures: Vec::new(),
            bytes_read: self.chunks.take_bytes_read(),
            resume,
        }))
    }
}

impl Drop for RowGroupBatches {
    /// A stream dropped before its end (the worker stopped, or lost its claim) leaves no
    /// fetch running behind it.
    fn drop(&mut self) {
        self.chunks.clear_column_chunks();
    }
}

impl RowGroupBatches {
    /// Row group `index`'s projected column chunks, each with its read-ahead window.
    fn column_chunks(&self, index: usize) -> Result<Vec<ColumnChunk>> {
        let group_meta = self.metadata.metadata().row_group(index);
        let len = parquet::file::reader::Length::len(&self.chunks);
        let ranges = self
            .leaves
            .iter()
            .map(|&leaf| {
                chunk_range(group_meta.column(leaf), len).map_err(|m| invalid(self.chunks.uri(), m))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(self.io.windows(ranges))
    }

    fn open_group(&mut self, index: usize) -> Result<Group> {
        let uri = self.chunks.uri().to_owned();
        if self.chunks.set_column_chunks(self.column_chunks(index)?)? {
            // One more group ahead, since the fetches ahead did not keep up; local files
            // and fast stores seldom get here and mostly hold just the next group.
            self.groups_ahead += 1;
        }
        self.prefetched_through = self.prefetched_through.max(index);
        let (mut groups, mut bytes) = self.chunks.prefetched();
        while groups < self.groups_ahead
            && let Some(next) = (self.prefetched_through + 1..self.row_counts.len())
                .find(|&g| self.row_counts[g] > 0 && self.owned[g])
        {
            let chunks = self.column_chunks(next)?;
            let more: u64 = chunks.iter().map(ColumnChunk::first_window_len).sum();
            if groups > 0 && bytes + more > self.io.look_ahead {
                break;
            }
            self.chunks.prefetch_column_chunks(chunks);
            self.prefetched_through = next;
            groups += 1;
            bytes += more;
        }
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.chunks.clone(),
            self.metadata.clone(),
        )
        .with_row_groups(vec![index])
        .with_projection(self.projection.clone())
        .with_batch_size(self.batch_size);
        let reader = guarded(|| builder.build())
            .map_err(|panic| invalid(&uri, panic))?
            .map_err(|e| parquet_error(&self.chunks, e))?;
        Ok(Group {
            index,
            reader,
            remaining: self.row_counts[index],
        })
    }
}

fn invalid(uri: &str, message: impl std::fmt::Display) -> PfError {
    PfError::invalid_data(uri, FORMAT, message)
}

/// Runs parquet code that may panic on malformed input, so that one corrupt file fails
/// on its own instead of taking the worker thread down.
fn guarded<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(payload.as_ref()))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    let detail = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown cause");
    format!("the Parquet decoder panicked: {detail}")
}

/// A parquet error as a [`PfError`], recovering the source's own error when it caused it.
fn parquet_error(chunks: &ObjectChunks, err: ParquetError) -> PfError {
    chunks.take_failure().unwrap_or_else(|| match err {
        ParquetError::External(inner) => external_error(chunks, inner),
        other => invalid(chunks.uri(), other),
    })
}

/// An arrow error as a [`PfError`]; parquet's arrow reader turns parquet errors into
/// strings, so the source's own error comes from the side channel.
fn arrow_error(chunks: &ObjectChunks, err: ArrowError) -> PfError {
    chunks.take_failure().unwrap_or_else(|| match err {
        ArrowError::ExternalError(inner) => external_error(chunks, inner),
        other => invalid(chunks.uri(), other),
    })
}

fn external_error(
    chunks: &ObjectChunks,
    inner: Box<dyn std::error::Error + Send + Sync>,
) -> PfError {
    let inner = match inner.downcast::<PfError>() {
        Ok(pf) => return *pf,
        Err(inner) => inner,
    };
    match inner.downcast::<std::io::Error>() {
        Ok(io) if io.get_ref().is_some_and(|e| e.is::<PfError>()) => {
            match io.into_inner().map(|e| e.downcast::<PfError>()) {
                Some(Ok(pf)) => *pf,
                Some(Err(e)) => invalid(chunks.uri(), e),
                None => invalid(chunks.uri(), "I/O error"),
            }
        }
        // Our reader ran out of bytes: the file is shorter than its structure says.
        Ok(io) => invalid(chunks.uri(), io),
        Err(inner) => invalid(chunks.uri(), inner),
    }
}

#[cfg(test)]
mod tests;
