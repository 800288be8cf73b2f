//! The Parquet reader over arbitrary bytes served from memory, whole-file and by ranges.
//!
//! Input: four option bytes, then the stored file.
//! * byte 0, bit 0: batches of 7 rows (else the production 65536);
//! * byte 0, bit 1: the work item has no size (the reader stats the source);
//! * byte 0, bit 2: reopen projected to the first column of the first batch;
//! * byte 0, bit 3: reopen at the first checkpoint (row-group boundary) of the first pass;
//! * byte 0, bit 4: read every range of the file cut `WorkItem::split`-style into
//!   `1 + byte 1 % 8` ranges; when the whole file and every range read without error,
//!   the ranges must yield exactly the whole file's rows (each row group has one owner);
//! * bytes 2-3: with bit 4 clear, one arbitrary range `[start, end)` (scaled to the
//!   file) read on its own.
//!
//! Every batch is drained; errors are fine, panics that escape the reader, aborts and
//! hangs are not. The reader catches panics of the parquet decoder on purpose
//! (`guarded`), so libfuzzer-sys' abort-on-panic hook is replaced by one that lets them
//! unwind (see `paraflow_fuzz::unwind_panics_reporting_sites`).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;

use paraflow_fuzz::{MemSource, unwind_panics_reporting_sites};
use pf_reader_parquet::{ParquetReader, ParquetReaderOptions};
use pf_traits::{ObjectSource, Reader, ResumePoint};
use pf_types::{Checkpoint, FileFormat, ItemRange, WorkItem};

struct Pass {
    /// Rows read, when the stream ended without error.
    rows: Option<u64>,
    first_column: Option<String>,
    first_resume: Option<ResumePoint>,
}

fn drain(reader: &ParquetReader, source: &Arc<dyn ObjectSource>, item: &WorkItem, resume: &Checkpoint) -> Pass {
    let mut pass = Pass {
        rows: None,
        first_column: None,
        first_resume: None,
    };
    let Ok(stream) = reader.open(Arc::clone(source), item, resume) else {
        return pass;
    };
    let mut rows = 0u64;
    for batch in stream {
        match batch {
            Ok(batch) => {
                rows += batch.batch.num_rows() as u64;
                if pass.first_column.is_none() {
                    pass.first_column = batch.batch.schema().fields().first().map(|f| f.name().clone());
                }
                if pass.first_resume.is_none() {
                    pass.first_resume = batch.resume;
                }
            }
            Err(_) => return pass,
        }
    }
    pass.rows = Some(rows);
    pass
}

fuzz_target!(|data: &[u8]| {
    unwind_panics_reporting_sites();
    if data.len() < 4 {
        return;
    }
    let (opts, file) = data.split_at(4);
    let len = file.len() as u64;
    let batch_size = if opts[0] & 1 != 0 { 7 } else { 65_536 };
    let reader = ParquetReader::new(ParquetReaderOptions {
        batch_size,
        columns: None,
        ..Default::default()
    });
    let whole = WorkItem {
        uri: "mem://fuzz/f.parquet".to_owned(),
        size: (opts[0] & 2 == 0).then_some(len),
        etag: Some("fuzz".to_owned()),
        format: FileFormat::Parquet,
        compression: Default::default(),
        job_id: None,
        last_modified: None,
        range: None,
    };
    let source: Arc<dyn ObjectSource> = Arc::new(MemSource::new(file.to_vec()));
    let first = drain(&reader, &source, &whole, &Checkpoint::default());

    if opts[0] & 4 != 0 {
        if let Some(column) = &first.first_column {
            let projected = ParquetReader::new(ParquetReaderOptions {
                batch_size,
                columns: Some(vec![column.clone()]),
                ..Default::default()
            });
            drain(&projected, &source, &whole, &Checkpoint::default());
        }
    }
    if opts[0] & 8 != 0 {
        if let Some(point) = first.first_resume {
            let resume = point.checkpoint(Default::default());
            drain(&reader, &source, &whole, &resume);
        }
    }

    let sized = WorkItem {
        size: Some(len),
        ..whole.clone()
    };
    if opts[0] & 16 != 0 {
        let count = 1 + u64::from(opts[1] % 8);
        let split_size = len.div_ceil(count).max(1);
        let parts = sized.split(split_size).unwrap_or_else(|| vec![sized.clone()]);
        let mut total = Some(0u64);
        for part in &parts {
            let rows = drain(&reader, &source, part, &Checkpoint::default()).rows;
            total = total.zip(rows).map(|(a, b)| a + b);
        }
        if let (Some(whole_rows), Some(range_rows)) = (first.rows, total) {
            assert_eq!(
                whole_rows, range_rows,
                "{} ranges read {range_rows} rows, the whole file {whole_rows}",
                parts.len()
            );
        }
    } else if len > 0 {
        let a = u64::from(opts[2]) * len / 255;
        let b = u64::from(opts[3]) * len / 255;
        let item = WorkItem {
            range: Some(ItemRange {
                index: 0,
                count: 2,
                start: a.min(b),
                end: a.max(b),
            }),
            ..sized
        };
        drain(&reader, &source, &item, &Checkpoint::default());
    }
});
