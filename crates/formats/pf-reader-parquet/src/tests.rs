use std::fs;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{
    Array, ArrayRef, DictionaryArray, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    StructArray,
};
use arrow::datatypes::{DataType, Field, Fields, Int32Type, Int64Type, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::compute_leaves;
use parquet::file::properties::WriterProperties;

use pf_error::ErrorClass;
use pf_storage::LocalObjectSource;
use pf_traits::ObjectListing;
use pf_types::{Compression, ObjectInfo};

use super::*;

fn id_name_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

/// Rows `start..start + n`; every seventh name is null.
fn id_name_batch(start: i64, n: usize) -> RecordBatch {
    let ids: Vec<i64> = (start..start + n as i64).collect();
    let names: Vec<Option<String>> = ids
        .iter()
        .map(|i| (i % 7 != 0).then(|| format!("name-{i}")))
        .collect();
    RecordBatch::try_new(
        id_name_schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap()
}

fn props(max_rows_per_group: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_max_row_group_row_count(Some(max_rows_per_group))
        .build()
}

/// Writes `batches` to `dir/name`, returning a work item for it.
fn write(
    dir: &Path,
    name: &str,
    schema: SchemaRef,
    batches: &[RecordBatch],
    props: WriterProperties,
) -> WorkItem {
    let path = dir.join(name);
    let file = fs::File::create(&path).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).unwrap();
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.close().unwrap();
    item_for(&path)
}

fn item_for(path: &Path) -> WorkItem {
    WorkItem {
        uri: format!("file://{}", path.display()),
        size: Some(fs::metadata(path).unwrap().len()),
        etag: None,
        format: FileFormat::Parquet,
        compression: Compression::None,
        job_id: None,
        last_modified: None,
        range: None,
    }
}

fn local() -> Arc<dyn ObjectSource> {
    Arc::new(LocalObjectSource)
}

fn reader(batch_size: usize) -> ParquetReader {
    ParquetReader::new(ParquetReaderOptions {
        batch_size,
        columns: None,
        ..Default::default()
    })
}

/// Tiny buffers so that files of a few kilobytes go through windows and refills.
fn tiny_io() -> IoTuning {
    IoTuning {
        footer_prefetch: 2048,
        window_budget: 1024,
        look_ahead: 0,
        min_window: 300,
        max_window: 700,
    }
}

/// A small footer read and windows that hold a whole column chunk of the test files, so
/// that a row group costs one request.
fn whole_chunk_windows() -> IoTuning {
    IoTuning {
        footer_prefetch: 2048,
        window_budget: 4 * 1024 * 1024,
        look_ahead: 0,
        min_window: 1024 * 1024,
        max_window: 4 * 1024 * 1024,
    }
}

fn read_all(
    reader: &ParquetReader,
    source: Arc<dyn ObjectSource>,
    item: &WorkItem,
    resume: &Checkpoint,
) -> Result<Vec<ReadBatch>> {
    reader.open(source, item, resume)?.collect()
}

fn ids(batches: &[ReadBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let col = b.batch.column_by_name("id").unwrap();
            let col = col.as_any().downcast_ref::<Int64Array>().unwrap();
            col.values().to_vec()
        })
        .collect()
}

/// Column `index` of `batch`, a string column.
fn strings(batch: &ReadBatch, index: usize) -> &StringArray {
    batch
        .batch
        .column(index)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
}

/// `(first_row, rows, resume as (position, next_row))` of one batch.
type Shape = (u64, usize, Option<(u64, u64)>);

fn shape(batches: &[ReadBatch]) -> Vec<Shape> {
    batches
        .iter()
        .map(|b| {
            (
                b.first_row,
                b.batch.num_rows(),
                b.resume.map(|r| (r.position, r.next_row)),
            )
        })
        .collect()
}

fn checkpoint(position: u64, next_row: u64) -> Checkpoint {
    Checkpoint {
        position,
        next_row,
        ..Checkpoint::default()
    }
}

/// `a.parquet` in a fresh directory holding `id_name_batch(0, rows)`, `per_group` rows
/// to a row group.
fn id_name_file(rows: usize, per_group: usize) -> (tempfile::TempDir, WorkItem) {
    temp_file(
        "a.parquet",
        id_name_schema(),
        &[id_name_batch(0, rows)],
        props(per_group),
    )
}

/// All of [`id_name_file`] read in batches of `batch_size` rows.
fn read_id_name(rows: usize, per_group: usize, batch_size: usize) -> Vec<ReadBatch> {
    let (_dir, item) = id_name_file(rows, per_group);
    read_fresh(&reader(batch_size), &item)
}

/// [`write`] into a fresh directory, which lives as long as the returned handle.
fn temp_file(
    name: &str,
    schema: SchemaRef,
    batches: &[RecordBatch],
    props: WriterProperties,
) -> (tempfile::TempDir, WorkItem) {
    let dir = tempfile::tempdir().unwrap();
    let item = write(dir.path(), name, schema, batches, props);
    (dir, item)
}

/// `batch` alone in a fresh directory, `per_group` rows to a row group.
fn one_batch_file(
    name: &str,
    batch: &RecordBatch,
    per_group: usize,
) -> (tempfile::TempDir, WorkItem) {
    temp_file(
        name,
        batch.schema(),
        std::slice::from_ref(batch),
        props(per_group),
    )
}

/// All rows of `batches` as one batch.
fn concat(batches: &[ReadBatch]) -> RecordBatch {
    arrow::compute::concat_batches(&batches[0].batch.schema(), batches.iter().map(|b| &b.batch))
        .unwrap()
}

/// A reader that projects `columns`.
fn projecting(batch_size: usize, columns: &[&str]) -> ParquetReader {
    ParquetReader::new(ParquetReaderOptions {
        batch_size,
        columns: Some(columns.iter().map(|c| c.to_string()).collect()),
        ..Default::default()
    })
}

/// Reads all of a local `item` from its start.
fn read_fresh(reader: &ParquetReader, item: &WorkItem) -> Vec<ReadBatch> {
    read_all(reader, local(), item, &Checkpoint::default()).unwrap()
}

/// The error opening `item` from its start fails with.
fn open_err(reader: &ParquetReader, source: Arc<dyn ObjectSource>, item: &WorkItem) -> PfError {
    reader
        .open(source, item, &Checkpoint::default())
        .err()
        .unwrap()
}

#[test]
fn reports_parquet_format() {
    assert_eq!(reader(10).format(), FileFormat::Parquet);
    let defaults = ParquetReaderOptions::default();
    assert_eq!((defaults.batch_size, defaults.columns), (65_536, None));
}

#[test]
fn row_groups_give_ordinals_batch_sizes_and_resume_points() {
    let batches = read_id_name(25, 10, 4);
    assert_eq!(
        shape(&batches),
        vec![
            (0, 4, None),
            (4, 4, None),
            (8, 2, Some((1, 10))),
            (10, 4, None),
            (14, 4, None),
            (18, 2, Some((2, 20))),
            (20, 4, None),
            (24, 1, Some((3, 25))),
        ]
    );
    assert_eq!(ids(&batches), (0..25).collect::<Vec<_>>());
    for b in &batches {
        assert!(b.failures.is_empty());
        assert_eq!(b.resume.map(|r| r.lines_done).unwrap_or(0), 0);
    }
}

#[test]
fn batch_size_zero_reads_one_row_at_a_time() {
    let batches = read_id_name(3, 10, 0);
    assert_eq!(
        shape(&batches),
        vec![(0, 1, None), (1, 1, None), (2, 1, Some((1, 3)))]
    );
}

#[test]
fn bytes_read_are_counted_once_and_bounded_by_the_file() {
    let (_dir, item) = temp_file(
        "a.parquet",
        id_name_schema(),
        &[id_name_batch(0, 3000)],
        WriterProperties::builder()
            .set_max_row_group_row_count(Some(1000))
            .set_data_page_row_count_limit(100)
            .set_write_batch_size(100)
            .build(),
    );
    let len = item.size.unwrap();
    for (what, reader) in [
        ("default buffers", reader(256)),
        ("tiny buffers", reader(256).with_io(tiny_io())),
        (
            "footer larger than the prefetch",
            reader(256).with_io(IoTuning {
                footer_prefetch: 16,
                ..tiny_io()
            }),
        ),
    ] {
        let batches = read_fresh(&reader, &item);
        assert_eq!(ids(&batches), (0..3000).collect::<Vec<_>>(), "{what}");
        let total: u64 = batches.iter().map(|b| b.bytes_read).sum();
        assert!(total > 0 && total <= len, "{what}: read {total} of {len}");
        assert!(
            batches[0].bytes_read > 0,
            "{what}: footer bytes are reported"
        );
    }
}

/// Serves reads from a local file, counting them, and fails every read after the
/// first `healthy` ones with a transient service error.
struct FlakySource {
    healthy: usize,
    calls: AtomicUsize,
    ranges: std::sync::Mutex<Vec<Range<u64>>>,
    /// The name of the thread that made each read, in the order of `ranges`.
    threads: std::sync::Mutex<Vec<String>>,
    /// How long each read takes (a round trip).
    delay: std::time::Duration,
    /// Batches the test has taken so far, as it tells the source ...
    taken: AtomicUsize,
    /// ... and its value when each read started, in the order of `ranges`.
    taken_at_read: std::sync::Mutex<Vec<usize>>,
}

impl FlakySource {
    fn new(healthy: usize) -> Arc<Self> {
        FlakySource::slow(healthy, std::time::Duration::ZERO)
    }

    fn slow(healthy: usize, delay: std::time::Duration) -> Arc<Self> {
        Arc::new(FlakySource {
            healthy,
            calls: AtomicUsize::new(0),
            ranges: std::sync::Mutex::new(Vec::new()),
            threads: std::sync::Mutex::new(Vec::new()),
            delay,
            taken: AtomicUsize::new(0),
            taken_at_read: std::sync::Mutex::new(Vec::new()),
        })
    }
}

impl ObjectSource for FlakySource {
    fn stat(&self, uri: &str) -> Result<ObjectInfo> {
        LocalObjectSource.stat(uri)
    }

    fn read_range(&self, uri: &str, range: Range<u64>) -> Result<Bytes> {
        let mut ranges = self.ranges.lock().unwrap();
        ranges.push(range.clone());
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        self.threads.lock().unwrap().push(thread);
        self.taken_at_read
            .lock()
            .unwrap()
            .push(self.taken.load(Ordering::SeqCst));
        drop(ranges);
        std::thread::sleep(self.delay);
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.healthy {
            return Err(PfError::Service {
                service: "s3",
                operation: "GetObject".into(),
                class: ErrorClass::Transient,
                message: "connection reset".into(),
            });
        }
        LocalObjectSource.read_range(uri, range)
    }

    fn read_from(&self, uri: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        LocalObjectSource.read_from(uri, offset)
    }

    fn list(&self, root: &str, recursive: bool) -> Result<ObjectListing<'_>> {
        LocalObjectSource.list(root, recursive)
    }
}

#[test]
fn footer_costs_one_ranged_read_and_data_reads_stay_in_the_file() {
    let (_dir, item) = id_name_file(3000, 1000);
    let len = item.size.unwrap();
    let source = FlakySource::new(usize::MAX);
    let stream = reader(500)
        .with_io(tiny_io())
        .open(source.clone(), &item, &Checkpoint::default())
        .unwrap();
    assert_eq!(source.calls.load(Ordering::SeqCst), 1, "footer");
    assert_eq!(stream.count(), 6);
    let ranges = source.ranges.lock().unwrap();
    assert!(ranges.len() > 2, "data came through ranged reads");
    assert!(ranges.iter().all(|r| r.start < r.end && r.end <= len));
}

/// Reads all of [`id_name_file`] with `io` through a source that records every read,
/// checking the ids; the file's length, the batches and the source.
fn read_recorded(
    rows: usize,
    per_group: usize,
    batch_size: usize,
    io: IoTuning,
) -> (u64, Vec<ReadBatch>, Arc<FlakySource>) {
    let (_dir, item) = id_name_file(rows, per_group);
    let source = FlakySource::new(usize::MAX);
    let batches = reader(batch_size)
        .with_io(io)
        .open(source.clone(), &item, &Checkpoint::default())
        .unwrap()
        .collect::<Result<Vec<_>>>()
        .unwrap();
    assert_eq!(ids(&batches), (0..rows as i64).collect::<Vec<_>>());
    (item.size.unwrap(), batches, source)
}

#[test]
fn a_row_groups_columns_come_in_one_request_fetched_while_the_previous_group_decodes() {
    let (len, batches, source) = read_recorded(30_000, 10_000, 4096, whole_chunk_windows());
    let ranges = source.ranges.lock().unwrap();
    let threads = source.threads.lock().unwrap();
    // The footer, then one request per row group: its two column chunks lie side by
    // side and fit their windows.
    assert_eq!(ranges.len(), 4, "{ranges:?}");
    let prefetched: Vec<bool> = threads.iter().map(|t| t == "pf-parquet-prefetch").collect();
    assert_eq!(
        prefetched,
        [false, false, true, true],
        "the first group is fetched on demand, the others ahead: {threads:?}"
    );
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    assert!(total <= len, "no byte fetched twice: {total} of {len}");
    let reported: u64 = batches.iter().map(|b| b.bytes_read).sum();
    assert_eq!(reported, total, "every fetched byte is reported once");
}

/// Reads [`id_name_file`] (ten groups of 5,000 rows, one batch each) from `source` with
/// `look_ahead` bytes, telling the source how many batches were taken; for each group
/// after the first, how many batches had been taken when its read started.
fn taken_when_each_group_was_read(source: &Arc<FlakySource>, look_ahead: u64) -> Vec<usize> {
    let (_dir, item) = id_name_file(50_000, 5_000);
    let len = item.size.unwrap();
    let io = IoTuning {
        look_ahead,
        ..whole_chunk_windows()
    };
    let mut ids_read = Vec::new();
    for batch in reader(5_000)
        .with_io(io)
        .open(source.clone(), &item, &Checkpoint::default())
        .unwrap()
    {
        ids_read.extend(ids(&[batch.unwrap()]));
        source.taken.fetch_add(1, Ordering::SeqCst);
    }
    assert_eq!(ids_read, (0..50_000).collect::<Vec<_>>());
    let ranges = source.ranges.lock().unwrap();
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    assert!(total <= len, "no byte fetched twice: {total} of {len}");
    // Each group after the first is one request made ahead, on a background thread.
    let threads = source.threads.lock().unwrap();
    let taken = source.taken_at_read.lock().unwrap();
    let mut ahead: Vec<(u64, usize)> = (0..ranges.len())
        .filter(|&i| threads[i] == "pf-parquet-prefetch")
        .map(|i| (ranges[i].start, taken[i]))
        .collect();
    assert_eq!(ahead.len(), 9, "{threads:?}");
    ahead.sort();
    ahead.into_iter().map(|(_, taken)| taken).collect()
}

#[test]
fn a_reader_fetches_further_ahead_only_when_decoding_catches_up_with_the_fetches() {
    // 30 ms round trips: decoding catches up, and later groups are asked for two or more
    // groups ahead.
    let slow = FlakySource::slow(usize::MAX, std::time::Duration::from_millis(30));
    let taken = taken_when_each_group_was_read(&slow, u64::MAX);
    assert!(
        taken
            .iter()
            .enumerate()
            .any(|(i, taken)| *taken + 1 < i + 1),
        "never more than one group ahead: {taken:?}"
    );
    // The same with no look-ahead to spare: group g is asked for only once group g - 1
    // opened, i.e. after g - 1 batches were taken.
    let bounded = FlakySource::slow(usize::MAX, std::time::Duration::from_millis(30));
    let taken = taken_when_each_group_was_read(&bounded, 0);
    for (i, taken) in taken.iter().enumerate() {
        let group = i + 1;
        assert!(
            *taken >= group - 1,
            "group {group} read after {taken} batches"
        );
    }
}

#[test]
fn windows_share_the_budget_in_proportion_to_the_chunks() {
    let io = IoTuning {
        footer_prefetch: 0,
        window_budget: 4_000,
        look_ahead: 0,
        min_window: 1,
        max_window: 10_000,
    };
    let windows: Vec<u64> = io
        .windows(vec![0..1_000, 1_000..4_000])
        .iter()
        .map(|c| c.window)
        .collect();
    assert_eq!(windows, [1_000, 3_000]);
    // Bounded on both sides: a tiny chunk still gets a useful request, a huge one no
    // more than the cap.
    let io = IoTuning {
        window_budget: 1_000_000,
        min_window: 100,
        max_window: 500_000,
        ..io
    };
    let chunks = io.windows(vec![0..1_000, 1_000..4_000, 4_000..100_004_000]);
    let windows: Vec<u64> = chunks.iter().map(|c| c.window).collect();
    assert_eq!(windows, [100, 100, 500_000]);
    assert_eq!(chunks[0].first_window_len(), 100);
    assert_eq!(chunks[1].bytes, 1_000..4_000, "chunks keep their bytes");
}

#[test]
fn a_column_chunk_larger_than_its_window_is_read_ahead_in_the_background() {
    let (len, _, source) = read_recorded(3000, 1000, 500, tiny_io());
    let ranges = source.ranges.lock().unwrap();
    let threads = source.threads.lock().unwrap();
    let on_demand: Vec<_> = ranges
        .iter()
        .zip(threads.iter())
        .filter(|(_, t)| *t != "pf-parquet-prefetch")
        .map(|(r, _)| r.clone())
        .collect();
    assert!(ranges.len() > 20, "the windows were refilled: {ranges:?}");
    // On demand: the footer, the first group's first windows (its first chunk outgrows
    // its window, so two requests), and in each of the six column chunks the first page,
    // larger than these tiny windows; every other refill was read ahead.
    assert!(
        on_demand.len() <= 1 + 2 + 6,
        "{} reads, on demand {on_demand:?}",
        ranges.len()
    );
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    assert!(total <= len, "no byte fetched twice: {total} of {len}");
}

#[test]
fn a_failed_prefetch_is_fetched_again_on_demand_and_fails_with_its_class() {
    let (_dir, item) = id_name_file(30_000, 10_000);
    // Footer and first group succeed; the prefetch of the second group fails, and so
    // does the demand read that replaces it.
    let source = FlakySource::new(2);
    let results: Vec<_> = reader(4096)
        .with_io(whole_chunk_windows())
        .open(source.clone(), &item, &Checkpoint::default())
        .unwrap()
        .collect();
    let (ok, err): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
    assert_eq!(
        ok.iter()
            .map(|b| b.as_ref().unwrap().batch.num_rows())
            .sum::<usize>(),
        10_000,
        "the first group comes out whole"
    );
    let err = err.into_iter().next().unwrap().unwrap_err();
    assert!(matches!(err, PfError::Service { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
    let threads = source.threads.lock().unwrap();
    assert_eq!(threads[2], "pf-parquet-prefetch", "{threads:?}");
    assert!(
        threads.len() >= 4,
        "the failed prefetch was tried again: {threads:?}"
    );
}

#[test]
fn source_errors_keep_their_class() {
    let (_dir, item) = id_name_file(3000, 1000);
    // The footer read succeeds; the first data read fails.
    let source = FlakySource::new(1);
    let mut stream = reader(500)
        .with_io(tiny_io())
        .open(source, &item, &Checkpoint::default())
        .unwrap();
    let err = stream.next().unwrap().unwrap_err();
    assert!(matches!(err, PfError::Service { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(stream.next().is_none(), "the stream ends after an error");

    // A failure part way through the file, after some batches came out.
    let healthy = FlakySource::new(usize::MAX);
    let all = read_all(
        &reader(100).with_io(tiny_io()),
        healthy.clone(),
        &item,
        &Checkpoint::default(),
    )
    .unwrap();
    assert_eq!(all.len(), 30);
    let calls = healthy.calls.load(Ordering::SeqCst);
    let source = FlakySource::new(calls / 2);
    let results: Vec<_> = reader(100)
        .with_io(tiny_io())
        .open(source, &item, &Checkpoint::default())
        .unwrap()
        .collect();
    let (ok, err): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
    assert!(!ok.is_empty(), "some batches before the failure");
    assert_eq!(err.len(), 1);
    let err = err.into_iter().next().unwrap().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");

    // The footer read itself fails.
    let err = open_err(&reader(100), FlakySource::new(0), &item);
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
}

#[test]
fn projection_selects_columns_in_file_order() {
    let (_dir, item) = id_name_file(20, 8);
    let only_name = projecting(100, &["name"]);
    let batches = read_fresh(&only_name, &item);
    assert_eq!(batches.len(), 3);
    for b in &batches {
        let schema = b.batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["name"]);
    }
    let rows: usize = batches.iter().map(|b| b.batch.num_rows()).sum();
    assert_eq!(rows, 20);
    let first = strings(&batches[0], 0);
    assert_eq!(first.value(1), "name-1");

    let both = projecting(100, &["name", "id"]);
    let batches = read_fresh(&both, &item);
    assert_eq!(batches[0].batch.schema(), id_name_schema());
    assert_eq!(ids(&batches), (0..20).collect::<Vec<_>>());
}

#[test]
fn empty_projection_still_counts_rows() {
    let (_dir, item) = id_name_file(20, 8);
    let none = projecting(100, &[]);
    let batches = read_fresh(&none, &item);
    assert_eq!(
        shape(&batches),
        vec![
            (0, 8, Some((1, 8))),
            (8, 8, Some((2, 16))),
            (16, 4, Some((3, 20)))
        ]
    );
    assert!(batches.iter().all(|b| b.batch.num_columns() == 0));
}

#[test]
fn unknown_projected_column_is_a_permanent_schema_error() {
    let (_dir, item) = id_name_file(5, 8);
    let r = projecting(100, &["id", "amount"]);
    let err = open_err(&r, local(), &item);
    assert!(matches!(err, PfError::Schema { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Permanent);
    let text = err.to_string();
    assert!(
        text.contains("`amount`") && text.contains("id, name"),
        "{text}"
    );
}

#[test]
fn resumes_after_finished_row_groups() {
    let (_dir, item) = id_name_file(25, 10);
    let r = reader(6);
    let batches = read_all(&r, local(), &item, &checkpoint(1, 10)).unwrap();
    assert_eq!(ids(&batches), (10..25).collect::<Vec<_>>());
    assert_eq!(
        shape(&batches),
        vec![
            (10, 6, None),
            (16, 4, Some((2, 20))),
            (20, 5, Some((3, 25))),
        ]
    );
    // A resume point taken from a full read leads to the same rows.
    let full = read_fresh(&r, &item);
    let point = full.iter().filter_map(|b| b.resume).nth(1).unwrap();
    let rest = read_all(
        &r,
        local(),
        &item,
        &checkpoint(point.position, point.next_row),
    )
    .unwrap();
    assert_eq!(ids(&rest), (20..25).collect::<Vec<_>>());
    // next_row 0 is accepted as "not recorded".
    let rest = read_all(&r, local(), &item, &checkpoint(2, 0)).unwrap();
    assert_eq!(rest[0].first_row, 20);
    // Everything done: nothing to read.
    assert!(
        read_all(&r, local(), &item, &checkpoint(3, 25))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn checkpoints_that_do_not_fit_the_file_are_permanent() {
    let (_dir, item) = id_name_file(25, 10);
    for cp in [checkpoint(1, 7), checkpoint(4, 0), checkpoint(u64::MAX, 1)] {
        let err = reader(6).open(local(), &item, &cp).err().unwrap();
        assert!(
            matches!(err, PfError::InvalidData { .. }),
            "{cp:?}: {err:?}"
        );
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(err.to_string().contains("changed"), "{err}");
    }
}

#[test]
fn file_without_rows_yields_nothing() {
    let (_dir, item) = temp_file("empty.parquet", id_name_schema(), &[], props(10));
    let batches = read_fresh(&reader(10), &item);
    assert!(batches.is_empty());
    // Projection is still checked against the schema.
    let r = projecting(10, &["name"]);
    assert!(
        read_all(&r, local(), &item, &Checkpoint::default())
            .unwrap()
            .is_empty()
    );
}

/// Rows 0..3, an empty row group, rows 3..5.
fn write_with_empty_row_group(dir: &Path) -> WorkItem {
    let path = dir.join("gap.parquet");
    let file = fs::File::create(&path).unwrap();
    let schema = id_name_schema();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), None).unwrap();
    writer.write(&id_name_batch(0, 3)).unwrap();
    let (mut file_writer, factory) = writer.into_serialized_writer().unwrap();

    let mut append = |batch: Option<RecordBatch>, index: usize| {
        let mut writers = factory.create_column_writers(index).unwrap();
        if let Some(batch) = batch {
            let mut leaves = Vec::new();
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                leaves.extend(compute_leaves(field, column).unwrap());
            }
            for (writer, leaf) in writers.iter_mut().zip(&leaves) {
                writer.write(leaf).unwrap();
            }
        }
        let mut group = file_writer.next_row_group().unwrap();
        for writer in writers {
            writer
                .close()
                .unwrap()
                .append_to_row_group(&mut group)
                .unwrap();
        }
        group.close().unwrap();
    };
    append(None, 1);
    append(Some(id_name_batch(3, 2)), 2);
    file_writer.close().unwrap();
    item_for(&path)
}

#[test]
fn empty_row_groups_yield_nothing_but_count_as_done() {
    let dir = tempfile::tempdir().unwrap();
    let item = write_with_empty_row_group(dir.path());
    let batches = read_fresh(&reader(10), &item);
    assert_eq!(
        shape(&batches),
        vec![(0, 3, Some((1, 3))), (3, 2, Some((3, 5)))]
    );
    assert_eq!(ids(&batches), (0..5).collect::<Vec<_>>());
    // Resuming at or after the empty row group gives the same tail.
    for cp in [checkpoint(1, 3), checkpoint(2, 3)] {
        let rest = read_all(&reader(10), local(), &item, &cp).unwrap();
        assert_eq!(shape(&rest), vec![(3, 2, Some((3, 5)))], "{cp:?}");
    }
}

#[test]
fn nulls_survive() {
    let batches = read_id_name(30, 16, 100);
    let nulls: usize = batches
        .iter()
        .map(|b| b.batch.column_by_name("name").unwrap().null_count())
        .sum();
    assert_eq!(nulls, 5, "rows 0, 7, 14, 21 and 28");
    let names = strings(&batches[0], 1);
    assert!(names.is_null(7) && names.is_valid(8));
}

fn nested_batch() -> RecordBatch {
    let inner = Fields::from(vec![
        Field::new("code", DataType::Int32, true),
        Field::new("label", DataType::Utf8, true),
    ]);
    let detail = StructArray::try_new(
        inner.clone(),
        vec![
            Arc::new(Int32Array::from(vec![Some(1), None, Some(3), Some(4)])) as ArrayRef,
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some("b"),
                None,
                Some("d"),
            ])),
        ],
        Some(vec![true, true, true, false].into()),
    )
    .unwrap();
    let tags = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        None,
        Some(vec![]),
        Some(vec![Some(4), None, Some(6)]),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("detail", DataType::Struct(inner), true),
        Field::new("tags", tags.data_type().clone(), true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![0, 1, 2, 3])),
            Arc::new(detail),
            Arc::new(tags),
        ],
    )
    .unwrap()
}

#[test]
fn nested_struct_and_list_columns_round_trip() {
    let batch = nested_batch();
    let (_dir, item) = one_batch_file("nested.parquet", &batch, 2);
    let batches = read_fresh(&reader(100), &item);
    assert_eq!(batches.len(), 2);
    assert_eq!(concat(&batches), batch);

    // A nested column is projected by its top-level name, with all its leaves, and its
    // chunks go through the read-ahead windows.
    let r = projecting(100, &["tags", "detail"]).with_io(tiny_io());
    let batches = read_fresh(&r, &item);
    assert_eq!(batches[0].batch.num_columns(), 2);
    assert_eq!(
        batches[0].batch.column(0).as_ref(),
        batch.column(1).slice(0, 2).as_ref()
    );
    assert_eq!(
        batches[1].batch.column(1).as_ref(),
        batch.column(2).slice(2, 2).as_ref()
    );
}

#[test]
fn dictionary_columns_keep_their_arrow_type() {
    let dict: DictionaryArray<Int32Type> = vec![
        Some("red"),
        Some("green"),
        None,
        Some("red"),
        Some("blue"),
        Some("green"),
    ]
    .into_iter()
    .collect();
    let schema = Arc::new(Schema::new(vec![Field::new(
        "color",
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        true,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(dict)]).unwrap();
    let (_dir, item) = one_batch_file("dict.parquet", &batch, 4);
    let batches = read_fresh(&reader(100), &item);
    assert_eq!(batches.len(), 2);
    for b in &batches {
        assert_eq!(b.batch.schema(), schema);
    }
    let read = concat(&batches);
    let read = read
        .column(0)
        .as_any()
        .downcast_ref::<DictionaryArray<Int32Type>>()
        .unwrap();
    let values = read.downcast_dict::<StringArray>().unwrap();
    let got: Vec<Option<&str>> = values.into_iter().collect();
    assert_eq!(
        got,
        [
            Some("red"),
            Some("green"),
            None,
            Some("red"),
            Some("blue"),
            Some("green")
        ]
    );
}

fn assert_permanent_invalid(err: &PfError) {
    assert!(
        matches!(
            err,
            PfError::InvalidData {
                format: "parquet",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
}

#[test]
fn truncated_file_is_permanent_invalid_data() {
    let (dir, item) = id_name_file(100, 10);
    let path = dir.path().join("a.parquet");
    let bytes = fs::read(&path).unwrap();
    for cut in [1, 4, 10, bytes.len() / 2, bytes.len() - 8] {
        let short = dir.path().join(format!("cut{cut}.parquet"));
        fs::write(&short, &bytes[..bytes.len() - cut]).unwrap();
        let err = open_err(&reader(10), local(), &item_for(&short));
        assert_permanent_invalid(&err);
        assert!(
            err.to_string().contains(&format!("cut{cut}.parquet")),
            "{err}"
        );
    }
    // A listed size larger than the object: it shrank after discovery.
    let stale = WorkItem {
        size: Some(bytes.len() as u64 + 100),
        ..item.clone()
    };
    let err = open_err(&reader(10), local(), &stale);
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
}

#[test]
fn non_parquet_files_are_permanent_invalid_data() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("a.parquet");
    fs::write(
        &json,
        "{\"id\":1,\"name\":\"x\"}\n{\"id\":2,\"name\":\"y\"}\n",
    )
    .unwrap();
    let err = open_err(&reader(10), local(), &item_for(&json));
    assert_permanent_invalid(&err);

    let tiny = dir.path().join("tiny.parquet");
    fs::write(&tiny, "PAR1").unwrap();
    let err = open_err(&reader(10), local(), &item_for(&tiny));
    assert_permanent_invalid(&err);

    // A footer declaring a huge metadata block is refused before it is fetched (a sparse
    // file, so the test costs no disk).
    let huge = dir.path().join("huge.parquet");
    let file = fs::File::create(&huge).unwrap();
    let len = 100 * 1024 * 1024;
    file.set_len(len).unwrap();
    let mut footer = (80u32 * 1024 * 1024).to_le_bytes().to_vec();
    footer.extend_from_slice(b"PAR1");
    std::os::unix::fs::FileExt::write_all_at(&file, &footer, len - 8).unwrap();
    let source = FlakySource::new(usize::MAX);
    let err = open_err(&reader(10), source.clone(), &item_for(&huge));
    assert_permanent_invalid(&err);
    assert!(err.to_string().contains("limit"), "{err}");
    assert_eq!(source.calls.load(Ordering::SeqCst), 1);

    // Magic at both ends, garbage in between.
    let fake = dir.path().join("fake.parquet");
    let mut bytes = b"PAR1".to_vec();
    bytes.extend_from_slice(&[0xAB; 64]);
    bytes.extend_from_slice(&40u32.to_le_bytes());
    bytes.extend_from_slice(b"PAR1");
    fs::write(&fake, &bytes).unwrap();
    let err = open_err(&reader(10), local(), &item_for(&fake));
    assert_permanent_invalid(&err);
}

#[test]
fn missing_object_is_permanent_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut item = item_for(&{
        let p = dir.path().join("gone.parquet");
        fs::write(&p, "x").unwrap();
        p
    });
    fs::remove_file(dir.path().join("gone.parquet")).unwrap();
    item.size = None;
    let err = open_err(&reader(10), local(), &item);
    assert!(matches!(err, PfError::NotFound { .. }), "{err:?}");
}

/// Corrupting any single stretch of a file must end in data or a permanent error,
/// never a panic or a transient error that would be retried forever.
#[test]
fn corrupted_bytes_never_escape_as_panics_or_transient_errors() {
    let dir = tempfile::tempdir().unwrap();
    let batch = nested_batch();
    write(
        dir.path(),
        "a.parquet",
        batch.schema(),
        &[batch.clone(), batch.clone(), batch],
        props(5),
    );
    let bytes = fs::read(dir.path().join("a.parquet")).unwrap();
    let path = dir.path().join("bad.parquet");
    let r = reader(3).with_io(tiny_io());
    let check = |at: usize, err: PfError| {
        assert_eq!(err.class(), ErrorClass::Permanent, "at {at}: {err}");
        assert!(
            !err.to_string().contains("panicked"),
            "at {at}: the decoder panicked: {err}"
        );
    };
    let (mut open_errors, mut stream_errors) = (0, 0);
    for at in (0..bytes.len()).step_by(7) {
        let mut bad = bytes.clone();
        for b in bad.iter_mut().skip(at).take(3) {
            *b ^= 0x5A;
        }
        fs::write(&path, &bad).unwrap();
        match r.open(local(), &item_for(&path), &Checkpoint::default()) {
            Err(err) => {
                open_errors += 1;
                check(at, err);
            }
            Ok(stream) => {
                if let Err(err) = stream.collect::<Result<Vec<_>>>() {
                    stream_errors += 1;
                    check(at, err);
                }
            }
        }
    }
    // Both the footer and the pages were hit.
    assert!(
        open_errors > 0 && stream_errors > 0,
        "{open_errors} {stream_errors}"
    );
}

#[test]
fn decoder_panics_become_messages() {
    let err = guarded(|| -> u8 { panic!("bad page {}", 3) }).unwrap_err();
    assert_eq!(err, "the Parquet decoder panicked: bad page 3");
    assert_eq!(guarded(|| 7), Ok(7));
}

/// The length in bytes of the ULEB128 varint at `at`.
fn varint_len(bytes: &[u8], at: usize) -> usize {
    1 + bytes[at..].iter().take_while(|b| *b & 0x80 != 0).count()
}

/// Overwrites the `len`-byte varint at `at` with the zigzag encoding of `value`, padded to
/// the same length with continuation bytes (thrift's compact decoder accepts them), so
/// that no other offset of the file moves.
fn overwrite_i32(bytes: &mut [u8], at: usize, len: usize, value: i32) {
    let mut zigzag = u64::from(((value << 1) ^ (value >> 31)) as u32);
    for i in 0..len {
        let more = if i + 1 < len { 0x80 } else { 0 };
        bytes[at + i] = (zigzag & 0x7f) as u8 | more;
        zigzag >>= 7;
    }
    assert_eq!(zigzag, 0, "{value} does not fit {len} varint bytes");
}

/// Where the two size fields of the page header at `at` are: `(offset, length)` of the
/// uncompressed and of the compressed size's varint. A page header opens with three i32
/// fields in compact thrift (field header 0x15 each): type, uncompressed size,
/// compressed size.
fn page_size_fields(bytes: &[u8], at: usize) -> [(usize, usize); 2] {
    let mut pos = at;
    let mut fields = [(0, 0); 3];
    for field in &mut fields {
        assert_eq!(bytes[pos], 0x15, "not a page header at {at}");
        let len = varint_len(bytes, pos + 1);
        *field = (pos + 1, len);
        pos += 1 + len;
    }
    [fields[1], fields[2]]
}

/// A page header that lies about its sizes (negative, zero, far past the file, or a
/// decompressed size far beyond the data) is a permanent invalid-data error (or, where the
/// codec does not need the size, the true value): never an abort, a panic out of the
/// reader or a transient error retried forever. The page holds one
/// 3 MB value, so each size field is a 4-byte varint: room for any size in ±2^27 in place.
#[test]
fn crafted_page_header_sizes_are_permanent_errors() {
    use parquet::basic::Compression as Codec;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    // Incompressible, so that the compressed size takes 4 varint bytes too.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let value: String = (0..3 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'!' + (state % 90) as u8)
        })
        .collect();
    let schema = Arc::new(Schema::new(vec![Field::new("blob", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(vec![value]))],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut refused, mut accepted) = (0, Vec::new());
    for (codec, dictionary) in [
        (Codec::UNCOMPRESSED, false),
        (Codec::SNAPPY, false),
        (Codec::ZSTD(Default::default()), false),
        (Codec::SNAPPY, true),
    ] {
        let properties = WriterProperties::builder()
            .set_compression(codec)
            .set_dictionary_enabled(dictionary)
            .build();
        let name = format!("{codec:?}-{dictionary}.parquet");
        let item = write(
            dir.path(),
            &name,
            schema.clone(),
            std::slice::from_ref(&batch),
            properties,
        );
        let path = dir.path().join(&name);
        let clean = fs::read(&path).unwrap();
        assert_eq!(read_fresh(&reader(10), &item)[0].batch.num_rows(), 1);
        let chunk = SerializedFileReader::new(fs::File::open(&path).unwrap())
            .unwrap()
            .metadata()
            .row_group(0)
            .column(0)
            .clone();
        let first_page = chunk
            .dictionary_page_offset()
            .unwrap_or(chunk.data_page_offset()) as usize;
        let fields = page_size_fields(&clean, first_page);
        for (field, (at, len)) in ["uncompressed", "compressed"].into_iter().zip(fields) {
            assert_eq!(len, 4, "{name}: the {field} size is not a 4-byte varint");
            for lie in [-1, i32::MIN >> 4, 0, 7, (1 << 27) - 1] {
                let mut bad = clean.clone();
                overwrite_i32(&mut bad, at, len, lie);
                let crafted = dir.path().join("crafted.parquet");
                fs::write(&crafted, &bad).unwrap();
                let outcome = read_all(
                    &reader(10),
                    local(),
                    &item_for(&crafted),
                    &Checkpoint::default(),
                );
                let err = match outcome {
                    Err(err) => err,
                    Ok(batches) => {
                        // A decompressed size the codec does not need (an uncompressed
                        // page, or snappy's own length header) may be ignored, but then
                        // the true value must come out.
                        assert_eq!(
                            field, "uncompressed",
                            "{name}: {field} size {lie} was accepted"
                        );
                        assert_eq!(concat(&batches), batch, "{name}: {field} size {lie}");
                        accepted.push(format!("{name} {field}={lie}"));
                        continue;
                    }
                };
                assert_permanent_invalid(&err);
                assert!(
                    err.to_string().contains("crafted.parquet"),
                    "{name}: {field} size {lie}: {err}"
                );
                refused += 1;
            }
        }
    }
    // Every lie about a compressed size was refused (4 files × 5 lies), and more.
    eprintln!("refused {refused}; accepted with the true value: {accepted:?}");
    assert!(refused > 4 * 5, "{refused} refused; accepted: {accepted:?}");
}

#[test]
fn the_window_setting_sets_the_budget_and_the_largest_window() {
    use crate::config::ParquetConfig;
    let io = |window_mib| {
        ParquetConfig {
            window_mib,
            ..ParquetConfig::default()
        }
        .build(1024)
        .io
    };
    assert_eq!((io(8).window_budget, io(8).max_window), (8 << 20, 4 << 20));
    assert_eq!(ParquetConfig::default().build(1024).io, io(5));
    assert_eq!(ParquetConfig::default().build(1024).io, IoTuning::default());
    assert_eq!((io(4).window_budget, io(4).max_window), (4 << 20, 2 << 20));
    let err = ParquetConfig {
        window_mib: 0,
        ..ParquetConfig::default()
    }
    .validate()
    .unwrap_err();
    assert!(
        err.to_string().contains("reader.parquet.window_mib"),
        "{err}"
    );
}
