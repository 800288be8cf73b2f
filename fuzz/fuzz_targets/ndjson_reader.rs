//! The NDJSON reader over arbitrary bytes served from memory.
//!
//! Input: one option byte, then the stored file.
//! * bits 0-1: compression: 0 none, 1 gzip, 2 zstd, 3 none;
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
    let points = drain(&reader, &source, &item, &Checkpoint::default());
    if opts & 0x80 != 0 {
        for point in points.iter().take(4) {
            let resume = Checkpoint {
                position: point.position,
                next_row: point.next_row,
                lines_done: point.lines_done,
                ..Checkpoint::default()
            };
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
