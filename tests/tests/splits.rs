//! One large file shared by threads and by workers: split into byte ranges (by the
//! worker on arrival, or by `pf-discoverer --split-size`), it is indexed exactly once,
//! with the same document ids and contents as an unsplit run, and counted as one file.
//! The destination is the `_bulk` protocol test server (pf-bulk-test-server); workers
//! share metadata through a real `valkey-server`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use pf_bulk_test_server::BulkTestServer;
use pf_datagen::{GenOptions, generate};
use pf_test_services::Valkey;
use pf_tests::{assert_accounted, bin, read_summary};

const ROWS: u64 = 300_000;

/// One Parquet file of `ROWS` rows in 15 row groups, larger than 1 MiB.
fn one_large_file(dir: &Path) {
    generate(&GenOptions {
        files: 1,
        seed: 5,
        row_group_rows: 20_000,
        ..GenOptions::new(dir.to_path_buf(), ROWS)
    })
    .expect("generate");
    let file = std::fs::read_dir(dir).unwrap().next().unwrap().unwrap();
    let size = file.metadata().unwrap().len();
    assert!(
        size > 2 << 20,
        "the file must span several 1 MiB ranges: {size} bytes"
    );
}

fn discover(data: &Path, extra: &[&str]) -> Vec<u8> {
    let out = Command::new(bin("pf-discoverer"))
        .args(["--path", data.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("run pf-discoverer");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `pf-worker` on `input` into `server`, with its summary in `work/<name>.json`.
fn index(work: &Path, name: &str, server: &BulkTestServer, args: &[&str], input: &[u8]) -> Output {
    let summary = work.join(format!("{name}.json"));
    let mut child = Command::new(bin("pf-worker"))
        .args([
            "--input",
            "stdin",
            "--destination",
            "elasticsearch",
            "--es-endpoint",
            &server.url(),
            "--summary-json",
            summary.to_str().unwrap(),
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pf-worker");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn threads_share_a_large_file_and_index_it_once_with_unsplit_ids() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    one_large_file(&data);
    let items = discover(&data, &[]);

    let whole = BulkTestServer::start().unwrap();
    index(work.path(), "whole", &whole, &["--threads", "1"], &items);
    let s = read_summary(&work.path().join("whole.json"));
    assert_eq!(
        (s.files_split, s.files_completed, s.totals.rows_read),
        (0, 1, ROWS)
    );

    let split = BulkTestServer::start().unwrap();
    let out = index(
        work.path(),
        "split",
        &split,
        &["--threads", "2", "--set", "worker.split_size_mib=1"],
        &items,
    );
    let s = read_summary(&work.path().join("split.json"));
    assert_eq!(
        (
            s.files_total,
            s.files_split,
            s.files_completed,
            s.files_failed
        ),
        (1, 1, 1, 0),
        "the file is cut once and counted once: {s:?}"
    );
    assert!(s.ranges_completed >= 1, "{s:?}");
    assert_eq!((s.totals.rows_read, s.totals.rows_indexed), (ROWS, ROWS));
    assert_accounted(&s);
    assert_eq!(split.count("transactions"), ROWS);
    assert_eq!(split.rewrites(), (0, 1), "every document written once");
    assert_eq!(
        split.digest(),
        whole.digest(),
        "same ids and documents as the unsplit run"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cutting the file into ranges"), "{stderr}");
}

#[test]
fn workers_share_the_ranges_the_discoverer_cut() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    one_large_file(&data);
    let listing = discover(&data, &["--split-size", "1000000"]);
    let items: Vec<&[u8]> = listing.split_inclusive(|&b| b == b'\n').collect();
    assert!(items.len() >= 3, "{} ranges", items.len());
    let whole = BulkTestServer::start().unwrap();
    index(
        work.path(),
        "whole",
        &whole,
        &["--threads", "1"],
        &discover(&data, &[]),
    );

    // Two workers sharing one Valkey, as if SQS had handed each some of the ranges.
    let valkey = Valkey::start();
    let url = valkey.url();
    let server = BulkTestServer::start().unwrap();
    let (first, second) = items.split_at(items.len() / 2);
    let mut counted = 0;
    for (name, part) in [("a", first), ("b", second)] {
        let args = ["--threads", "1", "--valkey-url", url.as_str()];
        index(work.path(), name, &server, &args, &part.concat());
        let s = read_summary(&work.path().join(format!("{name}.json")));
        assert_accounted(&s);
        counted += s.files_completed;
        assert_eq!(
            s.files_completed + s.ranges_completed,
            part.len() as u64,
            "{s:?}"
        );
    }
    assert_eq!(
        counted, 1,
        "the file counts once, for the worker that finished its last range"
    );
    assert_eq!(server.count("transactions"), ROWS);
    assert_eq!(server.rewrites(), (0, 1));
    assert_eq!(server.digest(), whole.digest());
}
