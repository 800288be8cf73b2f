//! Parquet's [`ChunkReader`] over an [`ObjectSource`]: every byte comes from a ranged read.
//!
//! Parquet's page reader asks for a `Read` at each page header and then for the page
//! bytes, column by column in turn. Answering each call with its own range request would
//! cost two requests per page on S3, and answering with whole column chunks would hold a
//! whole row group in memory. Instead each projected column chunk of the current row
//! group gets a bounded read-ahead window that only ever moves forward (sized by the
//! caller, in proportion to the chunk), so requests are few, memory is the sum of the
//! windows, and no byte of a column chunk is fetched twice.
//! The file's tail (footer plus whatever precedes it within the prefetch) is fetched
//! once up front and kept, so small files cost a single request.
//!
//! Round trips, not bandwidth, bound a reader on S3 (20–50 ms each). So the first windows
//! of a row group's column chunks, which usually lie side by side, are fetched in as few
//! requests as their gaps allow (runs apart are fetched side by side), and those of the
//! next row groups are fetched on background threads while the current one decodes (as
//! many groups as the caller's look-ahead allows: small groups decode faster than a round
//! trip); each window also fetches its next bytes ahead. A thread waits on the network
//! only when decoding takes less time than a fetch, and memory stays within two windows
//! per column plus the first windows of the groups fetched ahead.

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use bytes::{Buf, Bytes, BytesMut};
use parquet::errors::{ParquetError, Result as ParquetResult};
use parquet::file::reader::{ChunkReader, Length};

use pf_error::PfError;
use pf_traits::ObjectSource;

/// Smallest request made for a `Read` that falls outside the tail and every window, so
/// that byte-at-a-time thrift decoding cannot turn into byte-sized requests.
const MIN_LOOSE_READ: u64 = 8 * 1024;

/// Largest footer accepted. The metadata must be held whole to be decoded, so a corrupt
/// or hostile length must not turn into a multi-gigabyte allocation; real footers,
/// even of very wide files with many row groups, stay far below this.
const MAX_METADATA_LEN: u64 = 64 * 1024 * 1024;

/// Largest gap between two column chunks' first windows that one request still spans:
/// reading up to this many unused bytes costs less than another round trip.
const MAX_COALESCE_GAP: u64 = 1024 * 1024;

/// Most requests that fetch one row group's first windows at once. Each separate run of
/// column chunks costs a round trip, so they go side by side; a wide file's hundreds of
/// runs share this many threads instead of one each.
const MAX_PARALLEL_FETCHES: usize = 16;

/// Most window read-aheads of one reader under way at once. One per column is the point,
/// but a file with hundreds of columns would otherwise hold a thread and a request for
/// each; a window refused one fetches its next bytes when it needs them.
const MAX_READ_AHEADS: usize = 64;

/// Cheaply cloneable handle that parquet's readers hold; all clones share one state.
#[derive(Clone)]
pub(crate) struct ObjectChunks {
    shared: Arc<Shared>,
}

struct Shared {
    source: Arc<dyn ObjectSource>,
    uri: String,
    len: u64,
    /// Bytes fetched from the source and not yet reported in a batch.
    fetched: AtomicU64,
    /// Window read-aheads under way (at most [`MAX_READ_AHEADS`]).
    read_aheads: AtomicUsize,
    buffers: Mutex<Buffers>,
    /// The first source error, kept whole because parquet's arrow reader turns the errors
    /// it returns into strings, which would lose the class (transient vs permanent).
    failure: Mutex<Option<PfError>>,
}

/// A column chunk of the row group to decode, and how many bytes of it to hold ahead of
/// the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnChunk {
    /// Its bytes in the object.
    pub(crate) bytes: Range<u64>,
    /// Its read-ahead window, in bytes (at least 1 is used).
    pub(crate) window: u64,
}

impl ColumnChunk {
    /// How many bytes its first window holds.
    pub(crate) fn first_window_len(&self) -> u64 {
        self.window
            .max(1)
            .min(self.bytes.end.saturating_sub(self.bytes.start))
    }
}

#[derive(Default)]
struct Buffers {
    tail: Span,
    windows: Vec<Window>,
    /// The first windows of the next row groups, in reading order, on their way.
    next: VecDeque<Prefetch>,
}

/// First windows fetched on a background thread for the row group to come.
struct Prefetch {
    /// The column chunks they are for, as [`first_windows`] expects them.
    chunks: Vec<ColumnChunk>,
    /// One span per chunk; an error here is dropped and the bytes fetched again on
    /// demand, so the failure surfaces where the decoder sees it, with its class.
    spans: JoinHandle<Result<Vec<Span>, PfError>>,
}

/// Contiguous bytes of the object starting at `start`.
#[derive(Default, Clone)]
struct Span {
    start: u64,
    bytes: Bytes,
}

impl Span {
    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    fn contains(&self, pos: u64) -> bool {
        pos >= self.start && pos < self.end()
    }

    /// The bytes of `range`, or from `range.start` to the end of the span when `extend`,
    /// if the span covers `range`.
    fn get(&self, range: &Range<u64>, extend: bool) -> Option<Bytes> {
        if range.start < self.start || range.end > self.end() || range.start > range.end {
            return None;
        }
        let from = usize::try_from(range.start - self.start).ok()?;
        let to = if extend {
            self.bytes.len()
        } else {
            usize::try_from(range.end - self.start).ok()?
        };
        Some(self.bytes.slice(from..to))
    }
}

/// The read-ahead buffer of one column chunk.
struct Window {
    chunk: Range<u64>,
    /// Bytes fetched ahead at each refill.
    size: u64,
    span: Span,
    /// The chunk's bytes after `span`, on their way.
    next: Option<Pending>,
}

/// Bytes being fetched on a background thread. A failure here is dropped and the bytes
/// fetched again on demand, so that it surfaces where the decoder sees it, with its class.
struct Pending {
    range: Range<u64>,
    bytes: JoinHandle<Result<Bytes, PfError>>,
}

/// A source failure as parquet sees it; the original [`PfError`] waits in the shared state.
#[derive(Debug)]
struct SourceFailure(String);

impl fmt::Display for SourceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for SourceFailure {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent even if a holder panicked (every update is a
    // single assignment), so poisoning carries no information here.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ObjectChunks {
    /// Reads `uri`, `len` bytes long, through `source`.
    pub(crate) fn new(source: Arc<dyn ObjectSource>, uri: String, len: u64) -> Self {
        ObjectChunks {
            shared: Arc::new(Shared {
                source,
                uri,
                len,
                fetched: AtomicU64::new(0),
                read_aheads: AtomicUsize::new(0),
                buffers: Mutex::new(Buffers::default()),
                failure: Mutex::new(None),
            }),
        }
    }

    /// Fetches the last `n` bytes (at most the whole object), and the rest of the footer
    /// metadata if it is larger, and keeps them, so that the footer and, for small files,
    /// the data are served without further requests.
    pub(crate) fn prefetch_tail(&self, n: u64) -> Result<(), PfError> {
        self.load_tail(n).map_err(|e| {
            self.take_failure()
                .unwrap_or_else(|| PfError::invalid_data(&self.shared.uri, "parquet", e))
        })
    }

    fn load_tail(&self, n: u64) -> ParquetResult<()> {
        let len = self.shared.len;
        let mut start = len - n.min(len);
        let mut bytes = self.shared.fetch(start..len)?;
        // The last 8 bytes are the metadata length and `PAR1`; parquet itself checks them.
        if let Some(footer) = bytes
            .len()
            .checked_sub(8)
            .and_then(|at| bytes.get(at..at + 4))
        {
            let mut le = [0u8; 4];
            le.copy_from_slice(footer);
            let needed = u64::from(u32::from_le_bytes(le)) + 8;
            if needed > MAX_METADATA_LEN && needed <= len {
                return Err(ParquetError::General(format!(
                    "the footer metadata takes {needed} bytes, over the {MAX_METADATA_LEN}-byte \
                     limit"
                )));
            }
            if needed > bytes.len() as u64 && needed <= len {
                let head = self.shared.fetch(len - needed..start)?;
                bytes = join(&[head, bytes]);
                start = len - needed;
            }
        }
        lock(&self.shared.buffers).tail = Span { start, bytes };
        Ok(())
    }

    /// Keeps at most the last `n` bytes of the tail once the metadata is decoded, so an
    /// outsized footer is not held twice (raw and decoded) for the whole file.
    pub(crate) fn trim_tail(&self, n: u64) {
        let mut buffers = lock(&self.shared.buffers);
        let tail = &mut buffers.tail;
        let excess = (tail.bytes.len() as u64).saturating_sub(n);
        if let Ok(excess) = usize::try_from(excess)
            && excess > 0
        {
            // A copy, because a slice would keep the whole allocation alive.
            tail.bytes = Bytes::copy_from_slice(&tail.bytes[excess..]);
            tail.start += excess as u64;
        }
    }

    /// Gives each of `chunks` (the column chunks about to be decoded) its read-ahead
    /// window, dropping the previous row group's, and fills the first windows: from the
    /// background fetch that [`ObjectChunks::prefetch_column_chunks`] started for these
    /// chunks, or else now, in as few requests as the gaps between the chunks allow.
    /// Returns whether that background fetch was still under way: the decoder caught up
    /// with the fetches ahead of it and waits on the network.
    pub(crate) fn set_column_chunks(&self, chunks: Vec<ColumnChunk>) -> Result<bool, PfError> {
        let chunks = sorted_chunks(chunks);
        let (next, tail) = {
            let mut buffers = lock(&self.shared.buffers);
            buffers.windows = Vec::new();
            (buffers.next.pop_front(), buffers.tail.clone())
        };
        let caught_up = next.as_ref().is_some_and(|p| !p.spans.is_finished());
        let prefetched = next
            .filter(|p| p.chunks == chunks)
            .and_then(|p| p.spans.join().ok())
            .and_then(Result::ok);
        let spans = match prefetched {
            Some(spans) => spans,
            None => first_windows(&self.shared, &chunks, &tail)?,
        };
        let mut buffers = lock(&self.shared.buffers);
        buffers.windows = chunks
            .into_iter()
            .zip(spans)
            .map(|(ColumnChunk { bytes, window }, span)| {
                let next = self.shared.read_ahead(&bytes, &span, window, &tail);
                Window {
                    chunk: bytes,
                    size: window,
                    span,
                    next,
                }
            })
            .collect();
        Ok(caught_up)
    }

    /// Starts fetching the first windows of `chunks` (the column chunks of a row group to
    /// come, after those already being fetched) on a background thread; the
    /// [`ObjectChunks::set_column_chunks`] for the same chunks takes them. Without a
    /// thread to spare, the fetch happens then.
    pub(crate) fn prefetch_column_chunks(&self, chunks: Vec<ColumnChunk>) {
        let chunks = sorted_chunks(chunks);
        let shared = Arc::clone(&self.shared);
        let tail = lock(&self.shared.buffers).tail.clone();
        let wanted = chunks.clone();
        let spawned = std::thread::Builder::new()
            .name("pf-parquet-prefetch".into())
            .spawn(move || first_windows(&shared, &wanted, &tail));
        if let Ok(spans) = spawned {
            lock(&self.shared.buffers)
                .next
                .push_back(Prefetch { chunks, spans });
        }
    }

    /// Row groups to come whose first windows are being fetched, or were fetched, and
    /// those windows' bytes.
    pub(crate) fn prefetched(&self) -> (usize, u64) {
        let buffers = lock(&self.shared.buffers);
        let bytes = buffers
            .next
            .iter()
            .flat_map(|p| &p.chunks)
            .map(ColumnChunk::first_window_len)
            .sum();
        (buffers.next.len(), bytes)
    }

    /// Releases the windows once a row group is done (after any read-ahead still under
    /// way for them); the fetches for the next row groups go on.
    pub(crate) fn release_windows(&self) {
        let windows = std::mem::take(&mut lock(&self.shared.buffers).windows);
        finish_fetches(windows, VecDeque::new());
    }

    /// Releases the windows, and the fetches for the next row groups, once reading stops.
    pub(crate) fn clear_column_chunks(&self) {
        let (windows, next) = {
            let mut buffers = lock(&self.shared.buffers);
            (
                std::mem::take(&mut buffers.windows),
                std::mem::take(&mut buffers.next),
            )
        };
        finish_fetches(windows, next);
    }

    /// Bytes fetched since the previous call.
    pub(crate) fn take_bytes_read(&self) -> u64 {
        self.shared.fetched.swap(0, Ordering::Relaxed)
    }

    /// The source error behind the latest parquet failure, if a source error caused it.
    pub(crate) fn take_failure(&self) -> Option<PfError> {
        lock(&self.shared.failure).take()
    }

    /// The object being read.
    pub(crate) fn uri(&self) -> &str {
        &self.shared.uri
    }
}

impl Shared {
    /// Exactly `range` from the source, counted; a failure is kept for the caller to
    /// report (see [`Shared::fail`]).
    fn fetch(&self, range: Range<u64>) -> ParquetResult<Bytes> {
        self.fetch_quietly(range).map_err(|e| self.fail(e))
    }

    /// Exactly `range` from the source, counted.
    fn fetch_quietly(&self, range: Range<u64>) -> Result<Bytes, PfError> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        let want = range.end - range.start;
        let bytes = self.source.read_range(&self.uri, range.clone())?;
        self.fetched
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if bytes.len() as u64 != want {
            // The object is shorter than its listed size: it changed under us.
            return Err(PfError::Io {
                location: format!("{} bytes {range:?}", self.uri),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the source returned {} of {want} bytes", bytes.len()),
                ),
            });
        }
        Ok(bytes)
    }

    fn fail(&self, err: PfError) -> ParquetError {
        let message = err.to_string();
        let mut slot = lock(&self.failure);
        if slot.is_none() {
            *slot = Some(err);
        }
        ParquetError::External(Box::new(SourceFailure(message)))
    }

    /// Exactly `range`, taking the part that lies in the tail from the tail.
    fn fetch_before_tail(&self, range: Range<u64>, tail: &Span) -> ParquetResult<Bytes> {
        self.fetch_before_tail_quietly(range, tail)
            .map_err(|e| self.fail(e))
    }

    /// [`Shared::fetch_before_tail`] without keeping the failure.
    fn fetch_before_tail_quietly(&self, range: Range<u64>, tail: &Span) -> Result<Bytes, PfError> {
        if tail.bytes.is_empty() || range.end <= tail.start {
            return self.fetch_quietly(range);
        }
        let split = range.start.max(tail.start);
        let head = self.fetch_quietly(range.start..split)?;
        let rest = tail
            .get(&(split..range.end), false)
            .ok_or_else(|| PfError::invalid_data(&self.uri, "parquet", "tail buffer misses"))?;
        Ok(join(&[head, rest]))
    }

    /// Starts fetching the `size` bytes of `chunk` that follow `span`, if any,
    /// on a background thread, so that the window's next refill does not wait a round
    /// trip. Without a thread to spare, or with [`MAX_READ_AHEADS`] under way, the refill
    /// fetches them itself.
    fn read_ahead(
        self: &Arc<Self>,
        chunk: &Range<u64>,
        span: &Span,
        size: u64,
        tail: &Span,
    ) -> Option<Pending> {
        let start = span.end().max(chunk.start);
        if start >= chunk.end || tail.contains(start) {
            return None;
        }
        let slot = ReadAheadSlot::take(self)?;
        let range = start..start.saturating_add(size).min(chunk.end);
        let (wanted, tail) = (range.clone(), tail.clone());
        // The slot goes with the fetch and is given back when the fetch ends, by a
        // panic too, or here when the thread cannot start (the closure is dropped).
        std::thread::Builder::new()
            .name("pf-parquet-prefetch".into())
            .spawn(move || slot.0.fetch_before_tail_quietly(wanted, &tail))
            .ok()
            .map(|bytes| Pending { range, bytes })
    }

    /// The bytes of `range` (which lies within the object), or from `range.start` to
    /// wherever the buffer that serves it ends when `extend`.
    fn serve(self: &Arc<Self>, range: Range<u64>, extend: bool) -> ParquetResult<Bytes> {
        let mut buffers = lock(&self.buffers);
        let Buffers { tail, windows, .. } = &mut *buffers;
        if let Some(bytes) = tail.get(&range, extend) {
            return Ok(bytes);
        }
        let window = windows.iter_mut().find(|w| w.chunk.contains(&range.start));
        if let Some(window) = window
            && (extend || range.end <= window.chunk.end)
        {
            // A sequential reader only needs its first byte from here; the rest of the
            // chunk follows on later calls.
            let range = range.start..range.end.min(window.chunk.end);
            if let Some(bytes) = window.span.get(&range, extend) {
                return Ok(bytes);
            }
            let ahead = range
                .start
                .saturating_add(window.size)
                .min(window.chunk.end)
                .max(range.end);
            // Keep the unread part of the window instead of fetching it again.
            let (kept, from) = if window.span.contains(range.start) {
                let kept_from = usize::try_from(range.start - window.span.start)
                    .map_err(|e| ParquetError::General(e.to_string()))?;
                (window.span.bytes.slice(kept_from..), window.span.end())
            } else {
                (Bytes::new(), range.start)
            };
            let mut pieces = vec![kept];
            let mut at = from;
            if let Some(pending) = window.next.take()
                && pending.range.start == from
                && let Ok(Ok(bytes)) = pending.bytes.join()
            {
                at = pending.range.end;
                pieces.push(bytes);
            }
            if at < ahead {
                pieces.push(self.fetch_before_tail(at..ahead, tail)?);
            }
            window.span = Span {
                start: range.start,
                bytes: join(&pieces),
            };
            // A page larger than the window will likely be followed by another: read
            // ahead as much, so that it does not wait a round trip either.
            let size = window.size.max(range.end - range.start);
            window.next = self.read_ahead(&window.chunk, &window.span, size, tail);
            return window
                .span
                .get(&range, extend)
                .ok_or_else(|| ParquetError::General("read-ahead window misses".into()));
        }
        // Outside every column chunk we know of: parquet reading on its own. Fetch what
        // was asked for, with a floor for sequential readers.
        let end = if extend {
            range
                .start
                .saturating_add(MIN_LOOSE_READ)
                .min(self.len)
                .max(range.end)
        } else {
            range.end
        };
        self.fetch_before_tail(range.start..end, tail)
    }
}

/// Waits for the fetches still under way for `windows` and `next`, whose bytes are no
/// longer wanted: a fetch left behind would outlive its reader, still holding a request
/// to the store and, until it ends, the reader's buffers. (Once reading stops, at most
/// one round trip: the fetches run side by side.)
fn finish_fetches(windows: Vec<Window>, next: VecDeque<Prefetch>) {
    for pending in windows.into_iter().filter_map(|w| w.next) {
        let _ = pending.bytes.join();
    }
    for prefetch in next {
        let _ = prefetch.spans.join();
    }
}

/// One of a reader's [`MAX_READ_AHEADS`] read-ahead slots, given back when dropped.
struct ReadAheadSlot(Arc<Shared>);

impl ReadAheadSlot {
    /// A slot of `shared`'s, if one is free.
    fn take(shared: &Arc<Shared>) -> Option<ReadAheadSlot> {
        let under_way = shared.read_aheads.fetch_add(1, Ordering::SeqCst);
        // Counted from here on: a refused slot is given back as it drops.
        let slot = ReadAheadSlot(Arc::clone(shared));
        (under_way < MAX_READ_AHEADS).then_some(slot)
    }
}

impl Drop for ReadAheadSlot {
    fn drop(&mut self) {
        self.0.read_aheads.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `chunks` in file order, without empty ones and with windows of at least one byte: the
/// order [`first_windows`] and the windows keep.
fn sorted_chunks(mut chunks: Vec<ColumnChunk>) -> Vec<ColumnChunk> {
    chunks.retain(|c| c.bytes.start < c.bytes.end);
    for c in &mut chunks {
        c.window = c.window.max(1);
    }
    chunks.sort_by_key(|c| c.bytes.start);
    chunks
}

/// The first window of each of `chunks` (sorted, see [`sorted_chunks`]), one span per
/// chunk, fetched in one request per run of chunks that fit their windows and lie at
/// most [`MAX_COALESCE_GAP`] apart, the runs side by side, up to
/// [`MAX_PARALLEL_FETCHES`] at once (each waits a round trip, so one after the other
/// would cost as many round trips as runs); bytes in `tail` come from it.
fn first_windows(
    shared: &Shared,
    chunks: &[ColumnChunk],
    tail: &Span,
) -> Result<Vec<Span>, PfError> {
    let wanted: Vec<Range<u64>> = chunks
        .iter()
        .map(|c| c.bytes.start..c.bytes.start + c.first_window_len())
        .collect();
    // Runs of `wanted`, as index ranges.
    let mut runs = Vec::new();
    let mut run_start = 0;
    while run_start < wanted.len() {
        let mut run_end = run_start + 1;
        let mut end = wanted[run_start].end;
        // A gap is spanned only when it holds no byte of a wanted chunk (the chunk before
        // it fits its window), so that no byte is fetched twice.
        while run_end < wanted.len()
            && end == chunks[run_end - 1].bytes.end
            && wanted[run_end].start >= end
            && wanted[run_end].start - end <= MAX_COALESCE_GAP
        {
            end = wanted[run_end].end;
            run_end += 1;
        }
        runs.push(run_start..run_end);
        run_start = run_end;
    }
    let fetch_run = |run: &Range<usize>| -> Result<Span, PfError> {
        let range = wanted[run.start].start..wanted[run.end - 1].end;
        Ok(Span {
            start: range.start,
            bytes: shared.fetch_before_tail_quietly(range, tail)?,
        })
    };
    // Run i goes to lane i mod `lanes`; lane 0 is this thread.
    let lanes = runs.len().clamp(1, MAX_PARALLEL_FETCHES);
    let lane = |k: usize| -> Vec<(usize, Result<Span, PfError>)> {
        (k..runs.len())
            .step_by(lanes)
            .map(|i| (i, fetch_run(&runs[i])))
            .collect()
    };
    let lane = &lane;
    let mut fetched: Vec<Option<Result<Span, PfError>>> = runs.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let others: Vec<_> = (1..lanes)
            .map(|k| {
                std::thread::Builder::new()
                    .name("pf-parquet-prefetch".into())
                    .spawn_scoped(scope, move || lane(k))
            })
            .collect();
        let done = others
            .into_iter()
            .filter_map(|other| other.ok()?.join().ok())
            .flatten();
        for (i, span) in lane(0).into_iter().chain(done) {
            fetched[i] = Some(span);
        }
    });
    let mut spans = Vec::with_capacity(wanted.len());
    for (run, span) in runs.iter().zip(fetched) {
        // A run whose thread could not be spawned, or died, is fetched here.
        let span = span.unwrap_or_else(|| fetch_run(run))?;
        for range in &wanted[run.clone()] {
            let bytes = span.get(range, false).ok_or_else(|| {
                PfError::invalid_data(&shared.uri, "parquet", "coalesced read misses")
            })?;
            spans.push(Span {
                start: range.start,
                bytes,
            });
        }
    }
    Ok(spans)
}

/// The pieces as one buffer, copying only when there is more than one.
fn join(pieces: &[Bytes]) -> Bytes {
    let mut non_empty = pieces.iter().filter(|p| !p.is_empty());
    match (non_empty.next(), non_empty.next()) {
        (None, _) => Bytes::new(),
        (Some(only), None) => only.clone(),
        _ => {
            let total = pieces.iter().map(Bytes::len).sum();
            let mut joined = BytesMut::with_capacity(total);
            for piece in pieces {
                joined.extend_from_slice(piece);
            }
            joined.freeze()
        }
    }
}

impl Length for ObjectChunks {
    fn len(&self) -> u64 {
        self.shared.len
    }
}

impl ChunkReader for ObjectChunks {
    type T = RangeRead;

    fn get_read(&self, start: u64) -> ParquetResult<RangeRead> {
        if start > self.shared.len {
            return Err(ParquetError::EOF(format!(
                "read at {start} is beyond the end of the {}-byte object",
                self.shared.len
            )));
        }
        Ok(RangeRead {
            shared: Arc::clone(&self.shared),
            pos: start,
            buf: Bytes::new(),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> ParquetResult<Bytes> {
        let end = start
            .checked_add(length as u64)
            .filter(|&end| end <= self.shared.len)
            .ok_or_else(|| {
                ParquetError::EOF(format!(
                    "{length} bytes at {start} reach beyond the end of the {}-byte object",
                    self.shared.len
                ))
            })?;
        self.shared.serve(start..end, false)
    }
}

/// A sequential reader that pulls bytes through the tail, a window or a ranged read.
pub(crate) struct RangeRead {
    shared: Arc<Shared>,
    pos: u64,
    /// Bytes from `pos` onwards already in hand.
    buf: Bytes,
}

impl Read for RangeRead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.buf.is_empty() {
            if self.pos >= self.shared.len {
                return Ok(0);
            }
            let end = self
                .pos
                .saturating_add(out.len() as u64)
                .min(self.shared.len);
            self.buf = self
                .shared
                .serve(self.pos..end, true)
                .map_err(io::Error::other)?;
            if self.buf.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.advance(n);
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pf_traits::ObjectListing;
    use pf_types::ObjectInfo;

    use super::*;

    /// Bytes `i mod 251` whose reads take 10 ms each and count how many run at once.
    #[derive(Default)]
    struct SlowBytes {
        in_flight: AtomicUsize,
        most: AtomicUsize,
        reads: AtomicUsize,
    }

    impl ObjectSource for SlowBytes {
        fn stat(&self, uri: &str) -> pf_error::Result<ObjectInfo> {
            Err(PfError::invalid_data(uri, "test", "not a listing source"))
        }

        fn read_range(&self, _uri: &str, range: Range<u64>) -> pf_error::Result<Bytes> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(range.map(|i| (i % 251) as u8).collect::<Vec<u8>>().into())
        }

        fn read_from(&self, uri: &str, _offset: u64) -> pf_error::Result<Box<dyn Read + Send>> {
            Err(PfError::invalid_data(uri, "test", "not a streaming source"))
        }

        fn list(&self, root: &str, _recursive: bool) -> pf_error::Result<ObjectListing<'_>> {
            Err(PfError::invalid_data(root, "test", "not a listing source"))
        }
    }

    #[test]
    fn the_runs_of_a_wide_row_group_go_side_by_side_within_the_cap() {
        let source = Arc::new(SlowBytes::default());
        let object = ObjectChunks::new(source.clone(), "test://wide".into(), 1 << 20);
        // 100 column chunks of 1,000 bytes, 10 bytes apart, each larger than its 100-byte
        // window: no two can share a request, so 100 runs.
        let chunks: Vec<ColumnChunk> = (0..100u64)
            .map(|i| ColumnChunk {
                bytes: i * 1010..i * 1010 + 1000,
                window: 100,
            })
            .collect();
        let spans = first_windows(
            &object.shared,
            &sorted_chunks(chunks.clone()),
            &Span::default(),
        )
        .unwrap();
        assert_eq!(spans.len(), 100);
        for (span, chunk) in spans.iter().zip(&chunks) {
            assert_eq!(span.start, chunk.bytes.start);
            assert_eq!(span.bytes.len(), 100);
            assert_eq!(
                span.bytes[0],
                (chunk.bytes.start % 251) as u8,
                "its own bytes"
            );
        }
        assert_eq!(source.reads.load(Ordering::SeqCst), 100);
        let most = source.most.load(Ordering::SeqCst);
        assert!(
            most > 1 && most <= MAX_PARALLEL_FETCHES,
            "{most} requests at once"
        );
    }

    #[test]
    fn the_window_read_aheads_of_a_wide_row_group_stay_within_the_cap() {
        let source = Arc::new(SlowBytes::default());
        let object = ObjectChunks::new(source.clone(), "test://wide".into(), 100 * 1010);
        // 100 column chunks with 100-byte windows: each window would read ahead at once.
        let chunks: Vec<ColumnChunk> = (0..100u64)
            .map(|i| ColumnChunk {
                bytes: i * 1010..i * 1010 + 1000,
                window: 100,
            })
            .collect();
        object.set_column_chunks(chunks).unwrap();
        // Every chunk read whole through its window, as the decoder would; windows refused
        // a read-ahead fetch on demand.
        for start in (0..100u64).map(|i| i * 1010) {
            let bytes = object.get_bytes(start, 1000).unwrap();
            let expected: Vec<u8> = (start..start + 1000).map(|i| (i % 251) as u8).collect();
            assert_eq!(bytes, expected, "chunk at {start}");
        }
        object.clear_column_chunks();
        // The read-aheads, and at most one demand read beside them.
        let most = source.most.load(Ordering::SeqCst);
        assert!(most <= MAX_READ_AHEADS + 1, "{most} requests at once");
        assert_eq!(object.shared.read_aheads.load(Ordering::SeqCst), 0);
    }
}
