//! The embedded pipeline end to end through the real binaries:
//! `pf-discoverer --path DIR | pf-worker --input stdin`.

use std::path::Path;
use std::process::Output;

use pf_error::ErrorClass;
use pf_tests::{
    assert_accounted, assert_exit, bin, discover, discover_and_process, generate_data,
    read_summary, run_with_stdin,
};
use pf_types::{Compression, FileFormat, RunSummary};

fn process_dir(dir: &Path, summary: &Path, dlq: &Path) -> Output {
    discover_and_process(
        &["--path", dir.to_str().unwrap(), "--recursive"],
        &[
            "--input",
            "stdin",
            "--destination",
            "stats",
            "--threads",
            "4",
            "--summary-json",
            summary.to_str().unwrap(),
            "--dlq-dir",
            dlq.to_str().unwrap(),
        ],
    )
}

/// Runs `pf-worker args --summary-json summary` with `input` on stdin.
fn worker_with_summary(args: &[&str], summary: &Path, input: &[u8]) -> Output {
    let mut args = args.to_vec();
    args.extend(["--summary-json", summary.to_str().unwrap()]);
    run_with_stdin(&bin("pf-worker"), &args, input)
}

/// Generates `rows` transactions over `files` files in a fresh directory and runs the
/// pipeline over them, which must exit 0: the directory, the worker's output and its
/// summary.
fn process_generated(
    rows: u64,
    files: usize,
    format: FileFormat,
    compression: Compression,
) -> (tempfile::TempDir, Output, RunSummary) {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    generate_data(&data, rows, files, format, compression);
    let summary_path = work.path().join("summary.json");
    let out = process_dir(&data, &summary_path, &work.path().join("dlq"));
    assert_exit(&out, 0);
    let s = read_summary(&summary_path);
    (work, out, s)
}

#[test]
fn parquet_files_are_counted_exactly() {
    let (work, out, s) = process_generated(200_000, 8, FileFormat::Parquet, Compression::None);
    assert_eq!(s.files_total, 8);
    assert_eq!(s.files_completed, 8);
    assert_eq!(s.totals.rows_read, 200_000);
    assert_eq!(s.totals.rows_indexed, 200_000);
    assert!(s.totals.bytes_read > 0);
    assert_accounted(&s);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("200000 read"),
        "human summary on stderr: {stderr}"
    );
    assert!(
        !work.path().join("dlq").exists(),
        "no record DLQ for a clean run"
    );
}

#[test]
fn gzipped_ndjson_files_are_counted_exactly() {
    let (_work, _, s) = process_generated(100_000, 4, FileFormat::Ndjson, Compression::Gzip);
    assert_eq!(
        (s.files_completed, s.totals.rows_read, s.totals.rows_indexed),
        (4, 100_000, 100_000)
    );
    assert_accounted(&s);
}

#[test]
fn bad_files_fail_alone_and_bad_records_go_to_the_record_dlq() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    generate_data(&data, 30_000, 3, FileFormat::Parquet, Compression::None);
    // A truncated Parquet file: its footer is gone.
    let good = std::fs::read(data.join("part-00000.parquet")).unwrap();
    std::fs::write(data.join("truncated.parquet"), &good[..good.len() / 2]).unwrap();
    // An NDJSON file with 3 malformed lines among 10 good ones.
    let mut lines = Vec::new();
    for i in 0..13 {
        lines.push(match i {
            2 => "{\"id\": 2, \"amount\": ".to_owned(),
            6 => "not json at all".to_owned(),
            11 => "{\"id\": 11, \"amount\": 1.5".to_owned(),
            _ => format!("{{\"id\": {i}, \"amount\": {i}.5}}"),
        });
    }
    std::fs::write(data.join("events.ndjson"), lines.join("\n") + "\n").unwrap();

    let summary_path = work.path().join("summary.json");
    let dlq = work.path().join("dlq");
    let out = process_dir(&data, &summary_path, &dlq);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code says some files failed: {stderr}"
    );
    let s = read_summary(&summary_path);
    assert_eq!(s.files_total, 5);
    assert_eq!(s.files_completed, 4);
    assert_eq!(s.files_failed, 1);
    assert_eq!(s.failures.len(), 1);
    assert!(s.failures[0].uri.ends_with("truncated.parquet"));
    assert_eq!(s.failures[0].class, ErrorClass::Permanent);
    assert_eq!(s.totals.rows_indexed, 30_000 + 10);
    assert_eq!(s.totals.rows_failed, 3);
    assert_eq!(s.totals.rows_read, 30_000 + 13);
    assert_accounted(&s);
    assert!(
        stderr.contains("truncated.parquet"),
        "failure reported: {stderr}"
    );

    let dlq_files: Vec<_> = std::fs::read_dir(&dlq)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dlq_files.len(), 1);
    let text = std::fs::read_to_string(&dlq_files[0]).unwrap();
    let mut bad_lines: Vec<u64> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["uri"].as_str().unwrap().ends_with("events.ndjson"));
            assert_eq!(v["class"], "record");
            assert_eq!(v["stage"], "read");
            assert!(!v["error"].as_str().unwrap().is_empty());
            assert!(v["record"].is_string());
            v["line"].as_u64().unwrap()
        })
        .collect();
    bad_lines.sort_unstable();
    assert_eq!(bad_lines, [3, 7, 12]);
}

#[test]
fn invalid_work_item_lines_are_skipped_and_reported() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    generate_data(&data, 1_000, 1, FileFormat::Parquet, Compression::None);
    let uri = format!("file://{}", data.join("part-00000.parquet").display());
    let input =
        format!("{{\"uri\":\"{uri}\"}}\nthis is not a work item\n{{\"uri\":\"/x/y.csv\"}}\n");
    let summary_path = work.path().join("s.json");
    let out = worker_with_summary(
        &["--input", "stdin", "--threads", "2"],
        &summary_path,
        input.as_bytes(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("line=2") && stderr.contains("line=3"),
        "{stderr}"
    );
    assert_eq!(read_summary(&summary_path).totals.rows_indexed, 1_000);
}

#[test]
fn a_local_file_rewritten_after_discovery_fails_permanently() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let file = data.join("a.ndjson");
    std::fs::write(&file, "{\"a\":1}\n").unwrap();
    let listing = discover(&["--path", data.to_str().unwrap()]);
    // Rewritten (new size and time) between discovery and processing.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&file, "{\"a\":1}\n{\"a\":2}\n").unwrap();
    let summary = dir.path().join("s.json");
    let dlq = dir.path().join("dlq");
    let out = worker_with_summary(
        &["--destination", "stats", "--dlq-dir", dlq.to_str().unwrap()],
        &summary,
        &listing,
    );
    assert_exit(&out, 2);
    let s = read_summary(&summary);
    assert_eq!(s.files_failed, 1);
    assert_eq!(s.totals.rows_read, 0);
    assert!(
        s.failures[0]
            .error
            .contains("object changed since discovery"),
        "{:?}",
        s.failures
    );
}
