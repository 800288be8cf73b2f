//! The Elasticsearch destination end to end: `pf-discoverer | pf-worker --destination
//! elasticsearch` against the `_bulk` protocol test server (pf-bulk-test-server, not
//! Elasticsearch), with faults injected by the server.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use pf_bulk_test_server::{BulkTestServer, Faults, ServerOptions};
use pf_datagen::{DatasetPlan, GenOptions, TransactionGenerator, generate};
use pf_tests::{
    assert_accounted, assert_exit, discover, dlq_lines, es_worker, output_with_stdin, read_summary,
};
use pf_types::RunSummary;

const SEED: u64 = 11;

fn generate_data(dir: &Path, rows: u64, files: usize) {
    generate(&GenOptions {
        files,
        seed: SEED,
        ..GenOptions::new(dir.to_path_buf(), rows)
    })
    .expect("generate");
}

/// A work directory with `rows` generated transactions over `files` files in its
/// `data` directory.
fn generated(rows: u64, files: usize) -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    generate_data(&data, rows, files);
    (work, data)
}

/// A server with `faults` that keeps no document sources.
fn start_faulty(faults: Faults) -> BulkTestServer {
    BulkTestServer::start_local(ServerOptions {
        faults,
        keep_sources: false,
        ..ServerOptions::default()
    })
    .unwrap()
}

/// `transaction_id` of every `step`-th row of the data set, recomputed from the generator
/// (same seed and plan as the files).
fn every_nth_transaction_id(rows: u64, files: usize, step: u64) -> HashSet<String> {
    let plan = DatasetPlan::new(rows, files).unwrap();
    let mut ids = HashSet::new();
    let mut n = 0u64;
    for f in plan.files() {
        let mut g = TransactionGenerator::new(SEED, f, 65_536);
        while let Some(b) = g.next_batch() {
            let col = b
                .column_by_name("transaction_id")
                .unwrap()
                .as_string::<i32>();
            for i in 0..b.num_rows() {
                if n.is_multiple_of(step) {
                    ids.insert(col.value(i).to_owned());
                }
                n += 1;
            }
        }
    }
    ids
}

/// A config with fast backoffs, so retries do not dominate test time.
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("worker.yaml");
    std::fs::write(
        &path,
        format!(
            "worker:\n  retry_base_ms: 200\n  retry_max_ms: 1000\n  max_attempts: 30\n  progress: never\n\
             indexer:\n  elasticsearch:\n    retry_base_ms: 10\n    retry_max_ms: 100\n{extra}"
        ),
    )
    .unwrap();
    path
}

fn listing(data: &Path) -> Vec<u8> {
    discover(&["--path", data.to_str().unwrap()])
}

fn worker(
    work: &Path,
    server: &BulkTestServer,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let mut cmd = es_worker(&work.join("worker.yaml"), &server.url(), work);
    cmd.args(extra_args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run(mut cmd: Command, input: &[u8]) -> std::process::Output {
    output_with_stdin(&mut cmd, input)
}

fn counters(s: &RunSummary) -> &BTreeMap<String, u64> {
    assert!(
        !s.indexer.is_empty(),
        "summary has no indexer counters: {s:?}"
    );
    &s.indexer
}

#[test]
fn a_million_rows_with_throttling_and_rejections_add_up_exactly() {
    const ROWS: u64 = 1_000_000;
    let (work, data) = generated(ROWS, 4);
    let rejected = every_nth_transaction_id(ROWS, 4, 1000);
    assert_eq!(rejected.len(), 1000);
    let server = start_faulty(Faults::throttle_once_and_reject(0.1, rejected.clone()));
    write_config(work.path(), "");
    let out = run(
        worker(work.path(), &server, &["--es-index", "transactions"], &[]),
        &listing(&data),
    );
    assert_exit(&out, 0);
    let s = read_summary(&work.path().join("summary.json"));
    assert_accounted(&s);
    assert_eq!(s.files_completed, 4);
    assert_eq!(s.totals.rows_read, ROWS);
    assert_eq!(s.totals.rows_indexed, ROWS - 1000);
    assert_eq!(s.totals.rows_failed, 1000);

    // Every other document is stored exactly once.
    assert_eq!(server.count("transactions"), ROWS - 1000);
    assert_eq!(server.rewrites(), (0, 1));

    // The indexer's counters agree with each other and with what the server saw.
    let st = server.stats();
    let c = counters(&s);
    assert!(
        (90_000..=110_000).contains(&st.items_throttled),
        "about 10% throttled on first attempt: {}",
        st.items_throttled
    );
    assert_eq!(c["sent"], ROWS);
    assert_eq!(c["indexed"], ROWS - 1000);
    assert_eq!(c["retried"], st.items_throttled);
    assert_eq!(c["rejected"], 1000);
    assert_eq!(c["dlq"], 1000);
    assert_eq!(c["abandoned"], 0);
    assert_eq!(c["sent"], c["indexed"] + c["rejected"] + c["abandoned"]);
    assert_eq!(st.items, c["sent"] + c["retried"]);
    assert_eq!(st.items_rejected, 1000);
    assert_eq!(st.items_created, ROWS - 1000);

    // The 1,000 are in the record DLQ with Elasticsearch's reason and the document.
    let dlq = dlq_lines(&work.path().join("dlq"));
    assert_eq!(dlq.len(), 1000);
    let mut seen = HashSet::new();
    for line in &dlq {
        assert_eq!(line["stage"], "index");
        assert_eq!(line["class"], "record");
        let error = line["error"].as_str().unwrap();
        assert!(
            error.contains("HTTP 400") && error.contains("mapper_parsing_exception"),
            "{error}"
        );
        let record: serde_json::Value =
            serde_json::from_str(line["record"].as_str().unwrap()).unwrap();
        seen.insert(record["transaction_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, rejected);
}

/// Several bulk requests in flight per thread, through the worker: with the default
/// `max_in_flight` (4) a chunk holds four requests' worth of documents and they reach a
/// server that answers after 100 ms together; with `--es-max-in-flight 1` they never
/// overlap. Every document is sent once either way.
#[test]
fn a_chunk_sends_its_requests_together_up_to_max_in_flight() {
    const ROWS: u64 = 40_000;
    let (work, data) = generated(ROWS, 1);
    write_config(work.path(), "");
    let input = listing(&data);
    for (args, overlap) in [(&["--es-max-in-flight", "1"][..], 1..=1), (&[][..], 2..=4)] {
        let server = start_faulty(Faults {
            delay: Duration::from_millis(100),
            ..Faults::default()
        });
        let out = run(worker(work.path(), &server, args, &[]), &input);
        assert_exit(&out, 0);
        assert_eq!(server.count("transactions"), ROWS);
        let st = server.stats();
        assert_eq!(st.items, ROWS, "{args:?}: each document sent once");
        assert!(
            overlap.contains(&st.max_bulk_in_flight),
            "{args:?}: {} requests at once, expected {overlap:?}",
            st.max_bulk_in_flight
        );
    }
}

#[test]
fn the_same_files_twice_leave_the_count_unchanged() {
    const ROWS: u64 = 60_000;
    let (work, data) = generated(ROWS, 3);
    let server = BulkTestServer::start().unwrap();
    write_config(work.path(), "");
    let input = listing(&data);
    let first = run(worker(work.path(), &server, &[], &[]), &input);
    assert_exit(&first, 0);
    assert_eq!(server.count("transactions"), ROWS);
    let digest = server.digest();

    let second = run(worker(work.path(), &server, &[], &[]), &input);
    assert_exit(&second, 0);
    assert_eq!(
        server.count("transactions"),
        ROWS,
        "idempotent ids: no duplicates"
    );
    assert_eq!(server.digest(), digest, "same ids, same documents");
    assert_eq!(
        server.rewrites(),
        (ROWS, 2),
        "every document overwritten once"
    );
    let s = read_summary(&work.path().join("summary.json"));
    assert_eq!(counters(&s)["indexed"], ROWS);
}

#[test]
fn a_server_down_mid_run_costs_retries_not_documents() {
    const ROWS: u64 = 200_000;
    let (work, data) = generated(ROWS, 2);
    // Slow responses stretch the run so the outage lands in the middle of it.
    let server = start_faulty(Faults {
        delay: Duration::from_millis(40),
        ..Faults::default()
    });
    write_config(work.path(), "    max_retries: 2\n  bulk_max_docs: 2000\n");
    let mut child = worker(work.path(), &server, &[], &[]).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&listing(&data))
        .unwrap();
    // Wait until indexing is under way, then take the server down.
    let waited = Instant::now();
    while server.count("transactions") < 20_000 {
        assert!(
            waited.elapsed() < Duration::from_secs(300),
            "indexing never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = server.count("transactions");
    server.go_down_for(Duration::from_secs(5));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(before < ROWS, "the outage came before the end");

    let s = read_summary(&work.path().join("summary.json"));
    assert_accounted(&s);
    assert!(s.failures.is_empty());
    assert_eq!(s.totals.rows_indexed, ROWS);
    assert_eq!(
        server.count("transactions"),
        ROWS,
        "nothing lost, no duplicates"
    );
    let c = counters(&s);
    assert!(c["request_retries"] > 0, "{c:?}");
    assert!(
        c["abandoned"] > 0,
        "requests gave up during the outage: {c:?}"
    );
    assert!(
        stderr.contains("file goes back to the queue"),
        "the file was retried: {stderr}"
    );
    assert_eq!(c["sent"], c["indexed"] + c["rejected"] + c["abandoned"]);
}

#[test]
fn credentials_gzip_setup_and_daily_indices_reach_the_server() {
    const ROWS: u64 = 30_000;
    let (work, data) = generated(ROWS, 2);
    // Basic elastic:s3cret-pw
    let expected = "Basic ZWxhc3RpYzpzM2NyZXQtcHc=";
    let server = BulkTestServer::start_local(ServerOptions {
        auth: Some(expected.into()),
        ..ServerOptions::default()
    })
    .unwrap();
    write_config(
        work.path(),
        "    mappings:\n      properties:\n        amount: { type: double }\n",
    );
    let args = [
        "--es-index",
        "transactions-{yyyy.MM.dd}",
        "--es-username",
        "elastic",
        "--es-compression",
        "--es-setup",
    ];
    let env = [("PF_ES_PASSWORD", "s3cret-pw")];

    let printed = worker(work.path(), &server, &args, &env)
        .arg("--print-config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(
        text.contains("password: '***'")
            || text.contains("password: \"***\"")
            || text.contains("password: ***"),
        "{text}"
    );
    assert!(!text.contains("s3cret-pw"));

    let out = run(worker(work.path(), &server, &args, &env), &listing(&data));
    assert_exit(&out, 0);
    let st = server.stats();
    assert!(st.bulk_requests > 0);
    assert_eq!(
        st.gzip_bulk_requests, st.bulk_requests,
        "every body gzip-compressed"
    );
    assert_eq!(st.unauthorized, 0);
    assert_eq!(st.authorization_seen.iter().collect::<Vec<_>>(), [expected]);
    assert_eq!(server.count("transactions-*"), ROWS);
    let indices = server.indices();
    assert!(
        indices.len() > 1 && indices.iter().all(|i| i.starts_with("transactions-20")),
        "{indices:?}"
    );
    let (_, templates) = server.setup_requests();
    assert_eq!(
        templates["paraflow-transactions"]["template"]["mappings"]["properties"]["amount"]["type"],
        "double"
    );

    // Without the password the server refuses every request: a permanent failure of
    // each file, reported, never silently dropped.
    let out = run(
        worker(
            work.path(),
            &server,
            &["--es-index", "transactions", "--es-username", "elastic"],
            &[("PF_ES_PASSWORD", "wrong")],
        ),
        &listing(&data),
    );
    assert_exit(&out, 2);
    let s = read_summary(&work.path().join("summary.json"));
    assert_eq!(s.files_failed, 2);
    assert!(
        s.failures.iter().all(|f| f.error.contains("401")),
        "{:?}",
        s.failures
    );
}
