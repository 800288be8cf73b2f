//! A Parquet file cut into byte ranges is read exactly once, with file-relative
//! ordinals, however it is cut and wherever a range resumes.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use pf_reader_parquet::{ParquetReader, ParquetReaderOptions};
use pf_storage::LocalObjectSource;
use pf_traits::{ObjectSource, Reader};
use pf_types::{Checkpoint, WorkItem};

const ROWS: i64 = 10_000;

/// A 10,000-row file of 10 row groups (1,000 rows each); column `id` is the ordinal.
fn ten_group_file(dir: &std::path::Path) -> WorkItem {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let path = dir.join("t.parquet");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1_000))
        .set_dictionary_enabled(false)
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        schema.clone(),
        Some(props),
    )
    .unwrap();
    let ids = Int64Array::from((0..ROWS).collect::<Vec<_>>());
    w.write(&RecordBatch::try_new(schema, vec![Arc::new(ids)]).unwrap())
        .unwrap();
    w.close().unwrap();
    let mut item = WorkItem::from_uri(format!("file://{}", path.display())).unwrap();
    item.size = Some(std::fs::metadata(&path).unwrap().len());
    item
}

/// (first ordinal, ids) of every batch read from `item` after `resume`.
fn read(item: &WorkItem, resume: &Checkpoint) -> Vec<(u64, Vec<i64>)> {
    let reader = ParquetReader::new(ParquetReaderOptions {
        batch_size: 400,
        ..Default::default()
    });
    let source: Arc<dyn ObjectSource> = Arc::new(LocalObjectSource);
    reader
        .open(source, item, resume)
        .unwrap()
        .map(|b| {
            let b = b.unwrap();
            let ids = b
                .batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            (b.first_row, ids.values().to_vec())
        })
        .collect()
}

#[test]
fn every_row_is_read_once_with_its_file_ordinal_however_the_file_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let item = ten_group_file(dir.path());
    let size = item.size.unwrap();
    for split_size in [1_000, 3_000, size / 3, size / 2, size - 1] {
        let ranges = item.split(split_size).expect("the file is larger");
        let mut ids = Vec::new();
        let mut owners = 0;
        for range in &ranges {
            let batches = read(range, &Checkpoint::default());
            owners += usize::from(!batches.is_empty());
            for (first, batch_ids) in batches {
                assert_eq!(
                    first, batch_ids[0] as u64,
                    "ordinal of the batch's first row"
                );
                ids.extend(batch_ids);
            }
        }
        assert_eq!(
            ids,
            (0..ROWS).collect::<Vec<_>>(),
            "split size {split_size}: {} ranges",
            ranges.len()
        );
        if split_size <= size / 2 {
            assert!(
                owners >= 2,
                "split size {split_size}: the groups spread over ranges"
            );
        }
    }
}

#[test]
fn a_range_resumes_after_its_last_finished_group_and_stops_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let item = ten_group_file(dir.path());
    let ranges = item.split(item.size.unwrap() / 2).unwrap();
    let first = read(&ranges[0], &Checkpoint::default());
    let (first_ids, last_ids) = (&first[0].1, &first.last().unwrap().1);
    assert_eq!(first_ids[0], 0);
    let end = *last_ids.last().unwrap();
    assert!(
        end > 0 && end < ROWS - 1,
        "the first range ends inside the file: {end}"
    );

    // Resume the second range after its first group, as a checkpoint would say.
    let second = read(&ranges[1], &Checkpoint::default());
    let second_start = second[0].0;
    assert_eq!(
        second_start as i64,
        end + 1,
        "the second range starts where the first ended"
    );
    let resume = Checkpoint {
        position: second_start / 1_000 + 1,
        next_row: second_start + 1_000,
        ..Default::default()
    };
    let resumed = read(&ranges[1], &resume);
    let ids: Vec<i64> = resumed.into_iter().flat_map(|(_, ids)| ids).collect();
    assert_eq!(ids, (second_start as i64 + 1_000..ROWS).collect::<Vec<_>>());
}
