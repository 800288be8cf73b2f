//! The Parquet lakehouse destination through the binaries: the shipped fraud rules over
//! generated transactions into date-partitioned ZSTD Parquet, read back with the
//! `parquet` crate; a second run leaves the data set unchanged; a worker killed with -9
//! mid-file and resumed by another (Valkey checkpoints) leaves no duplicate and no
//! partial file.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use arrow::array::AsArray;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use pf_coordinator::{ValkeyConfig, ValkeyMetadataStore};
use pf_datagen::{GenOptions, generate};
use pf_test_services::{Moto, Valkey};
use pf_tests::{
    bin, discover, output_with_stdin, read_summary, run_with_stdin, shipped_fraud_config,
    spawn_with_stdin, wait_until,
};
use pf_traits::MetadataStore;
use pf_types::{FileFormat, WorkItem};

/// What a data set directory holds.
#[derive(Debug, PartialEq)]
struct DataSet {
    /// Relative path of every `*.parquet` file → its rows.
    files: BTreeMap<String, usize>,
    /// Every `transaction_id`, once per row.
    ids: Vec<String>,
    /// Rows with `is_fraud` true.
    fraud_rows: u64,
    /// Files that are not `*.parquet` (temporary leftovers).
    other_files: Vec<String>,
}

fn read_data_set(root: &Path) -> DataSet {
    let mut set = DataSet {
        files: BTreeMap::new(),
        ids: Vec::new(),
        fraud_rows: 0,
        other_files: Vec::new(),
    };
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|x| x != "parquet") {
                set.other_files.push(rel);
                continue;
            }
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
                    .unwrap();
            let meta = builder.metadata().clone();
            for rg in meta.row_groups() {
                for col in rg.columns() {
                    assert!(
                        matches!(col.compression(), Compression::ZSTD(_)),
                        "{rel}: {:?}",
                        col.compression()
                    );
                }
            }
            let mut rows = 0;
            for batch in builder.build().unwrap() {
                let batch = batch.unwrap();
                rows += batch.num_rows();
                for name in ["fraud_score", "fraud_rules"] {
                    assert!(batch.column_by_name(name).is_some(), "{rel} has {name}");
                }
                let ids = batch
                    .column_by_name("transaction_id")
                    .unwrap()
                    .as_string::<i32>();
                set.ids.extend(ids.iter().map(|v| v.unwrap().to_owned()));
                let fraud = batch.column_by_name("is_fraud").unwrap().as_boolean();
                set.fraud_rows += fraud.true_count() as u64;
            }
            set.files.insert(rel, rows);
        }
    }
    set
}

/// `rows` generated rows over `files` Parquet files (row groups of 2,000) in `work/data`,
/// and the shipped fraud rules plus `extra` YAML in `work/worker.yaml`: the path of the
/// configuration and the work items of the data.
fn scored_inputs(work: &Path, rows: u64, files: usize, extra: &str) -> (PathBuf, Vec<u8>) {
    let data = work.join("data");
    generate(&GenOptions {
        files,
        format: FileFormat::Parquet,
        seed: 13,
        row_group_rows: 2_000,
        ..GenOptions::new(data.clone(), rows)
    })
    .expect("generate");
    let cfg = shipped_fraud_config(work, extra);
    (cfg, discover(&["--path", data.to_str().unwrap()]))
}

#[test]
fn scored_rows_land_once_in_date_partitions_and_a_second_run_changes_nothing() {
    const ROWS: u64 = 20_000;
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("lake");
    let alerts = work.path().join("alerts");
    let alerts_yaml = format!(
        "alerts:\n  destination: parquet\n  dir: {}\n",
        alerts.display()
    );
    let (cfg, items) = scored_inputs(work.path(), ROWS, 4, &alerts_yaml);
    let run = |summary: &Path| {
        let out = run_with_stdin(
            &bin("pf-worker"),
            &[
                "--config",
                cfg.to_str().unwrap(),
                "--input",
                "stdin",
                "--destination",
                "parquet",
                "--parquet-dir",
                out.to_str().unwrap(),
                "--threads",
                "2",
                "--summary-json",
                summary.to_str().unwrap(),
            ],
            &items,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        read_summary(summary)
    };
    let first = run(&work.path().join("first.json"));
    assert_eq!(first.totals.rows_indexed, ROWS);
    let set = read_data_set(&out);
    assert_eq!(set.ids.len() as u64, ROWS, "every row once");
    assert_eq!(set.ids.iter().collect::<HashSet<_>>().len() as u64, ROWS);
    assert_eq!(set.fraud_rows, first.totals.fraud_rows);
    assert!(set.fraud_rows > 0, "the rules flag some rows");
    assert!(set.other_files.is_empty(), "{:?}", set.other_files);
    assert!(
        set.files.keys().all(|f| {
            let (partition, _) = f.split_once('/').unwrap();
            partition.len() == "date=2026-01-01".len() && partition.starts_with("date=20")
        }),
        "{:?}",
        set.files.keys()
    );
    assert!(
        set.files
            .keys()
            .map(|f| f.split('/').next())
            .collect::<HashSet<_>>()
            .len()
            > 1,
        "the data spans several days"
    );
    let alert_files = std::fs::read_dir(&alerts).unwrap().count();
    assert!(alert_files > 0, "window alerts went to their own data set");

    // The same inputs again (a retried job): the same files, the same rows.
    let second = run(&work.path().join("second.json"));
    assert_eq!(second.totals.rows_indexed, ROWS);
    assert_eq!(read_data_set(&out), set);
}

/// An `s3://` data set (moto): every file is uploaded whole, nothing stays in the
/// staging directory, and a second run writes the same objects with the same rows.
#[test]
fn an_s3_data_set_is_uploaded_whole_and_a_second_run_changes_nothing() {
    const ROWS: u64 = 20_000;
    let work = tempfile::tempdir().unwrap();
    let staging = work.path().join("staging");
    let staging_yaml = format!(
        "indexer:\n  parquet:\n    staging_dir: {}\n",
        staging.display()
    );
    let (cfg, items) = scored_inputs(work.path(), ROWS, 4, &staging_yaml);
    let moto = Moto::start();
    moto.create_bucket("lake");
    let run = |name: &str| {
        let summary = work.path().join(format!("{name}.json"));
        let mut cmd = Command::new(bin("pf-worker"));
        cmd.envs(moto.env())
            .args(["--config", cfg.to_str().unwrap(), "--input", "stdin"])
            .args([
                "--destination",
                "parquet",
                "--parquet-dir",
                "s3://lake/scored",
            ])
            .args(["--s3-endpoint", &moto.endpoint(), "--threads", "2"])
            .arg("--summary-json")
            .arg(&summary);
        let out = output_with_stdin(&mut cmd, &items);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let local = work.path().join(name);
        let objects = moto.download_prefix("lake", "scored/", &local);
        (read_summary(&summary), read_data_set(&local), objects)
    };
    let (first, set, objects) = run("first");
    assert_eq!(first.totals.rows_indexed, ROWS);
    assert_eq!(set.ids.len() as u64, ROWS, "every row once");
    assert_eq!(set.ids.iter().collect::<HashSet<_>>().len() as u64, ROWS);
    assert_eq!(set.fraud_rows, first.totals.fraud_rows);
    assert!(set.other_files.is_empty(), "{:?}", set.other_files);
    assert_eq!(objects, set.files.len());
    assert!(
        set.files.keys().all(|f| f.starts_with("date=20")),
        "{:?}",
        set.files.keys()
    );
    let staged: Vec<_> = walk(&staging);
    assert!(staged.is_empty(), "staging keeps {staged:?}");

    // The same inputs again: the same objects, overwritten with the same rows.
    let (second, again, objects_again) = run("second");
    assert_eq!(second.totals.rows_indexed, ROWS);
    assert_eq!(objects_again, objects);
    assert_eq!(again, set);
}

/// Every file under `dir` (none when it does not exist).
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn a_worker_killed_mid_file_is_resumed_without_duplicate_or_partial_file() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("lake");
    kill_mid_file_and_resume(work.path(), out.to_str().unwrap(), "", &|_| {}, &|_| {
        read_data_set(&out)
    });
}

/// The same against an `s3://` data set (moto): only whole uploaded objects are ever
/// visible, B overwrites what A uploaded after its last checkpoint with the same rows,
/// and the shared staging directory keeps nothing of A's killed part.
#[test]
fn a_worker_killed_mid_file_with_an_s3_data_set_is_resumed_without_duplicate_or_partial_object() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let work = tempfile::tempdir().unwrap();
    let staging = work.path().join("staging");
    let setup = format!("    staging_dir: {}\n", staging.display());
    let endpoint = moto.endpoint();
    kill_mid_file_and_resume(
        work.path(),
        "s3://lake/scored",
        &setup,
        &|cmd| {
            cmd.envs(moto.env()).args(["--s3-endpoint", &endpoint]);
        },
        &|name| {
            let local = work.path().join(name);
            moto.download_prefix("lake", "scored/", &local);
            let set = read_data_set(&local);
            assert!(
                set.other_files.is_empty(),
                "{name}: an S3 data set never shows a partial object: {:?}",
                set.other_files
            );
            set
        },
    );
    let staged = walk(&staging);
    assert!(staged.is_empty(), "staging keeps {staged:?}");
}

/// Worker A (Valkey checkpoints, parts of ~256 KiB) is killed with -9 once it has
/// checkpointed 10,000 rows of a 300,000-row file; worker B resumes it. `parquet_setup`
/// goes under `indexer.parquet` in the configuration, `prepare` adds to both workers' command
/// lines, `read(name)` reads the data set at `parquet_dir` back.
fn kill_mid_file_and_resume(
    work: &Path,
    parquet_dir: &str,
    parquet_setup: &str,
    prepare: &dyn Fn(&mut Command),
    read: &dyn Fn(&str) -> DataSet,
) {
    const ROWS: u64 = 300_000;
    // Parts of ~256 KiB: a commit (and a checkpoint) every few row groups.
    let (cfg, items) = scored_inputs(
        work,
        ROWS,
        1,
        &format!(
            "coordinator:\n  valkey:\n    stale_after_secs: 2\nindexer:\n  parquet:\n    target_file_bytes: 262144\n{parquet_setup}"
        ),
    );
    let valkey = Valkey::start();
    let item = WorkItem::parse_message(std::str::from_utf8(&items).unwrap().trim())
        .unwrap()
        .remove(0);
    let worker = |who: &str| {
        let mut cmd = Command::new(bin("pf-worker"));
        cmd.args(["--config", cfg.to_str().unwrap(), "--input", "stdin"])
            .args(["--destination", "parquet", "--parquet-dir", parquet_dir])
            .args(["--threads", "1", "--batch-size", "2000", "--worker-id", who])
            .args(["--valkey-url", &valkey.url()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.join(format!("{who}.err"))).unwrap());
        prepare(&mut cmd);
        spawn_with_stdin(&mut cmd, &items)
    };
    let store = ValkeyMetadataStore::connect(&ValkeyConfig::for_url(valkey.url())).unwrap();
    let checkpoint = || {
        store
            .get(&item)
            .unwrap()
            .and_then(|r| r.checkpoint)
            .map(|c| c.next_row)
    };

    let mut a = worker("a");
    wait_until("a checkpoint of A past row 10,000", || {
        checkpoint().is_some_and(|row| row >= 10_000)
    });
    a.kill().expect("kill -9 worker A");
    a.wait().unwrap();
    let resume_row = checkpoint().unwrap();
    assert!(resume_row < ROWS, "A was killed mid-file");
    let after_a = read("after-a");
    assert!(
        after_a.ids.len() as u64 >= resume_row,
        "checkpointed rows are visible"
    );

    let mut b = worker("b");
    let status = b.wait().unwrap();
    let log = std::fs::read_to_string(work.join("b.err")).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("resuming from checkpoint"), "{log}");
    let set = read("after-b");
    assert_eq!(set.ids.len() as u64, ROWS, "every row once: none twice");
    assert_eq!(set.ids.iter().collect::<HashSet<_>>().len() as u64, ROWS);
    assert!(
        set.other_files.is_empty(),
        "B swept A's temporary files: {:?}",
        set.other_files
    );
    // Files A made visible before its last checkpoint are B's too, unchanged.
    for (file, rows) in &after_a.files {
        assert_eq!(set.files.get(file), Some(rows), "{file}");
    }
}
