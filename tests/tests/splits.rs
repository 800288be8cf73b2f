//! One large file shared by threads and by workers: split into byte ranges (by the
//! worker on arrival, or by `pf-discoverer --split-size`), it is indexed exactly once,
//! with the same document ids and contents as an unsplit run, and counted as one file.
//! Each test runs for a Parquet file (ranges own row groups) and an uncompressed NDJSON
//! file (ranges own the lines that start in them).
//! The destination is the `_bulk` protocol test server (pf-bulk-test-server); workers
//! share metadata through a real `valkey-server`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pf_bulk_test_server::BulkTestServer;
use pf_coordinator::{ValkeyConfig, ValkeyMetadataStore};
use pf_datagen::{GenOptions, generate};
use pf_test_services::Valkey;
use pf_tests::{
    assert_accounted, assert_exit, bin, output_with_stdin, read_summary, run_with_stdin,
    slow_reader, spawn_with_stdin, transaction_ids, wait_for,
};
use pf_traits::{ItemStatus, MetadataStore};
use pf_types::{FileFormat, WorkItem};
use tempfile::TempDir;

const ROWS: u64 = 300_000;

/// For each `check(parquet, ndjson)`: a `#[test]` named `parquet` running `check` for a
/// Parquet file, and one named `ndjson` running it for an NDJSON file.
macro_rules! for_both_formats {
    ($($check:ident($parquet:ident, $ndjson:ident $(,)?))*) => {
        $(
            #[test]
            fn $parquet() {
                $check(FileFormat::Parquet);
            }

            #[test]
            fn $ndjson() {
                $check(FileFormat::Ndjson);
            }
        )*
    };
}

for_both_formats! {
    threads_share_a_large_file_and_index_it_once_with_unsplit_ids(
        threads_share_a_large_parquet_file_and_index_it_once_with_unsplit_ids,
        threads_share_a_large_ndjson_file_and_index_it_once_with_unsplit_ids,
    )
    workers_share_the_ranges_the_discoverer_cut(
        workers_share_the_ranges_the_discoverer_cut_of_a_parquet_file,
        workers_share_the_ranges_the_discoverer_cut_of_an_ndjson_file,
    )
    a_killed_worker_costs_only_the_rest_of_its_range(
        a_killed_worker_costs_only_the_rest_of_its_parquet_range,
        a_killed_worker_costs_only_the_rest_of_its_ndjson_range,
    )
}

/// A fresh work directory with one `format` file of `ROWS` rows (Parquet: in 15 row
/// groups), larger than 2 MiB, in its `data` directory; with the path of that directory.
fn one_large_file(format: FileFormat) -> (TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    generate(&GenOptions {
        files: 1,
        seed: 5,
        row_group_rows: 20_000,
        format,
        ..GenOptions::new(data.clone(), ROWS)
    })
    .expect("generate");
    let file = std::fs::read_dir(&data).unwrap().next().unwrap().unwrap();
    let size = file.metadata().unwrap().len();
    assert!(
        size > 2 << 20,
        "the file must span several 1 MiB ranges: {size} bytes"
    );
    (work, data)
}

/// The work items of `data`, listed by `pf-discoverer` with `extra` flags.
fn discover(data: &Path, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["--path", data.to_str().unwrap()];
    args.extend(extra);
    pf_tests::discover(&args)
}

/// Runs `pf-worker` on `input` into `server`, with its summary in `work/<name>.json`.
fn index(work: &Path, name: &str, server: &BulkTestServer, args: &[&str], input: &[u8]) -> Output {
    let summary = work.join(format!("{name}.json"));
    let url = server.url();
    let mut all = vec!["--input", "stdin", "--destination", "elasticsearch"];
    all.extend([
        "--es-endpoint",
        &url,
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    all.extend(args);
    let out = run_with_stdin(&bin("pf-worker"), &all, input);
    assert_exit(&out, 0);
    out
}

fn threads_share_a_large_file_and_index_it_once_with_unsplit_ids(format: FileFormat) {
    let (work, data) = one_large_file(format);
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

    // A hand-written item names only the file: the worker looks its size up and cuts it
    // all the same.
    let file = std::fs::read_dir(&data)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bare = format!("{{\"uri\":\"file://{}\"}}\n", file.display());
    let sized_up = BulkTestServer::start().unwrap();
    index(
        work.path(),
        "bare",
        &sized_up,
        &["--threads", "2", "--set", "worker.split_size_mib=1"],
        bare.as_bytes(),
    );
    let s = read_summary(&work.path().join("bare.json"));
    assert_eq!(
        (s.files_split, s.files_completed, s.totals.rows_read),
        (1, 1, ROWS),
        "an item without its size is cut too: {s:?}"
    );
    // Without an etag the ids differ from the discovered item's; each is written once.
    assert_eq!(sized_up.count("transactions"), ROWS);
    assert_eq!(sized_up.rewrites(), (0, 1), "every document written once");
}

fn workers_share_the_ranges_the_discoverer_cut(format: FileFormat) {
    let (work, data) = one_large_file(format);
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

/// A `pf-worker` over stdin with `threads` threads and Valkey at `url` (stale after 2 s),
/// writing documents to its stdout and its summary to `work/<name>.json`.
fn stdout_worker(work: &Path, url: &str, name: &str, threads: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin("pf-worker"));
    cmd.args([
        "--input",
        "stdin",
        "--destination",
        "stdout",
        "--threads",
        threads,
    ])
    .args(["--batch-size", "1000", "--valkey-url", url])
    .args(["--worker-id", name])
    .args(["--set", "coordinator.valkey.stale_after_secs=2"])
    .args(["--set", "worker.progress=never", "--summary-json"])
    .arg(work.join(format!("{name}.json")))
    .args(extra)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// Starts worker A (`cmd`) on `listing`, with its documents read slowly so that it is
/// still mid-file, and kills it with -9 once `ready` returns a value (waiting for `what`):
/// that value and the ids of the documents A wrote.
fn kill_when<T>(
    cmd: &mut Command,
    listing: &[u8],
    what: &str,
    ready: impl FnMut() -> Option<T>,
) -> (T, Vec<String>) {
    let mut a = spawn_with_stdin(cmd, listing);
    let reader = slow_reader(a.stdout.take().unwrap());
    let value = wait_for(what, ready);
    a.kill().expect("kill -9 worker A");
    a.wait().unwrap();
    (value, transaction_ids(&reader.join().unwrap()))
}

/// A file one worker was reading whole when it was killed is not cut by the next worker,
/// even with splitting on: it resumes the whole file from its checkpoint, so no row is
/// read both as part of the file and as part of a range.
#[test]
fn a_file_worked_on_whole_is_resumed_whole_not_cut() {
    let (work, data) = one_large_file(FileFormat::Parquet);
    let valkey = Valkey::start();
    let url = valkey.url();
    let listing = discover(&data, &["--job-id", "whole"]);
    let item = WorkItem::parse_message(std::str::from_utf8(&listing).unwrap().trim())
        .unwrap()
        .remove(0);
    let store = ValkeyMetadataStore::connect(&ValkeyConfig::for_url(url.clone())).unwrap();

    let mut a = stdout_worker(work.path(), &url, "a", "1", &[]);
    let (_, a_ids) = kill_when(&mut a, &listing, "a checkpoint of A", || {
        store.get(&item).unwrap().and_then(|r| r.checkpoint)
    });
    let cp = store.get(&item).unwrap().unwrap().checkpoint.unwrap();

    let split_on = ["--set", "worker.split_size_mib=1"];
    let mut b = stdout_worker(work.path(), &url, "b", "2", &split_on);
    let b_out = output_with_stdin(&mut b, &listing);
    assert_exit(&b_out, 0);
    let stderr = String::from_utf8_lossy(&b_out.stderr);
    assert!(
        stderr.contains("already worked on whole; not cutting it"),
        "{stderr}"
    );
    assert!(stderr.contains("resuming from checkpoint"), "{stderr}");
    let s = read_summary(&work.path().join("b.json"));
    assert_eq!((s.files_split, s.files_completed), (0, 1), "{s:?}");
    let b_ids = transaction_ids(&b_out.stdout);
    assert_eq!(
        b_ids.len() as u64,
        ROWS - cp.stats.rows_read,
        "B read past the checkpoint only"
    );
    let all: HashSet<&String> = a_ids.iter().chain(&b_ids).collect();
    assert_eq!(all.len() as u64, ROWS, "every row in the destination");
}

/// kill -9 of a worker holding one range of a split file: a second worker acknowledges
/// the ranges already completed without reading them, resumes the interrupted range from
/// its checkpoint, and reads the untouched ranges; every row reaches the destination.
fn a_killed_worker_costs_only_the_rest_of_its_range(format: FileFormat) {
    let (work, data) = one_large_file(format);
    let valkey = Valkey::start();
    let url = valkey.url();
    let listing = discover(&data, &["--split-size", "1000000", "--job-id", "crash"]);
    let ranges: Vec<WorkItem> = String::from_utf8_lossy(&listing)
        .lines()
        .map(|l| WorkItem::parse_message(l).unwrap().remove(0))
        .collect();
    let store = ValkeyMetadataStore::connect(&ValkeyConfig::for_url(url.clone())).unwrap();
    let worker = |name: &str| stdout_worker(work.path(), &url, name, "1", &[]);
    let status = |r: &WorkItem| store.get(r).unwrap();

    // Killed once a range after the first is open and checkpointed.
    let (interrupted, a_ids) = kill_when(&mut worker("a"), &listing, "A to get mid-range", || {
        let first_open = ranges
            .iter()
            .position(|r| status(r).is_none_or(|s| s.status != ItemStatus::Completed));
        first_open.filter(|&i| i > 0 && status(&ranges[i]).and_then(|s| s.checkpoint).is_some())
    });
    let cp = status(&ranges[interrupted]).unwrap().checkpoint.unwrap();
    let done_by_a: Vec<u64> = ranges
        .iter()
        .filter_map(|r| status(r).and_then(|s| s.stats))
        .map(|stats| stats.rows_read)
        .collect();
    let completed_by_a = done_by_a.len() as u64;
    assert!(completed_by_a >= 1 && completed_by_a < ranges.len() as u64);

    let b_out = output_with_stdin(&mut worker("b"), &listing);
    assert_exit(&b_out, 0);
    let stderr = String::from_utf8_lossy(&b_out.stderr);
    assert!(stderr.contains("resuming from checkpoint"), "{stderr}");
    let b_ids = transaction_ids(&b_out.stdout);
    let s = read_summary(&work.path().join("b.json"));
    assert_eq!(
        (s.files_skipped, s.files_completed),
        (completed_by_a, 1),
        "B acknowledged A's ranges without work and counted the file: {s:?}"
    );
    // B read nothing before the checkpoint of the range A was in, nor in A's ranges.
    assert_eq!(b_ids.len() as u64, s.totals.rows_read - cp.stats.rows_read);
    assert_eq!(
        b_ids.len() as u64,
        ROWS - done_by_a.iter().sum::<u64>() - cp.stats.rows_read,
        "B read only what A had not finished: the rest of its range and the untouched ones"
    );
    let all: HashSet<&String> = a_ids.iter().chain(&b_ids).collect();
    assert_eq!(all.len() as u64, ROWS, "every row in the destination");
    assert_eq!(
        b_ids.iter().collect::<HashSet<_>>().len(),
        b_ids.len(),
        "B wrote each row once"
    );
}
