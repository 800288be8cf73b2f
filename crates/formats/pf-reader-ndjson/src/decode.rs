//! Turning runs of lines into Arrow batches, isolating the lines that fail.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::json::ReaderBuilder;
use arrow::json::reader::Decoder;

use pf_error::ErrorClass;

use crate::integers::ExactIntegers;
use pf_types::{RecordFailure, Stage};

/// Longest record text kept in a failure.
pub(crate) const MAX_RECORD_TEXT: usize = 64 << 10;
/// Most lines decoded together while isolating bad lines; bounds the decoder's
/// preallocation, which is sized by its batch size.
const ISOLATION_WINDOW: usize = 1_024;
/// Most rows the fast-path decoder holds before it is flushed. arrow-json reserves tape
/// space for batch size × field count up front; capping it keeps that reservation
/// modest for wide schemas, while a 4 MiB chunk of typical lines still decodes in one
/// flush.
const FAST_DECODER_ROWS: usize = 32_768;
/// Failure text held back before a batch is emitted early, so that a file of long bad
/// lines cannot pile up unbounded memory inside one batch.
const MAX_PENDING_FAILURE_BYTES: usize = 16 << 20;

/// One non-blank line inside the chunk buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    /// Offset of the line's first byte.
    pub start: usize,
    /// Offset just past its content (line end and a trailing `\r` excluded).
    pub end: usize,
    /// 1-based line number in the file, when the read knows it.
    pub line: Option<u64>,
    /// Decompressed byte offset of the line's first byte in the file: the record's
    /// ordinal.
    pub offset: u64,
}

/// What has been decoded since the last emitted batch.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    /// The ordinal of each decoded row, in order.
    pub ordinals: Vec<u64>,
    pub failures: Vec<RecordFailure>,
    /// Records seen: decoded rows plus failures.
    pub records: usize,
    /// Bytes of the input lines decoded into `batches`.
    pub line_bytes: usize,
    failure_bytes: usize,
}

impl Pending {
    pub(crate) fn is_full(&self, batch_size: usize, max_batch_bytes: usize) -> bool {
        self.records >= batch_size
            || self.line_bytes >= max_batch_bytes
            || self.failure_bytes >= MAX_PENDING_FAILURE_BYTES
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Adds `batch`, decoded from the lines `spans` (one row each).
    fn push(&mut self, batch: RecordBatch, spans: &[Span]) {
        debug_assert_eq!(batch.num_rows(), spans.len());
        self.ordinals.extend(spans.iter().map(|s| s.offset));
        self.rows += batch.num_rows();
        self.records += batch.num_rows();
        if batch.num_rows() > 0 {
            self.batches.push(batch);
        }
    }

    /// Records the failed line at `span`; `text` is its content, truncated to `keep`
    /// bytes.
    pub(crate) fn fail(&mut self, uri: &str, span: Span, error: String, text: &[u8], keep: usize) {
        let record = lossy_prefix(text, keep);
        self.failure_bytes += record.len() + error.len();
        self.records += 1;
        self.failures.push(RecordFailure {
            uri: uri.to_owned(),
            line: span.line,
            row: Some(span.offset),
            stage: Stage::Read,
            class: ErrorClass::Record,
            error,
            record: Some(record),
        });
    }

    /// Everything pending, leaving this empty.
    pub(crate) fn take(&mut self) -> Pending {
        std::mem::take(self)
    }
}

/// At most `keep` bytes of `text` as a string, cut before a split multi-byte character
/// so that the truncation does not invent a replacement character.
fn lossy_prefix(text: &[u8], keep: usize) -> String {
    let mut cut = text.len().min(keep);
    let mut back = 0;
    while cut < text.len() && cut > 0 && back < 3 && (text[cut] & 0xC0) == 0x80 {
        cut -= 1;
        back += 1;
    }
    String::from_utf8_lossy(&text[..cut]).into_owned()
}

/// Decodes lines against one schema.
pub(crate) struct LineDecoder {
    schema: SchemaRef,
    coerce_primitive: bool,
    batch_size: usize,
    /// Reused across chunks while they decode cleanly; a failed decode leaves a decoder
    /// in an unknown state, so it is then dropped and rebuilt.
    fast: Option<Decoder>,
}

impl LineDecoder {
    /// Fails when arrow-json cannot decode into `schema` at all (unsupported types).
    pub(crate) fn new(
        schema: SchemaRef,
        coerce_primitive: bool,
        batch_size: usize,
    ) -> Result<Self, ArrowError> {
        let mut this = LineDecoder {
            schema,
            coerce_primitive,
            batch_size,
            fast: None,
        };
        this.fast = Some(this.build(this.fast_rows())?);
        Ok(this)
    }

    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn fast_rows(&self) -> usize {
        self.batch_size.min(FAST_DECODER_ROWS)
    }

    fn build(&self, batch_size: usize) -> Result<Decoder, ArrowError> {
        ReaderBuilder::new(self.schema.clone())
            .with_batch_size(batch_size.max(1))
            .with_coerce_primitive(self.coerce_primitive)
            .with_decoder_factory(ExactIntegers::factory())
            .build_decoder()
    }

    /// Decodes the lines `spans` of `buf` (in order) into `out`, reporting each line
    /// that fails on its own.
    pub(crate) fn decode(&mut self, buf: &[u8], spans: &[Span], uri: &str, out: &mut Pending) {
        if spans.is_empty() {
            return;
        }
        match self.decode_clean(buf, spans) {
            Some(batches) => {
                let mut rest = spans;
                for batch in batches {
                    let (lines, after) = rest.split_at(batch.num_rows());
                    out.push(batch, lines);
                    rest = after;
                }
            }
            None => self.isolate(buf, spans, uri, out),
        }
    }

    /// The fast path, for runs without a bad line: each line goes to the decoder
    /// straight from the chunk buffer (no copy, no allocation), and one flush turns the
    /// run into a batch. Handing lines over one call each, rather than the whole region
    /// in one call, costs nothing measurable and proves that rows and lines correspond
    /// one-to-one; with a single call, a line holding two objects next to an object
    /// spread over two lines would decode to the right row count with the wrong rows.
    /// `None` when any line is bad.
    fn decode_clean(&mut self, buf: &[u8], spans: &[Span]) -> Option<Vec<RecordBatch>> {
        let limit = self.fast_rows();
        let mut decoder = match self.fast.take() {
            Some(d) => d,
            None => self.build(limit).ok()?,
        };
        let mut batches = Vec::with_capacity(1);
        for span in spans {
            if decoder.len() >= limit {
                // The decoder holds at most `limit` rows; a flush makes room.
                batches.push(decoder.flush().ok()??);
            }
            let line = &buf[span.start..span.end];
            let before = decoder.len();
            let read = decoder.decode(line).ok()?;
            if read != line.len() || decoder.len() != before + 1 || decoder.has_partial_record() {
                return None;
            }
        }
        if let Some(batch) = decoder.flush().ok()? {
            batches.push(batch);
        }
        self.fast = Some(decoder);
        Some(batches)
    }

    /// The slow path: lines are fed one at a time so that syntax errors point at their
    /// line directly; runs of syntactically sound lines that still fail when flushed
    /// (type mismatch, invalid UTF-8) are bisected by [`Self::settle`].
    fn isolate(&mut self, buf: &[u8], spans: &[Span], uri: &str, out: &mut Pending) {
        let mut rest = spans;
        while !rest.is_empty() {
            let window = &rest[..rest.len().min(ISOLATION_WINDOW)];
            let mut decoder = match self.build(window.len() + 1) {
                Ok(d) => d,
                Err(e) => {
                    fail_all(buf, rest, uri, &e.to_string(), out);
                    return;
                }
            };
            let mut bad = None;
            for (i, span) in window.iter().enumerate() {
                if let Err(message) = feed_line(&mut decoder, &buf[span.start..span.end]) {
                    bad = Some((i, message));
                    break;
                }
            }
            match bad {
                Some((i, message)) => {
                    // The decoder is poisoned: the lines before the bad one are decoded
                    // again on their own.
                    self.settle(buf, &rest[..i], uri, out);
                    fail_line(buf, rest[i], uri, message, out);
                    rest = &rest[i + 1..];
                }
                None => {
                    match decoder.flush() {
                        Ok(Some(batch)) => out.push(batch, window),
                        Ok(None) => {}
                        Err(_) => self.settle(buf, window, uri, out),
                    }
                    rest = &rest[window.len()..];
                }
            }
        }
    }

    /// Decodes lines known to parse one object each, bisecting on flush errors until
    /// every failing line stands alone. Recursion depth is log2 of the window.
    fn settle(&mut self, buf: &[u8], spans: &[Span], uri: &str, out: &mut Pending) {
        if spans.is_empty() {
            return;
        }
        let result = self
            .build(spans.len() + 1)
            .map_err(|e| e.to_string())
            .and_then(|mut decoder| {
                for span in spans {
                    feed_line(&mut decoder, &buf[span.start..span.end])?;
                }
                decoder.flush().map_err(|e| e.to_string())
            });
        match result {
            Ok(Some(batch)) => out.push(batch, spans),
            Ok(None) => {}
            Err(message) if spans.len() == 1 => fail_line(buf, spans[0], uri, message, out),
            Err(_) => {
                let (left, right) = spans.split_at(spans.len() / 2);
                self.settle(buf, left, uri, out);
                self.settle(buf, right, uri, out);
            }
        }
    }
}

/// Feeds one line and checks that it added exactly one complete record.
fn feed_line(decoder: &mut Decoder, line: &[u8]) -> Result<(), String> {
    let before = decoder.len();
    let read = decoder.decode(line).map_err(|e| e.to_string())?;
    if decoder.has_partial_record() && read == line.len() {
        // A bare number only ends at the byte after it; give it one so that it is
        // reported for what it is (not an object) rather than as truncated.
        decoder.decode(b"\n").map_err(|e| e.to_string())?;
    }
    if decoder.has_partial_record() {
        return Err(match decoder.flush() {
            Err(e) => e.to_string(),
            Ok(_) => "truncated JSON record".to_owned(),
        });
    }
    if read < line.len() || decoder.len() != before + 1 {
        return Err("expected one JSON value per line, found several".to_owned());
    }
    Ok(())
}

fn fail_all(buf: &[u8], spans: &[Span], uri: &str, error: &str, out: &mut Pending) {
    for span in spans {
        fail_line(buf, *span, uri, error.to_owned(), out);
    }
}

/// Records the line at `span` of `buf` as failed with `error`.
fn fail_line(buf: &[u8], span: Span, uri: &str, error: String, out: &mut Pending) {
    out.fail(
        uri,
        span,
        error,
        &buf[span.start..span.end],
        MAX_RECORD_TEXT,
    );
}
