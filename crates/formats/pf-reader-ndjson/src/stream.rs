//! The per-file state machine: chunked reading, line splitting, batching, positions.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::{Schema, SchemaRef};
use memchr::memchr;

use pf_error::{PfError, Result};
use pf_traits::{BatchSteps, ObjectSource, ReadBatch, ResumePoint};
use pf_types::{Checkpoint, Compression, WorkItem};

use crate::NdjsonReaderOptions;
use crate::decode::{LineDecoder, MAX_RECORD_TEXT, Pending, Span};
use crate::infer::{Inferred, infer};
use crate::input::Input;

/// Text kept from a line that is too long (the rest is never buffered).
const OVERLONG_RECORD_TEXT: usize = 1 << 10;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// What the next lines in the buffer hold.
enum Scan {
    /// No complete line yet.
    Nothing,
    /// Lines up to `next` (their non-blank ones in `spans`), ending at line `line_no`.
    Lines { next: usize, line_no: u64 },
    /// The first line is longer than allowed; its content is `buf[start..end]`.
    Overlong {
        start: usize,
        end: usize,
        next: usize,
    },
}

/// Where a read enters the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// At its first byte.
    Start,
    /// At a checkpoint, which must follow a line end.
    Resume(u64),
    /// At the first byte of a range: the line that byte is in belongs to the range
    /// only when the byte before it ends a line.
    RangeStart(u64),
}

impl Entry {
    /// The decompressed offset reading enters at.
    fn position(self) -> u64 {
        match self {
            Entry::Start => 0,
            Entry::Resume(p) | Entry::RangeStart(p) => p,
        }
    }
}

/// Streams one NDJSON file, or one range of it, as [`ReadBatch`]es.
pub(crate) struct NdjsonStream {
    uri: String,
    input: Input,
    batch_size: usize,
    max_batch_bytes: usize,
    infer_rows: usize,
    max_line_bytes: usize,
    /// Set once the schema is known (given, or inferred from the first object lines).
    decoder: Option<LineDecoder>,

    /// Chunk buffer; `buf[start..end]` is read but not yet consumed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Inside a line that was already reported as too long: drop bytes up to its end.
    skipping: bool,
    spans: Vec<Span>,

    /// Decompressed offset of `buf[start]`.
    consumed: u64,
    /// Lines read start at offsets below this: the end of the item's range, if any.
    limit: u64,
    /// Lines consumed (blank and failed ones included).
    line_no: u64,
    /// Whether `line_no` counts from the file's first line: a range that starts
    /// later does not know how many lines come before it.
    lines_known: bool,
    /// Records read (decoded or failed) before the next batch.
    next_row: u64,
    /// Stored bytes already attributed to an emitted batch.
    reported_bytes: u64,
    pending: Pending,

    /// Where reading enters the file, still to be reached before the first read.
    entry: Entry,
    /// Decompressed bytes to discard before the byte preceding the entry point.
    discard: u64,
    started: bool,
    /// The first fill must check for a byte-order mark (only at the start of a file).
    check_bom: bool,
    /// Resuming after a byte that was not a line end: only valid at the very end.
    resumed_mid_line: bool,
}

impl NdjsonStream {
    pub(crate) fn open(
        source: &dyn ObjectSource,
        item: &WorkItem,
        resume: &Checkpoint,
        options: &NdjsonReaderOptions,
        chunk_bytes: usize,
    ) -> Result<Self> {
        let uri = item.uri.clone();
        if item.range.is_some() && item.compression != Compression::None {
            return Err(PfError::InvalidWorkItem {
                message: format!(
                    "`{}` is {}-compressed NDJSON, which is read whole; a range of it \
                     cannot be read on its own",
                    uri,
                    item.compression.as_str()
                ),
            });
        }
        let decoder = match &options.schema {
            Some(schema) => Some(
                LineDecoder::new(schema.clone(), false, options.batch_size).map_err(|e| {
                    PfError::Schema {
                        location: uri.clone(),
                        message: format!("cannot decode NDJSON into the configured schema: {e}"),
                    }
                })?,
            ),
            // A resumed read decodes with the schema the first attempt inferred from the
            // file's head, not one inferred from the resumed head, and a range with the
            // schema a read of the whole file infers: the same lines must decode to the
            // same records (and fail the same way) under every attempt and every cut.
            None if resume.position > 0 || item.range.is_some() => {
                let before = item.range.map_or(resume.position, |r| r.end);
                Self::head_schema(source, item, before, options, chunk_bytes)?
                    .map(|schema| LineDecoder::new(schema, true, options.batch_size))
                    .transpose()
                    .map_err(|e| PfError::Schema {
                        location: uri.clone(),
                        message: format!("cannot decode NDJSON into its head's schema: {e}"),
                    })?
            }
            None => None,
        };
        let entry = match (resume.position, item.range) {
            (0, Some(r)) if r.start > 0 => Entry::RangeStart(r.start),
            (0, _) => Entry::Start,
            (p, _) => Entry::Resume(p),
        };
        let position = entry.position();
        // Reading starts at the byte before the entry point: after a checkpoint it must
        // end a line (a checkpoint from a different version of the file would otherwise
        // turn into silently garbled records); at a range's start it tells whether the
        // first line is the range's own.
        let (offset, discard) = match (position, item.compression) {
            (0, _) => (0, 0),
            (p, Compression::None) => (p - 1, 0),
            (p, _) => (0, p - 1),
        };
        let input = Input::open(source, &uri, item.compression, offset)?;
        Ok(NdjsonStream {
            uri,
            input,
            batch_size: options.batch_size,
            max_batch_bytes: options.max_batch_bytes,
            infer_rows: options.infer_rows,
            max_line_bytes: options.max_line_bytes,
            decoder,
            // Grows on demand (up to the longest accepted line) when a line outgrows it.
            buf: vec![0; chunk_bytes.max(1)],
            start: 0,
            end: 0,
            eof: false,
            skipping: false,
            spans: Vec::new(),
            consumed: position,
            limit: item.range.map_or(u64::MAX, |r| r.end),
            line_no: resume.lines_done,
            lines_known: item.range.is_none_or(|r| r.start == 0),
            next_row: resume.next_row,
            reported_bytes: 0,
            pending: Pending::default(),
            entry,
            discard,
            started: false,
            check_bom: position == 0,
            resumed_mid_line: false,
        })
    }

    fn advance(&mut self) -> Result<Option<ReadBatch>> {
        if !self.started {
            self.begin()?;
            self.started = true;
        }
        loop {
            if !self.skipping && self.pending.is_full(self.batch_size, self.max_batch_bytes) {
                return self.emit().map(Some);
            }
            if self.step() {
                continue;
            }
            if self.eof {
                let unreported = self.input.compressed_bytes() > self.reported_bytes;
                if self.pending.is_empty() && !unreported {
                    return Ok(None);
                }
                return self.emit().map(Some);
            }
            self.fill()?;
        }
    }

    /// Reaches the entry point and reads the byte before it.
    fn begin(&mut self) -> Result<()> {
        if self.entry == Entry::Start {
            return Ok(());
        }
        let mut remaining = self.discard;
        while remaining > 0 {
            let want = usize::try_from(remaining).map_or(self.buf.len(), |r| r.min(self.buf.len()));
            let n = self.input.read(&mut self.buf[..want])?;
            if n == 0 {
                return Err(self.beyond_end());
            }
            remaining -= n as u64;
        }
        let mut before = [0u8; 1];
        if self.input.read(&mut before)? == 0 {
            return Err(self.beyond_end());
        }
        match self.entry {
            Entry::Resume(_) => self.resumed_mid_line = before[0] != b'\n',
            // The first bytes finish a line that the range before this one owns.
            Entry::RangeStart(_) => self.skipping = before[0] != b'\n',
            Entry::Start => {}
        }
        Ok(())
    }

    fn beyond_end(&self) -> PfError {
        PfError::invalid_data(
            self.uri.clone(),
            "ndjson",
            format!(
                "position {} is beyond the end of the data; \
                 the file changed since it was listed or checkpointed",
                self.entry.position()
            ),
        )
    }

    /// The schema a read from the start infers: the file's head is read again (up to
    /// `before`, the resume position) until inference settles. `None` when it has not
    /// settled by then: the first attempt inferred from lines at or after `before`, as
    /// the resumed read will.
    fn head_schema(
        source: &dyn ObjectSource,
        item: &WorkItem,
        before: u64,
        options: &NdjsonReaderOptions,
        chunk_bytes: usize,
    ) -> Result<Option<SchemaRef>> {
        let whole = WorkItem {
            range: None,
            ..item.clone()
        };
        let mut head = Self::open(source, &whole, &Checkpoint::default(), options, chunk_bytes)?;
        while head.decoder.is_none() && head.consumed < before {
            if head.advance()?.is_none() {
                break;
            }
        }
        Ok(head.decoder.map(|d| d.schema().clone()))
    }

    /// Consumes some complete lines; false when the buffer holds none.
    fn step(&mut self) -> bool {
        if self.start == self.end {
            return false;
        }
        if self.decoder.is_none()
            && let Some(progress) = self.infer_schema()
        {
            return progress;
        }
        let cap = self.batch_size.saturating_sub(self.pending.records).max(1);
        match self.scan(cap, self.batch_byte_room()) {
            Scan::Nothing => false,
            Scan::Overlong { start, end, next } => {
                self.fail_overlong(start, end, next);
                true
            }
            Scan::Lines { next, line_no } => {
                if let Some(decoder) = self.decoder.as_mut() {
                    decoder.decode(&self.buf, &self.spans, &self.uri, &mut self.pending);
                    self.pending.line_bytes +=
                        self.spans.iter().map(|s| s.end - s.start).sum::<usize>();
                }
                self.commit(next, line_no);
                true
            }
        }
    }

    /// Tries to settle the schema from the buffered head. `Some(progress)` when lines
    /// were consumed (or none are available) without a schema; `None` once the schema
    /// is known and decoding can go on.
    fn infer_schema(&mut self) -> Option<bool> {
        match self.scan(self.infer_rows, usize::MAX) {
            Scan::Nothing => Some(false),
            Scan::Overlong { start, end, next } => {
                self.fail_overlong(start, end, next);
                Some(true)
            }
            Scan::Lines { next, line_no } => {
                if self.spans.is_empty() {
                    self.commit(next, line_no);
                    return Some(true);
                }
                let lines = self.spans.iter().map(|s| &self.buf[s.start..s.end]);
                match infer(lines) {
                    Inferred::Schema(schema) => {
                        match LineDecoder::new(Arc::new(schema), true, self.batch_size) {
                            Ok(decoder) => {
                                self.decoder = Some(decoder);
                                None
                            }
                            // Inference only yields types arrow-json decodes; should that ever
                            // change, the head lines fail rather than the file.
                            Err(e) => {
                                self.fail_scanned(next, line_no, |_| e.to_string());
                                Some(true)
                            }
                        }
                    }
                    Inferred::NoObject(reasons) => {
                        // Only the lines inference looked at (when the batch has room for
                        // them, so batches stay bounded): a line after them may be an
                        // object, and is looked at again with the next head.
                        let room = self.batch_size.saturating_sub(self.pending.records).max(1);
                        let cap = room.min(reasons.len());
                        match self.scan(cap, self.batch_byte_room()) {
                            Scan::Lines { next, line_no } => {
                                let mut reasons = reasons.into_iter();
                                self.fail_scanned(next, line_no, |_| {
                                    reasons.next().unwrap_or_default()
                                });
                            }
                            // The same bytes scanned to lines a moment ago.
                            Scan::Nothing | Scan::Overlong { .. } => {}
                        }
                        Some(true)
                    }
                }
            }
        }
    }

    /// Reports every scanned line as failed and consumes them.
    fn fail_scanned(&mut self, next: usize, line_no: u64, mut reason: impl FnMut(usize) -> String) {
        for (i, span) in self.spans.iter().enumerate() {
            self.pending.fail(
                &self.uri,
                *span,
                reason(i),
                &self.buf[span.start..span.end],
                MAX_RECORD_TEXT,
            );
        }
        self.commit(next, line_no);
    }

    /// Splits complete lines from `buf[start..]` into `spans`, up to `cap` non-blank
    /// ones, stopping before a line that is too long.
    fn scan(&mut self, cap: usize, byte_budget: usize) -> Scan {
        self.spans.clear();
        let mut pos = self.start;
        let mut line_no = self.line_no;
        let mut bytes = 0;
        while self.spans.len() < cap && bytes < byte_budget && pos < self.end {
            let offset = self.consumed + (pos - self.start) as u64;
            if offset >= self.limit {
                // The next range's lines: this read is done.
                self.eof = true;
                break;
            }
            let (line_end, next) = match memchr(b'\n', &self.buf[pos..self.end]) {
                Some(i) => (pos + i, pos + i + 1),
                None if self.eof => (self.end, self.end),
                None => break,
            };
            let content_end = if line_end > pos && self.buf[line_end - 1] == b'\r' {
                line_end - 1
            } else {
                line_end
            };
            if content_end - pos > self.max_line_bytes {
                if pos == self.start {
                    return Scan::Overlong {
                        start: pos,
                        end: content_end,
                        next,
                    };
                }
                break;
            }
            line_no += 1;
            if !is_blank(&self.buf[pos..content_end]) {
                self.spans.push(Span {
                    start: pos,
                    end: content_end,
                    line: self.lines_known.then_some(line_no),
                    offset,
                });
                bytes += content_end - pos;
            }
            pos = next;
        }
        if pos == self.start {
            Scan::Nothing
        } else {
            Scan::Lines { next: pos, line_no }
        }
    }

    /// Line bytes the current batch may still take (at least one line's worth).
    fn batch_byte_room(&self) -> usize {
        self.max_batch_bytes
            .saturating_sub(self.pending.line_bytes)
            .max(1)
    }

    fn commit(&mut self, next: usize, line_no: u64) {
        self.consumed += (next - self.start) as u64;
        self.start = next;
        self.line_no = line_no;
    }

    /// A complete over-long line in the buffer: report and consume it.
    fn fail_overlong(&mut self, start: usize, end: usize, next: usize) {
        let line_no = self.line_no + 1;
        self.report_overlong(line_no, start, end);
        self.commit(next, line_no);
    }

    /// Reports the over-long line `line_no` whose first bytes are `buf[start..end]`.
    fn report_overlong(&mut self, line_no: u64, start: usize, end: usize) {
        let span = Span {
            start,
            end,
            line: self.lines_known.then_some(line_no),
            offset: self.consumed + (start - self.start) as u64,
        };
        let which = match span.line {
            Some(n) => format!("line {n}"),
            None => format!("the line at byte {}", span.offset),
        };
        // One byte past the kept text lets the cut step back before a split character.
        let text_end = end.min(start + OVERLONG_RECORD_TEXT + 1);
        self.pending.fail(
            &self.uri,
            span,
            format!(
                "{which} exceeds max_line_bytes ({} bytes)",
                self.max_line_bytes
            ),
            &self.buf[start..text_end],
            OVERLONG_RECORD_TEXT,
        );
    }

    /// Makes room and reads until the buffer is full or the data ends. Called only
    /// when `buf[start..end]` holds no complete line.
    fn fill(&mut self) -> Result<()> {
        if self.consumed >= self.limit {
            // Only the next range's lines are left.
            self.eof = true;
            self.skipping = false;
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // Room for the longest accepted line with its CRLF, and for the text kept
            // from a line that turns out too long.
            let limit = self
                .max_line_bytes
                .saturating_add(2)
                .max(OVERLONG_RECORD_TEXT + 1);
            if self.buf.len() < limit {
                // A line longer than a chunk but within the limit: grow to hold it.
                let grown = self
                    .buf
                    .len()
                    .saturating_mul(2)
                    .clamp(self.buf.len() + 1, limit);
                self.buf.resize(grown, 0);
            } else {
                // A full buffer without a line end holds more than max_line_bytes of one
                // line: report it now and drop the rest as it arrives.
                let line_no = self.line_no + 1;
                self.report_overlong(line_no, 0, self.end);
                self.line_no = line_no;
                self.consumed += self.end as u64;
                self.end = 0;
                self.skipping = true;
            }
        }
        while self.end < self.buf.len() {
            let n = self.input.read(&mut self.buf[self.end..])?;
            if n == 0 {
                self.eof = true;
                self.skipping = false;
                break;
            }
            self.end += n;
            if self.skipping {
                self.skip_rest_of_line();
                if self.skipping && self.consumed >= self.limit {
                    // A line that runs past the range's end: nothing after it is ours.
                    self.eof = true;
                    self.skipping = false;
                    break;
                }
            }
        }
        if self.check_bom && (self.end - self.start >= UTF8_BOM.len() || self.eof) {
            self.check_bom = false;
            if self.buf[self.start..self.end].starts_with(UTF8_BOM) {
                self.commit(self.start + UTF8_BOM.len(), self.line_no);
            }
        }
        if self.resumed_mid_line {
            self.resumed_mid_line = false;
            if self.start < self.end {
                return Err(PfError::invalid_data(
                    self.uri.clone(),
                    "ndjson",
                    format!(
                        "checkpoint position {} does not follow a line end; \
                         the file changed since the checkpoint was taken",
                        self.entry.position()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn skip_rest_of_line(&mut self) {
        match memchr(b'\n', &self.buf[self.start..self.end]) {
            Some(i) => {
                self.consumed += (i + 1) as u64;
                self.start += i + 1;
                self.skipping = false;
            }
            None => {
                self.consumed += (self.end - self.start) as u64;
                self.start = 0;
                self.end = 0;
            }
        }
    }

    fn emit(&mut self) -> Result<ReadBatch> {
        let pending = self.pending.take();
        // One allocation per batch for its ordinals, not a doubling series of them.
        self.pending.ordinals.reserve(self.batch_size);
        let schema: SchemaRef = match &self.decoder {
            Some(decoder) => decoder.schema().clone(),
            None => Arc::new(Schema::empty()),
        };
        let batch = match pending.batches.as_slice() {
            [] => RecordBatch::new_empty(schema),
            [one] => one.clone(),
            many => concat_batches(&schema, many).map_err(|e| PfError::Schema {
                location: self.uri.clone(),
                message: format!("cannot assemble a batch: {e}"),
            })?,
        };
        let first_row = pending.ordinals.first().copied().unwrap_or(self.consumed);
        self.next_row += pending.records as u64;
        let compressed = self.input.compressed_bytes();
        let bytes_read = compressed - self.reported_bytes;
        self.reported_bytes = compressed;
        Ok(ReadBatch {
            batch,
            first_row,
            ordinals: Some(pending.ordinals),
            failures: pending.failures,
            bytes_read,
            resume: Some(ResumePoint {
                position: self.consumed,
                next_row: self.next_row,
                lines_done: self.line_no,
            }),
        })
    }
}

impl BatchSteps for NdjsonStream {
    fn next_batch(&mut self) -> Result<Option<ReadBatch>> {
        self.advance()
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}
