//! The NDJSON reader over arbitrary bytes served from memory.
//!
//! Input: one option byte, then the stored file.
//! * bits 0-1: compression: 0 none, 1 gzip, 2 zstd, 3 none and also read as ranges:
//!   the file is cut into byte ranges (of 7 bytes and of a third of the file), each
//!   range read on its own, and the records, ordinals and failed lines of the ranges
//!   together must equal those of the whole read (a difference panics);
//! * bit 2: decode against a fixed schema (all five field types) instead of inferring;
//! * bits 3-4: chunk size: 7 bytes, 64 bytes, 4 KiB, or the production 4 MiB;
//! * bit 5: batches of at most 3 records (else the production 65536);
//! * bit 6: lines longer than 48 bytes are failures, batches end at 256 line bytes, and
//!   inference looks at 2 lines (else production limits);
//! * bit 7: after draining, reopen at each checkpoint the first pass produced (at most
//!   4) and drain again, as a retried work item does; then reopen at two checkpoints
//!   that do not fit the file (mid-file, past the end).
//!
//! Every batch is drained; errors are fine, panics, aborts and hangs are not.
#![no_main]

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use libfuzzer_sys::fuzz_target;

use paraflow_fuzz::MemSource;
use pf_reader_ndjson::{FieldSpec, FieldType, NdjsonConfig};
use pf_traits::{ObjectSource, Reader, ResumePoint};
use pf_types::{Checkpoint, Compression, FileFormat, WorkItem};

fn field(name: &str, field_type: FieldType) -> FieldSpec {
    FieldSpec {
        name: name.to_owned(),
        field_type,
        nullable: true,
    }
}

/// What a read yields that ranges must reproduce: rows (batches with rows), their
/// ordinals and the ordinals of the failed lines.
#[derive(Default)]
struct Records {
    batches: Vec<RecordBatch>,
    ordinals: Vec<u64>,
    failed: Vec<u64>,
}

/// Reads `item` to its end, keeping what [`Records`] compares; `None` when the read fails.
fn records(reader: &dyn Reader, source: &Arc<dyn ObjectSource>, item: &WorkItem) -> Option<Records> {
    let mut out = Records::default();
    let stream = reader.open(Arc::clone(source), item, &Checkpoint::default()).ok()?;
    for batch in stream {
        let batch = batch.ok()?;
        let rows = batch.batch.num_rows();
        let ordinals = batch.ordinals.unwrap_or_else(|| (0..rows as u64).map(|i| batch.first_row + i).collect());
        assert_eq!(ordinals.len(), rows, "one ordinal per row");
        out.ordinals.extend(ordinals);
        out.failed.extend(batch.failures.iter().map(|f| f.row.expect("an NDJSON failure has its ordinal")));
        if rows > 0 {
            out.batches.push(batch.batch);
        }
    }
    Some(out)
}

/// The rows of `batches` as one batch (`None` for no rows).
fn joined(batches: &[RecordBatch]) -> Option<RecordBatch> {
    let first = batches.first()?;
    Some(concat_batches(&first.schema(), batches).expect("batches of one read share a schema"))
}

/// Cuts `item` by `cut` bytes and checks that its ranges, read on their own, yield what
/// the whole read did.
fn check_ranges(reader: &dyn Reader, source: &Arc<dyn ObjectSource>, item: &WorkItem, whole: &Records, cut: u64) {
    let Some(parts) = item.split(cut) else {
        return;
    };
    let mut got = Records::default();
    for part in &parts {
        let range = part.range.expect("a part is a range");
        let Some(r) = records(reader, source, part) else {
            // The whole file read cleanly, so its ranges must too.
            panic!("range {}/{} failed where the whole read did not", range.index, range.count);
        };
        assert!(
            r.ordinals.iter().chain(&r.failed).all(|o| (range.start..range.end).contains(o)),
            "range {}/{} yielded a line that does not start in it",
            range.index,
            range.count
        );
        got.ordinals.extend(r.ordinals);
        got.failed.extend(r.failed);
        got.batches.extend(r.batches);
    }
    assert_eq!(got.ordinals, whole.ordinals, "cut {cut}: row ordinals");
    assert_eq!(got.failed, whole.failed, "cut {cut}: failed lines");
    assert_eq!(joined(&got.batches), joined(&whole.batches), "cut {cut}: rows");
}

/// Drains the reader; returns the resume points seen.
fn drain(reader: &dyn Reader, source: &Arc<dyn ObjectSource>, item: &WorkItem, resume: &Checkpoint) -> Vec<ResumePoint> {
    let mut points = Vec::new();
    let Ok(stream) = reader.open(Arc::clone(source), item, resume) else {
        return points;
    };
    for batch in stream {
        match batch {
            Ok(batch) => {
                // Touch the data the way the pipeline does.
                let _ = batch.batch.num_rows();
                let _ = batch.batch.schema();
                if let Some(point) = batch.resume {
                    points.push(point);
                }
            }
            Err(_) => break,
        }
    }
    points
}

fuzz_target!(|data: &[u8]| {
    let Some((&opts, file)) = data.split_first() else {
        return;
    };
    let compression = match opts & 3 {
        1 => Compression::Gzip,
        2 => Compression::Zstd,
        _ => Compression::None,
    };
    let small = opts & 0x40 != 0;
    let config = NdjsonConfig {
        max_line_bytes: if small { 48 } else { NdjsonConfig::default().max_line_bytes },
        max_batch_bytes: if small { 256 } else { NdjsonConfig::default().max_batch_bytes },
        infer_rows: if small { 2 } else { NdjsonConfig::default().infer_rows },
        schema: (opts & 4 != 0).then(|| {
            vec![
                field("s", FieldType::String),
                field("i", FieldType::Int64),
                field("f", FieldType::Float64),
                field("b", FieldType::Boolean),
                field("t", FieldType::Timestamp),
            ]
        }),
    };
    if config.validate().is_err() {
        return;
    }
    let chunk = [7, 64, 4096, 4 << 20][usize::from((opts >> 3) & 3)];
    let batch_size = if opts & 0x20 != 0 { 3 } else { 65_536 };
    let reader = config.build(batch_size).with_chunk_bytes(chunk);

    let name = match compression {
        Compression::None => "mem://fuzz/f.ndjson",
        Compression::Gzip => "mem://fuzz/f.ndjson.gz",
        Compression::Zstd => "mem://fuzz/f.ndjson.zst",
    };
    let item = WorkItem {
        uri: name.to_owned(),
        size: Some(file.len() as u64),
        etag: Some("fuzz".to_owned()),
        format: FileFormat::Ndjson,
        compression,
        job_id: None,
        last_modified: None,
        range: None,
    };
    let source: Arc<dyn ObjectSource> = Arc::new(MemSource::new(file.to_vec()));
    if opts & 3 == 3
        && let Some(whole) = records(&reader, &source, &item)
    {
        let len = file.len() as u64;
        for cut in [7, len.div_ceil(3)] {
            check_ranges(&reader, &source, &item, &whole, cut);
        }
    }
    let points = drain(&reader, &source, &item, &Checkpoint::default());
    if opts & 0x80 != 0 {
        for point in points.iter().take(4) {
            let resume = point.checkpoint(Default::default());
            drain(&reader, &source, &item, &resume);
        }
        // A checkpoint from another version of the file: mid-line, or past the end.
        for position in [file.len() as u64 / 2, file.len() as u64 + 1] {
            let resume = Checkpoint {
                position,
                next_row: 1,
                lines_done: 1,
                ..Checkpoint::default()
            };
            drain(&reader, &source, &item, &resume);
        }
    }
});
