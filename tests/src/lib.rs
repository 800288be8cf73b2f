//! Shared helpers for the integration tests: locating and running the workspace's
//! binaries, and reading their JSON summaries.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pf_datagen::{GenOptions, generate};
use pf_types::{Compression, FileFormat, RunSummary};

pub mod chaos;
pub mod cluster;

/// The directory of the workspace binaries built by `cargo build --workspace --bins` in
/// the same profile as the running test (or, for a binary of this crate, beside it).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("executable directory");
    // A test runs from target/<profile>/deps/; a binary from target/<profile>/.
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("target dir").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Path of a workspace binary (see [`bin_dir`]).
///
/// # Panics
/// When the binary is missing, with the command that builds it.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (testing/run-tests.sh does)",
        path.display()
    );
    path
}

/// Runs `pf-discoverer <discover_args> | pf-worker <worker_args>` and returns the
/// worker's output.
pub fn discover_and_process(discover_args: &[&str], worker_args: &[&str]) -> Output {
    run_with_stdin(&bin("pf-worker"), worker_args, &discover(discover_args))
}

/// Runs `pf-discoverer args`, which must succeed; the work items it printed.
pub fn discover(args: &[&str]) -> Vec<u8> {
    let listing = Command::new(bin("pf-discoverer"))
        .args(args)
        .output()
        .expect("run pf-discoverer");
    assert_success(&listing, "pf-discoverer");
    listing.stdout
}

/// Asserts that a process (`what`) succeeded, showing its stderr when it did not.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads a child's stdout at about 3 MB/s on a thread of its own, so the destination is
/// the bottleneck and a worker is still mid-file when a test kills it; the thread returns
/// everything read once the pipe closes.
pub fn slow_reader(mut out: std::process::ChildStdout) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        use std::io::Read;
        let (mut all, mut buf) = (Vec::new(), vec![0u8; 16 * 1024]);
        while let Ok(n @ 1..) = out.read(&mut buf) {
            all.extend_from_slice(&buf[..n]);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        all
    })
}

/// The `transaction_id` of every JSON document line in `stdout`, in order.
pub fn transaction_ids(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["transaction_id"].as_str().map(str::to_owned))
        .collect()
}

/// Asserts that a process exited with `code`, showing its stderr when it did not.
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `program args` with `input` on stdin.
pub fn run_with_stdin(program: &Path, args: &[&str], input: &[u8]) -> Output {
    output_with_stdin(Command::new(program).args(args), input)
}

/// Runs `cmd` with `input` on stdin, capturing its output.
pub fn output_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    spawn_with_stdin(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()), input)
        .wait_with_output()
        .expect("wait")
}

/// Starts `cmd`, writes `input` to its stdin and closes it; the running child.
pub fn spawn_with_stdin(cmd: &mut Command, input: &[u8]) -> Child {
    let mut child = cmd.stdin(Stdio::piped()).spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    child
}

/// Polls `found` every 20 ms until it returns a value, and returns that value.
///
/// # Panics
/// After two minutes without one, naming `what` was awaited.
pub fn wait_for<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = found() {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`wait_for`] a condition: polls `done` until it holds.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    wait_for(what, || done().then_some(()));
}

/// Writes `rows` generated transactions (seed 7) over `files` files into `dir`.
pub fn generate_data(
    dir: &Path,
    rows: u64,
    files: usize,
    format: FileFormat,
    compression: Compression,
) {
    generate(&GenOptions {
        files,
        format,
        compression,
        seed: 7,
        ..GenOptions::new(dir.to_path_buf(), rows)
    })
    .expect("generate");
}

/// `text` written as `name` in a fresh directory, which lives as long as the returned
/// handle.
pub fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write temp file");
    (dir, path)
}

/// `pf-worker` flags for one pipeline thread reading work items from stdin and writing
/// documents to stdout.
pub const STDOUT_WORKER: [&str; 6] = [
    "--input",
    "stdin",
    "--destination",
    "stdout",
    "--threads",
    "1",
];

/// Every line of every record-DLQ file in `dir`, parsed.
pub fn dlq_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).expect("record DLQ directory") {
        let text = std::fs::read_to_string(entry.expect("DLQ entry").path()).expect("DLQ file");
        lines.extend(
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("DLQ line")),
        );
    }
    lines
}

/// `pf-worker` with `config`, reading work items from stdin and indexing into the
/// Elasticsearch-compatible server at `endpoint` with two threads; the summary goes to
/// `work/summary.json` and the record DLQ to `work/dlq`.
pub fn es_worker(config: &Path, endpoint: &str, work: &Path) -> Command {
    let mut cmd = Command::new(bin("pf-worker"));
    cmd.args([
        "--config",
        config.to_str().expect("UTF-8 path"),
        "--input",
        "stdin",
        "--destination",
        "elasticsearch",
        "--es-endpoint",
        endpoint,
        "--threads",
        "2",
        "--summary-json",
        work.join("summary.json").to_str().expect("UTF-8 path"),
        "--dlq-dir",
        work.join("dlq").to_str().expect("UTF-8 path"),
    ]);
    cmd
}

/// Reads a `--summary-json` file.
pub fn read_summary(path: &Path) -> RunSummary {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("summary {} not written: {e}", path.display()));
    serde_json::from_str(&text).expect("summary JSON")
}

/// Asserts the exact accounting identity of a run.
pub fn assert_accounted(s: &RunSummary) {
    let t = &s.totals;
    assert_eq!(
        t.rows_read,
        t.rows_indexed + t.rows_dropped + t.rows_failed,
        "read = indexed + dropped + failed must hold: {s:?}"
    );
}

/// `dir/worker.yaml`: the shipped fraud rules with the shipped enrichment tables, plus
/// `extra` YAML.
pub fn shipped_fraud_config(dir: &Path, extra: &str) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let path = dir.join("worker.yaml");
    std::fs::write(
        &path,
        format!(
            "worker:\n  progress: never\ntransform:\n  rules: {rules}\n  tables:\n    - {{ name: geo, kind: cidr, path: {e}/geo.csv, key: network, values: [country, city, asn] }}\n    - {{ name: threats, kind: cidr, path: {e}/threats.csv, key: network, values: [category, confidence] }}\n    - {{ name: users, kind: exact, path: {e}/users.csv, key: account_id, values: [name, risk_tier, home_country] }}\n{extra}",
            rules = shipped.join("rules/fraud.yaml").display(),
            e = shipped.join("enrichment").display(),
        ),
    )
    .unwrap();
    path
}
