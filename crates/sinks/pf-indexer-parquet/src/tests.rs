use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use pf_traits::{AlertSink, DocBatch, IndexerFactory};
use pf_types::{Alert, Severity, WorkItem};

use super::*;

const DAY_MICROS: i64 = 86_400_000_000;

/// `rows` records with ids from `first`, two per day starting 2024-01-01.
fn docs(first: u64, rows: usize) -> DocBatch {
    let start = 19_723 * DAY_MICROS; // 2024-01-01
    let ids: Vec<i64> = (0..rows as i64).map(|i| first as i64 + i).collect();
    let ts: Vec<i64> = ids.iter().map(|i| start + (i / 2) * DAY_MICROS).collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids)) as Arc<dyn Array>),
        (
            "timestamp",
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")) as _,
        ),
        (
            "fraud_score",
            Arc::new(Float64Array::from(vec![0.5; rows])) as _,
        ),
    ])
    .unwrap();
    DocBatch::contiguous(batch, first)
}

fn item(uri: &str) -> WorkItem {
    let mut i = WorkItem::from_uri(uri).unwrap();
    i.etag = Some("e1".into());
    i
}

fn config(dir: &Path) -> ParquetSinkConfig {
    ParquetSinkConfig {
        path: dir.display().to_string(),
        ..ParquetSinkConfig::default()
    }
}

/// Every visible `*.parquet` file under `dir` (relative path → ids), and whether any
/// temporary file is left.
fn data_set(dir: &Path) -> (BTreeMap<String, Vec<i64>>, bool) {
    let mut files = BTreeMap::new();
    let mut tmp = false;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let reader =
                    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
                        .unwrap();
                let meta = reader.metadata().clone();
                assert!(matches!(
                    meta.row_group(0).column(0).compression(),
                    Compression::ZSTD(_)
                ));
                let mut ids = Vec::new();
                for b in reader.build().unwrap() {
                    let b = b.unwrap();
                    ids.extend(
                        b.column(0)
                            .as_primitive::<Int64Type>()
                            .values()
                            .iter()
                            .copied(),
                    );
                }
                files.insert(p.strip_prefix(dir).unwrap().display().to_string(), ids);
            } else {
                tmp = true;
            }
        }
    }
    (files, tmp)
}

#[test]
fn rows_land_once_in_date_partitions_only_after_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let factory = ParquetIndexerFactory::build(&config(dir.path()), None).unwrap();
    let mut ix = factory.create().unwrap();
    let it = item("s3://b/in/a.parquet");
    ix.begin(&it);
    assert_eq!(ix.index(&it, &[docs(0, 6)]).unwrap().indexed, 6);
    // Below the target size: not durable yet, nothing visible.
    assert!(!ix.commit(&it, false).unwrap());
    assert!(data_set(dir.path()).0.is_empty());
    ix.index(&it, &[docs(6, 2)]).unwrap();
    assert!(ix.commit(&it, true).unwrap());
    let (files, tmp) = data_set(dir.path());
    assert!(!tmp, "no temporary file is left");
    let hash =
        String::from_utf8(pf_doc_json::source_hash_hex("s3://b/in/a.parquet", Some("e1")).to_vec())
            .unwrap();
    let expected: BTreeMap<String, Vec<i64>> = [
        ("2024-01-01", 0, vec![0, 1]),
        ("2024-01-02", 2, vec![2, 3]),
        ("2024-01-03", 4, vec![4, 5]),
        ("2024-01-04", 6, vec![6, 7]),
    ]
    .into_iter()
    .map(|(d, first, ids)| (format!("date={d}/{hash}-{first}.parquet"), ids))
    .collect();
    assert_eq!(files, expected);
    assert_eq!(factory.counters()[0], ("parquet_files_committed", 4));
}

#[test]
fn a_resumed_input_rewrites_the_same_files_and_an_abandoned_part_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ParquetSinkConfig {
        partition_by: None,
        target_file_bytes: 1,
        ..config(dir.path())
    };
    let factory = ParquetIndexerFactory::build(&cfg, None).unwrap();
    let it = item("/data/a.parquet");
    // The first attempt commits part 0..4 and writes 4..8 without committing.
    let mut first = factory.create().unwrap();
    first.begin(&it);
    first.index(&it, &[docs(0, 4)]).unwrap();
    assert!(first.commit(&it, false).unwrap());
    first.index(&it, &[docs(4, 4)]).unwrap();
    // Killed: nothing runs on its way out.
    std::mem::forget(first);
    let (after_crash, tmp) = data_set(dir.path());
    assert_eq!(after_crash.values().flatten().count(), 4);
    assert!(tmp, "the killed attempt left its temporary file");
    // The next holder resumes at row 4 and, say, runs twice: same names, same rows.
    for _ in 0..2 {
        let mut next = factory.create().unwrap();
        next.begin(&it);
        next.index(&it, &[docs(4, 4)]).unwrap();
        assert!(next.commit(&it, false).unwrap());
        next.index(&it, &[docs(8, 2)]).unwrap();
        assert!(next.commit(&it, true).unwrap());
    }
    let (files, tmp) = data_set(dir.path());
    assert!(
        !tmp,
        "the next holder swept the dead attempt's temporary file"
    );
    let mut ids: Vec<i64> = files.values().flatten().copied().collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
    assert_eq!(files.len(), 3);

    // An attempt that stops without a commit (failed, claim lost) leaves nothing.
    let mut failed = factory.create().unwrap();
    let other = item("/data/b.parquet");
    failed.begin(&other);
    failed.index(&other, &[docs(0, 4)]).unwrap();
    drop(failed);
    assert_eq!(data_set(dir.path()), (files, false));
}

#[test]
fn another_input_discards_an_uncommitted_part_and_a_schema_change_starts_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ParquetSinkConfig {
        partition_by: None,
        ..config(dir.path())
    };
    let factory = ParquetIndexerFactory::build(&cfg, None).unwrap();
    let mut ix = factory.create().unwrap();
    let (a, b) = (item("/data/a.ndjson"), item("/data/b.ndjson"));
    ix.index(&a, &[docs(0, 3)]).unwrap();
    // `a` failed without a commit; `b` comes next on this thread.
    ix.index(&b, &[docs(0, 2)]).unwrap();
    let wider = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![2])) as Arc<dyn Array>),
        ("note", Arc::new(StringArray::from(vec!["late field"])) as _),
    ])
    .unwrap();
    ix.index(&b, &[DocBatch::contiguous(wider, 2)]).unwrap();
    assert!(ix.commit(&b, true).unwrap());
    let (files, tmp) = data_set(dir.path());
    assert!(!tmp);
    let hash =
        String::from_utf8(pf_doc_json::source_hash_hex("/data/b.ndjson", Some("e1")).to_vec())
            .unwrap();
    let expected: BTreeMap<String, Vec<i64>> = [
        (format!("{hash}-0.parquet"), vec![0, 1]),
        (format!("{hash}-2.parquet"), vec![2]),
    ]
    .into_iter()
    .collect();
    assert_eq!(files, expected);
}

/// The error of indexing two rows with `cfg`.
fn index_error(cfg: &ParquetSinkConfig) -> PfError {
    let mut ix = ParquetIndexerFactory::build(cfg, None)
        .unwrap()
        .create()
        .unwrap();
    ix.index(&item("/a.parquet"), &[docs(0, 2)]).unwrap_err()
}

#[test]
fn a_partition_column_that_is_missing_or_not_a_time_is_a_permanent_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ParquetSinkConfig {
        partition_by: Some("fraud_score".into()),
        ..config(dir.path())
    };
    let err = index_error(&cfg);
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(
        err.to_string().contains("indexer.parquet.partition_by"),
        "{err}"
    );
    let cfg = ParquetSinkConfig {
        partition_by: Some("when".into()),
        ..config(dir.path())
    };
    let err = index_error(&cfg);
    assert!(err.to_string().contains("not a column"), "{err}");
    assert!(
        ParquetSinkConfig {
            row_group_rows: 0,
            ..cfg.clone()
        }
        .validate()
        .is_err()
    );
    // An S3 prefix is a valid path (its limits are tested with the S3 data set).
    assert!(
        ParquetSinkConfig {
            path: "s3://b/p".into(),
            ..cfg
        }
        .validate()
        .is_ok()
    );
}

#[test]
fn buffered_row_groups_stay_under_the_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ParquetSinkConfig {
        max_buffered_bytes: 4096,
        partition_by: None,
        ..config(dir.path())
    };
    let factory = ParquetIndexerFactory::build(&cfg, None).unwrap();
    let mut ix = factory.create().unwrap();
    let it = item("/a.parquet");
    for i in 0..20 {
        ix.index(&it, &[docs(i * 1000, 1000)]).unwrap();
    }
    assert!(ix.commit(&it, true).unwrap());
    let (files, _) = data_set(dir.path());
    assert_eq!(files.values().flatten().count(), 20_000);
    // Early flushes cut more row groups than the row count alone would.
    let any = files.keys().next().unwrap();
    let meta = ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(dir.path().join(any)).unwrap(),
    )
    .unwrap()
    .metadata()
    .clone();
    assert!(meta.num_row_groups() >= 1);
}

#[test]
fn alerts_are_written_whole_and_kept_when_a_write_fails() {
    let dir = tempfile::tempdir().unwrap();
    let sink =
        ParquetAlertSink::new(&dir.path().join("alerts"), "w/1", ParquetCodec::Zstd).unwrap();
    let alert = |n: u64| Alert {
        rule: "rapid_activity".into(),
        severity: Severity::Medium,
        uri: "s3://b/a.parquet".into(),
        row: n,
        key: format!("rapid_activity|acct|{n}"),
        details: serde_json::json!({"count": n}),
    };
    sink.send(&[alert(1), alert(2)]).unwrap();
    sink.flush().unwrap();
    sink.flush().unwrap(); // nothing pending: no empty file
    assert_eq!(sink.files_written(), 1);
    let (files, tmp) = {
        let mut found = Vec::new();
        let mut tmp = false;
        for day in std::fs::read_dir(dir.path().join("alerts")).unwrap() {
            let day = day.unwrap().path();
            assert!(
                day.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("date=")
            );
            for f in std::fs::read_dir(&day).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|x| x == "parquet") {
                    found.push(f);
                } else {
                    tmp = true;
                }
            }
        }
        (found, tmp)
    };
    assert!(!tmp);
    assert_eq!(files.len(), 1);
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&files[0]).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
    let keys = batches[0].column_by_name("key").unwrap().as_string::<i32>();
    assert_eq!(keys.value(1), "rapid_activity|acct|2");

    // A directory that cannot be written keeps the alerts for the next flush.
    let blocked =
        ParquetAlertSink::new(&dir.path().join("blocked"), "w", ParquetCodec::Zstd).unwrap();
    std::fs::remove_dir_all(dir.path().join("blocked")).unwrap();
    std::fs::write(dir.path().join("blocked"), b"a file, not a directory").unwrap();
    blocked.send(&[alert(3)]).unwrap();
    assert!(blocked.flush().is_err());
    std::fs::remove_file(dir.path().join("blocked")).unwrap();
    blocked.flush().unwrap();
    assert_eq!(blocked.files_written(), 1);
}

/// An `s3://` data set: files are staged locally and handed to the upload one by one at
/// the commit, under their partition path; the staging directory ends empty, also when
/// an upload fails (the error is the upload's, so the input is retried).
#[test]
fn an_s3_data_set_uploads_each_committed_file_and_leaves_no_staging_file() {
    use std::sync::Mutex;
    let staging = tempfile::tempdir().unwrap();
    let bucket = tempfile::tempdir().unwrap();
    let cfg = ParquetSinkConfig {
        path: "s3://lake/scored/".into(),
        staging_dir: Some(staging.path().display().to_string()),
        ..ParquetSinkConfig::default()
    };
    let uploaded: Arc<Mutex<Vec<String>>> = Arc::default();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let upload: UploadFile = {
        let (uploaded, fail, bucket) = (uploaded.clone(), fail.clone(), bucket.path().to_owned());
        Box::new(move |uri: &str, path: &Path| {
            if fail.load(Ordering::Relaxed) {
                return Err(PfError::Service {
                    service: "s3",
                    operation: format!("PutObject {uri}"),
                    class: ErrorClass::Transient,
                    message: "503 Slow Down".into(),
                });
            }
            let key = uri.strip_prefix("s3://lake/").expect("in the bucket");
            let dest = bucket.join(key);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(path, dest).unwrap();
            uploaded.lock().unwrap().push(uri.to_owned());
            Ok(())
        })
    };
    let factory = ParquetIndexerFactory::build(&cfg, Some(upload)).unwrap();
    let mut ix = factory.create().unwrap();
    let it = item("s3://b/in/a.parquet");
    ix.begin(&it);
    ix.index(&it, &[docs(0, 4)]).unwrap();
    assert!(ix.commit(&it, true).unwrap());
    let hash =
        String::from_utf8(pf_doc_json::source_hash_hex("s3://b/in/a.parquet", Some("e1")).to_vec())
            .unwrap();
    let mut uris = uploaded.lock().unwrap().clone();
    uris.sort();
    assert_eq!(
        uris,
        [
            format!("s3://lake/scored/date=2024-01-01/{hash}-0.parquet"),
            format!("s3://lake/scored/date=2024-01-02/{hash}-2.parquet"),
        ]
    );
    let (files, tmp) = data_set(&bucket.path().join("scored"));
    assert!(!tmp);
    assert_eq!(
        files.values().flatten().copied().collect::<Vec<_>>().len(),
        4
    );
    let (staged, tmp) = data_set(staging.path());
    assert!(staged.is_empty() && !tmp, "staging holds {staged:?}");

    // A failed upload fails the commit with the upload's error and leaves nothing staged.
    fail.store(true, Ordering::Relaxed);
    let it = item("s3://b/in/b.parquet");
    ix.begin(&it);
    ix.index(&it, &[docs(0, 4)]).unwrap();
    let err = ix.commit(&it, true).unwrap_err();
    assert!(err.is_transient(), "{err}");
    let (staged, tmp) = data_set(staging.path());
    assert!(staged.is_empty() && !tmp, "staging holds {staged:?}");
}

#[test]
fn an_s3_path_needs_an_upload_and_fits_one_put_object() {
    let cfg = ParquetSinkConfig {
        path: "s3://lake/scored".into(),
        staging_dir: Some(tempfile::tempdir().unwrap().path().display().to_string()),
        ..ParquetSinkConfig::default()
    };
    let err = ParquetIndexerFactory::build(&cfg, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("indexer.parquet.path"), "{err}");
    let too_large = ParquetSinkConfig {
        target_file_bytes: MAX_S3_FILE_BYTES + 1,
        ..cfg
    };
    let err = too_large.validate().unwrap_err().to_string();
    assert!(err.contains("indexer.parquet.target_file_bytes"), "{err}");
    assert!(
        ParquetSinkConfig {
            target_file_bytes: MAX_S3_FILE_BYTES + 1,
            ..ParquetSinkConfig::default()
        }
        .validate()
        .is_ok(),
        "a local data set has no such limit"
    );
}
