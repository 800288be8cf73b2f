//! Several worker processes sharing one real `valkey-server`: exactly-once claims,
//! duplicate deliveries, a killed worker resumed from its checkpoint, a Valkey restart
//! mid-run, shared fraud windows, and `pf status`.
//!
//! Build the binaries first: `cargo build --bins -p pf-cli -p pf-worker-cli -p pf-discoverer-cli`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pf_coordinator::{ValkeyConfig, ValkeyMetadataStore};
use pf_datagen::{GenOptions, generate};
use pf_test_services::Valkey;
use pf_tests::{
    assert_accounted, assert_exit, bin, read_summary, run_with_stdin, slow_reader, transaction_ids,
    wait_until,
};
use pf_traits::{ItemStatus, MetadataStore};
use pf_types::{FileFormat, RunSummary, WorkItem};

fn generate_data(dir: &Path, rows: u64, files: usize, format: FileFormat, row_group_rows: usize) {
    generate(&GenOptions {
        files,
        format,
        seed: 21,
        row_group_rows,
        ..GenOptions::new(dir.to_path_buf(), rows)
    })
    .expect("generate");
}

/// A fresh directory with `rows` generated transactions over `files` files in its
/// `data` directory.
fn generated(
    rows: u64,
    files: usize,
    format: FileFormat,
    row_group_rows: usize,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate_data(&data, rows, files, format, row_group_rows);
    (dir, data)
}

/// Work items of `dir` for job `job`, registering the totals in Valkey.
fn discover(dir: &Path, job: &str, valkey: &Valkey) -> String {
    let url = valkey.url();
    let out = pf_tests::discover(&[
        "--path",
        dir.to_str().unwrap(),
        "--job-id",
        job,
        "--valkey-url",
        &url,
    ]);
    String::from_utf8(out).unwrap()
}

/// One rule: five transactions of an account within 60 s.
const RAPID_ACTIVITY_RULE: &str = "rules:\n  - name: rapid_activity\n    window: { key: account_id, time: timestamp, seconds: 60, min_count: 5 }\n    severity: medium\n    score: 30\n";

/// Config for the rules file `rules`, with alerts going to the file `alerts`.
fn rules_with_alerts(rules: &Path, alerts: &Path) -> String {
    format!(
        "transform:\n  rules: {}\nalerts:\n  destination: file\n  path: {}\n",
        rules.display(),
        alerts.display()
    )
}

/// A worker config: stale after `stale_secs`, optional script and rules.
fn config(dir: &Path, name: &str, stale_secs: u64, extra: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "worker:\n  progress: never\ncoordinator:\n  valkey:\n    stale_after_secs: {stale_secs}\n{extra}"
        ),
    )
    .unwrap();
    path
}

fn worker_args<'a>(
    cfg: &'a Path,
    valkey_url: &'a str,
    summary: &'a Path,
    id: &'a str,
) -> Vec<String> {
    [
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        "stdin",
        "--valkey-url",
        valkey_url,
        "--summary-json",
        summary.to_str().unwrap(),
        "--worker-id",
        id,
        "--dlq-dir",
        summary.with_extension("dlq").to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Starts a worker whose stdout and stderr go to files next to its summary (pipes
/// nobody reads while the test waits would fill up and stall it).
fn spawn_worker(args: &[String], extra: &[&str], outputs: &Path) -> Child {
    let file = |ext: &str| std::fs::File::create(outputs.with_extension(ext)).expect("output file");
    Command::new(bin("pf-worker"))
        .args(args)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(file("out"))
        .stderr(file("err"))
        .spawn()
        .expect("start pf-worker")
}

/// Waits for the worker and returns (exit code, stdout, stderr).
fn finished(mut child: Child, outputs: &Path) -> (Option<i32>, Vec<u8>, String) {
    let status = child.wait().expect("wait for pf-worker");
    (
        status.code(),
        std::fs::read(outputs.with_extension("out")).unwrap_or_default(),
        std::fs::read_to_string(outputs.with_extension("err")).unwrap_or_default(),
    )
}

fn ok(run: &(Option<i32>, Vec<u8>, String)) {
    assert_eq!(run.0, Some(0), "{}", run.2);
}

fn feed(child: &mut Child, input: &str) {
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("feed work items");
}

fn store(valkey: &Valkey) -> ValkeyMetadataStore {
    ValkeyMetadataStore::connect(&ValkeyConfig::for_url(valkey.url())).expect("connect")
}

fn items(lines: &str) -> Vec<WorkItem> {
    lines
        .lines()
        .map(|l| WorkItem::parse_message(l).expect("work item").remove(0))
        .collect()
}

fn pf_status(valkey: &Valkey, job: &str) -> String {
    let out = Command::new(bin("pf"))
        .args([
            "status",
            "--valkey-url",
            &valkey.url(),
            "--job",
            job,
            "--stale-after",
            "2",
        ])
        .output()
        .expect("run pf status");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two worker processes get every item: each is processed by exactly one of them, the
/// other acknowledges it as a duplicate; a third delivery later is acknowledged too.
#[test]
fn two_workers_given_the_same_items_process_each_once() {
    let (dir, data) = generated(120_000, 8, FileFormat::Parquet, 5_000);
    let valkey = Valkey::start();
    let lines = discover(&data, "race", &valkey);
    let cfg = config(dir.path(), "w.yaml", 3, "");
    let url = valkey.url();
    let summaries: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("s{i}.json")))
        .collect();
    let mut children: Vec<Child> = (0..2)
        .map(|i| {
            let args = worker_args(&cfg, &url, &summaries[i], if i == 0 { "wa" } else { "wb" });
            spawn_worker(
                &args,
                &["--destination", "stats", "--threads", "2"],
                &summaries[i],
            )
        })
        .collect();
    for c in &mut children {
        feed(c, &lines);
    }
    for (i, c) in children.into_iter().enumerate() {
        ok(&finished(c, &summaries[i]));
    }
    let s: Vec<RunSummary> = summaries.iter().map(|p| read_summary(p)).collect();
    for x in &s {
        assert_accounted(x);
    }
    assert_eq!(s[0].files_completed + s[1].files_completed, 8, "{s:?}");
    assert_eq!(s[0].files_skipped + s[1].files_skipped, 8, "{s:?}");
    assert_eq!(s[0].totals.rows_read + s[1].totals.rows_read, 120_000);
    let st = store(&valkey);
    for it in items(&lines) {
        let rec = st.get(&it).unwrap().expect("item record");
        assert_eq!(
            (rec.status, rec.attempts),
            (ItemStatus::Completed, 1),
            "{}",
            it.uri
        );
    }

    // A duplicate delivery of completed files: acknowledged, nothing reprocessed.
    let again = dir.path().join("again.json");
    let out = run_with_stdin(
        &bin("pf-worker"),
        &worker_args(&cfg, &url, &again, "wc")
            .iter()
            .map(String::as_str)
            .chain(["--destination", "stats"])
            .collect::<Vec<_>>(),
        lines.as_bytes(),
    );
    assert_exit(&out, 0);
    let a = read_summary(&again);
    assert_eq!(
        (a.files_skipped, a.files_completed, a.totals.rows_read),
        (8, 0, 0)
    );
    let p = st.job_progress("race").unwrap().unwrap();
    assert_eq!(
        (p.files_completed, p.rows_done),
        (8, 120_000),
        "row counts unchanged"
    );
    let status = pf_status(&valkey, "race");
    println!("pf status after the run:\n{status}");
    assert!(status.contains("job race: completed"), "{status}");
    assert!(status.contains("files  8 of 8 (100.0%)"), "{status}");
}

/// A worker without Valkey (windows in process) run over the work items `lines` to
/// the null destination with config `cfg`; it must succeed.
fn in_process_run(cfg: &Path, extra: &[&str], lines: &str) {
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        "stdin",
        "--destination",
        "null",
    ];
    args.extend_from_slice(extra);
    let out = run_with_stdin(&bin("pf-worker"), &args, lines.as_bytes());
    assert_exit(&out, 0);
}

/// Burns CPU per record so a file takes long enough to kill its worker mid-way.
const SLOW_SCRIPT: &str =
    "fn transform(record) {\n  let x = 0;\n  for i in 0..400 { x += i; }\n  record\n}\n";

/// The alert keys (`rule|key|t_end`) of an alerts file, which may list one twice.
fn alert_keys(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["key"].as_str().map(str::to_owned))
        .collect()
}

/// kill -9 mid-file; the item, delivered again to a second worker, is taken over once
/// the first holder's heartbeat is stale and resumed from the checkpoint. Every row
/// reaches the destination (stdout, documents keyed by transaction_id), the rows after
/// the checkpoint twice (an overwrite for an id-keyed destination), none missing. Every
/// rapid-activity alert of an uninterrupted run is in the alert file of A or of B: the
/// ones A raised after its last checkpoint died with it and come back with B's replay.
#[test]
fn killed_worker_is_resumed_from_its_checkpoint_by_another() {
    const ROWS: u64 = 60_000;
    let (dir, data) = generated(ROWS, 1, FileFormat::Parquet, 2_000);
    let valkey = Valkey::start();
    let lines = discover(&data, "crash", &valkey);
    let item = items(&lines).remove(0);
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, RAPID_ACTIVITY_RULE).unwrap();
    let alerts_of = |who: &str| dir.path().join(format!("alerts-{who}.ndjson"));
    let with_alerts = |who: &str| rules_with_alerts(&rules, &alerts_of(who));
    let cfg = config(dir.path(), "w.yaml", 2, &with_alerts("a"));
    let cfg_b = config(dir.path(), "wb.yaml", 2, &with_alerts("b"));
    let url = valkey.url();
    let flags = [
        "--destination",
        "stdout",
        "--threads",
        "1",
        "--batch-size",
        "1000",
    ];
    let st = store(&valkey);

    let sa = dir.path().join("a.json");
    let mut a = Command::new(bin("pf-worker"))
        .args(worker_args(&cfg, &url, &sa, "wa"))
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(sa.with_extension("err")).unwrap())
        .spawn()
        .expect("start worker A");
    // A slow reader makes the destination the bottleneck, so A is still mid-file when
    // it is killed; nothing in the worker is slowed down.
    let reader = slow_reader(a.stdout.take().unwrap());
    feed(&mut a, &lines);
    wait_until("a checkpoint of worker A", || {
        st.get(&item)
            .unwrap()
            .and_then(|r| r.checkpoint)
            .is_some_and(|c| c.position >= 3)
    });
    let status_during = pf_status(&valkey, "crash");
    a.kill().expect("kill -9 worker A");
    a.wait().unwrap();
    let a_stdout = reader.join().unwrap();
    let cp = st.get(&item).unwrap().unwrap().checkpoint.unwrap();
    assert!(cp.next_row > 0 && cp.next_row < ROWS, "{cp:?}");
    let a_ids = transaction_ids(&a_stdout);
    assert!(
        a_ids.len() as u64 >= cp.next_row,
        "A's output covers its checkpoint"
    );
    assert!((a_ids.len() as u64) < ROWS, "A was killed mid-file");

    // Worker B gets the same item (a redelivery); A's claim goes stale after 2 s.
    let sb = dir.path().join("b.json");
    let mut b = spawn_worker(&worker_args(&cfg_b, &url, &sb, "wb"), &flags, &sb);
    feed(&mut b, &lines);
    let b_out = finished(b, &sb);
    ok(&b_out);
    let stderr = &b_out.2;
    assert!(stderr.contains("resuming from checkpoint"), "{stderr}");
    let b_ids = transaction_ids(&b_out.1);
    assert_eq!(
        b_ids.len() as u64,
        ROWS - cp.next_row,
        "B skipped the checkpointed rows"
    );
    let s = read_summary(&sb);
    assert_eq!(
        (s.files_completed, s.totals.rows_read, s.totals.rows_indexed),
        (1, ROWS, ROWS)
    );

    let all: HashSet<&String> = a_ids.iter().chain(&b_ids).collect();
    assert_eq!(all.len() as u64, ROWS, "every row in the destination");
    let b_set: HashSet<&String> = b_ids.iter().collect();
    assert_eq!(b_set.len(), b_ids.len(), "B wrote each row once");
    // Rows A wrote after its last checkpoint were written again by B (same ids).
    for id in &a_ids[cp.next_row as usize..] {
        assert!(b_set.contains(id), "{id} redone by B");
    }
    let rec = st.get(&item).unwrap().unwrap();
    assert_eq!(
        (rec.status, rec.attempts, rec.worker.as_deref()),
        // Claims are per pipeline thread: B's only thread.
        (ItemStatus::Completed, 2, Some("wb/t0"))
    );
    // The alerts of an uninterrupted run (windows in process), against A's and B's.
    let sr = dir.path().join("ref.json");
    let cfg_ref = config(dir.path(), "wref.yaml", 2, &with_alerts("ref"));
    in_process_run(
        &cfg_ref,
        &[
            "--summary-json",
            sr.to_str().unwrap(),
            "--dlq-dir",
            sr.with_extension("dlq").to_str().unwrap(),
        ],
        &lines,
    );
    let expected = alert_keys(&alerts_of("ref"));
    let (from_a, from_b) = (alert_keys(&alerts_of("a")), alert_keys(&alerts_of("b")));
    assert!(
        expected.len() > 10,
        "the data has rapid activity: {expected:?}"
    );
    let delivered: BTreeSet<&String> = from_a.iter().chain(&from_b).collect();
    let missing: Vec<&String> = expected.iter().filter(|k| !delivered.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "alerts lost with the killed worker: {missing:?}"
    );
    let recovered = expected.iter().filter(|k| !from_a.contains(*k)).count();
    println!(
        "alerts: {} expected, {} in A's file, {} in B's, {recovered} not delivered by A",
        expected.len(),
        from_a.len(),
        from_b.len()
    );

    let status_after = pf_status(&valkey, "crash");
    println!(
        "pf status while A ran:\n{status_during}\npf status after B finished:\n{status_after}"
    );
    assert!(
        status_during.contains("processing") && status_during.contains("by wa"),
        "{status_during}"
    );
    assert!(
        status_after.contains("job crash: completed"),
        "{status_after}"
    );
    assert!(
        status_after.contains(&format!("rows   {ROWS} read")),
        "{status_after}"
    );
}

/// Valkey dies and comes back (empty: no persistence) while a worker runs: calls wait
/// with backoff, the log says so, and the run completes with exact counts.
/// One slow worker (stats destination, one thread, the files of `data` as job `job`)
/// started and waited for until its first checkpoint is in Valkey; with its summary path.
fn slow_worker_past_a_checkpoint(
    dir: &Path,
    data: &Path,
    valkey: &Valkey,
    job: &str,
    extra: &[&str],
) -> (Child, PathBuf) {
    std::fs::write(dir.join("slow.rhai"), SLOW_SCRIPT).unwrap();
    let lines = discover(data, job, valkey);
    let cfg = config(dir, "w.yaml", 30, "transform:\n  script: slow.rhai\n");
    let summary = dir.join("s.json");
    let mut flags = vec!["--destination", "stats", "--threads", "1"];
    flags.extend_from_slice(extra);
    let mut w = spawn_worker(
        &worker_args(&cfg, &valkey.url(), &summary, "w1"),
        &flags,
        &summary,
    );
    feed(&mut w, &lines);
    let st = store(valkey);
    wait_until("the first checkpoint", || {
        st.job_progress(job)
            .unwrap()
            .is_some_and(|p| p.rows_done > 0)
    });
    (w, summary)
}

#[test]
fn valkey_restart_mid_run_finishes_with_exact_counts() {
    const ROWS: u64 = 40_000;
    let (dir, data) = generated(ROWS, 4, FileFormat::Parquet, 2_000);
    let mut valkey = Valkey::start();
    let port = valkey.port();
    let (w, summary) = slow_worker_past_a_checkpoint(
        dir.path(),
        &data,
        &valkey,
        "outage",
        &["--batch-size", "1000"],
    );
    valkey.kill();
    std::thread::sleep(Duration::from_secs(2));
    let valkey = Valkey::start_on(port);
    let out = finished(w, &summary);
    ok(&out);
    let stderr = &out.2;
    assert!(stderr.contains("Valkey unreachable; retrying"), "{stderr}");
    assert!(stderr.contains("Valkey reachable again"), "{stderr}");
    let s = read_summary(&summary);
    assert_accounted(&s);
    assert_eq!((s.files_completed, s.files_failed), (4, 0));
    assert_eq!((s.totals.rows_read, s.totals.rows_indexed), (ROWS, ROWS));
    // The restarted server holds what happened after the restart: the in-flight item
    // was re-created by its holder and completed.
    let p = store(&valkey)
        .job_progress("outage")
        .unwrap()
        .expect("job after restart");
    assert!(p.files_completed >= 1 && p.processing.is_empty(), "{p:?}");
}

/// Valkey gone for good mid-run, with work items from stdin (a queue that never
/// redelivers by itself): items whose outcome cannot be recorded go back to the queue
/// with backoff and are given up after `worker.max_attempts`, so the run ends (exit 2)
/// instead of waiting for them forever.
#[test]
fn stdin_run_ends_when_valkey_is_gone_for_good() {
    const ROWS: u64 = 8_000;
    let (dir, data) = generated(ROWS, 2, FileFormat::Parquet, 1_000);
    let mut valkey = Valkey::start();
    let (mut w, summary) = slow_worker_past_a_checkpoint(
        dir.path(),
        &data,
        &valkey,
        "gone",
        &[
            "--batch-size",
            "500",
            "--set",
            "coordinator.valkey.outage_limit_secs=1",
            "--set",
            "worker.max_attempts=3",
            "--set",
            "worker.retry_base_ms=50",
            "--set",
            "worker.retry_max_ms=200",
        ],
    );
    valkey.kill();
    // A hang would leave the worker running: stop waiting well before the test runner does.
    let started = Instant::now();
    while w.try_wait().expect("poll pf-worker").is_none() {
        if started.elapsed() > Duration::from_secs(240) {
            let _ = w.kill();
            panic!("pf-worker still running 240 s after Valkey went away");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = finished(w, &summary);
    assert_eq!(out.0, Some(2), "{}", out.2);
    let s = read_summary(&summary);
    assert_eq!(s.files_failed, 2, "{}", out.2);
    assert!(
        s.failures
            .iter()
            .all(|f| f.error.contains("after 3 attempts")
                && f.class == pf_error::ErrorClass::Transient),
        "{:?}",
        s.failures
    );
}

/// Alert keys (`rule|account|t_end`) of rapid_activity in an alerts file.
fn rapid_alerts(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("alert json"))
        .filter(|a| a["rule"] == "rapid_activity")
        .map(|a| a["key"].as_str().unwrap().to_owned())
        .collect()
}

/// One account's transactions split over two files processed by two workers at once:
/// with windows in Valkey they raise exactly the rapid-activity alerts one worker raises.
#[test]
fn rapid_activity_across_two_workers_matches_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, halves) = alternate_halves(dir.path());
    two_workers_raise_one_workers_alerts(dir.path(), &whole, &halves, None);
}

/// Generated NDJSON transactions under `dir`: the work item of the whole file, and the
/// work items of its alternate lines as two files, so that every busy account has
/// transactions in both.
fn alternate_halves(dir: &Path) -> (String, Vec<String>) {
    let gen_dir = dir.join("gen");
    generate_data(&gen_dir, 200_000, 1, FileFormat::Ndjson, 5_000);
    let source = std::fs::read_dir(&gen_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Alternate lines: every busy account has transactions in both halves.
    let text = std::fs::read_to_string(&source).unwrap();
    let (mut a, mut b) = (String::new(), String::new());
    for (i, l) in text.lines().enumerate() {
        let half = if i % 2 == 0 { &mut a } else { &mut b };
        half.push_str(l);
        half.push('\n');
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("half-a.ndjson"), a).unwrap();
    std::fs::write(data.join("half-b.ndjson"), b).unwrap();
    let whole = discover_job(&gen_dir, &[]);
    let halves: Vec<String> = discover_job(&data, &[])
        .lines()
        .map(|l| format!("{l}\n"))
        .collect();
    (whole, halves)
}

/// The same two halves with the shared windows on a Valkey Cluster of three primaries
/// (`coordinator.valkey.windows_url`) and the metadata on a single server (`url`): the
/// alerts of one worker, each once, and the window states spread over every node.
#[test]
fn rapid_activity_with_windows_on_a_valkey_cluster_matches_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, halves) = alternate_halves(dir.path());
    let cluster = pf_test_services::ValkeyCluster::start(3);
    two_workers_raise_one_workers_alerts(dir.path(), &whole, &halves, Some(&cluster.url()));
    for node in 0..3 {
        let keys: u64 = cluster.command(node, &["DBSIZE"]).parse().unwrap();
        assert!(keys > 0, "cluster node {node} holds window states");
    }
}

/// One Parquet file cut into ranges by `pf-discoverer --split-size`, half of the ranges
/// to each of two workers running at once: the same rapid-activity alerts as one worker
/// reading the whole file, each raised once.
#[test]
fn a_split_file_over_two_workers_raises_one_workers_alerts() {
    let (dir, data) = generated(200_000, 1, FileFormat::Parquet, 10_000);
    let whole = discover_job(&data, &[]);
    let listing = discover_job(&data, &["--split-size", "500000"]);
    let ranges: Vec<&str> = listing.lines().collect();
    assert!(ranges.len() >= 4, "{} ranges", ranges.len());
    let (first, second) = ranges.split_at(ranges.len() / 2);
    let halves = [first, second].map(|part| part.iter().map(|l| format!("{l}\n")).collect());
    two_workers_raise_one_workers_alerts(dir.path(), &whole, &halves, None);
}

/// A server without hash field expiry (as Valkey < 9.0): shared windows are refused
/// at start with an error naming the server, the version needed and `windows: local`;
/// with `windows: local` the same server keeps the metadata and the run completes.
#[test]
fn a_server_without_hash_field_expiry_refuses_shared_windows_and_serves_local_ones() {
    let (dir, data) = generated(5_000, 1, FileFormat::Ndjson, 1_000);
    let listing = discover_job(&data, &[]);
    let rules = dir.path().join("rapid.yaml");
    std::fs::write(&rules, format!("threshold: 30\n{RAPID_ACTIVITY_RULE}")).unwrap();
    let valkey = Valkey::start_without_hash_field_expiry();
    let url = valkey.url();
    let run = |name: &str, windows: &str| {
        let alerts = dir.path().join(format!("{name}.alerts"));
        let extra = format!(
            "    windows: {windows}\n{}",
            rules_with_alerts(&rules, &alerts)
        );
        let cfg = config(dir.path(), &format!("{name}.yaml"), 30, &extra);
        let summary = dir.path().join(format!("{name}.json"));
        let args = worker_args(&cfg, &url, &summary, name);
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend(["--destination", "null", "--threads", "1"]);
        (
            run_with_stdin(&bin("pf-worker"), &args, listing.as_bytes()),
            summary,
        )
    };

    let (refused, _) = run("shared", "shared");
    assert_exit(&refused, 1);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    for needed in [
        "coordinator.valkey.windows",
        "Valkey 9.0 or later",
        &format!("127.0.0.1:{}", valkey.port()),
        "windows: local",
    ] {
        assert!(stderr.contains(needed), "`{needed}` in: {stderr}");
    }

    let (local, summary) = run("local", "local");
    assert_exit(&local, 0);
    let summary = read_summary(&summary);
    assert_accounted(&summary);
    assert_eq!(summary.totals.rows_indexed, 5_000, "{summary:?}");
    assert!(
        !rapid_alerts(&dir.path().join("local.alerts")).is_empty(),
        "the rules ran with windows in process"
    );
}

/// The work items of `data` for job `rules`, listed with `extra` flags.
fn discover_job(data: &Path, extra: &[&str]) -> String {
    let mut args = vec!["--path", data.to_str().unwrap(), "--job-id", "rules"];
    args.extend(extra);
    String::from_utf8(pf_tests::discover(&args)).unwrap()
}

/// Runs `whole` through one worker with windows in process, then each of `parts`
/// through its own worker, all at once, with windows shared in Valkey (on
/// `windows_url` when given, else on the metadata's server): the rapid-activity alerts
/// must be the same set, each raised once.
fn two_workers_raise_one_workers_alerts(
    dir: &Path,
    whole: &str,
    parts: &[String],
    windows_url: Option<&str>,
) {
    let rules_only_rapid = dir.join("rapid.yaml");
    std::fs::write(
        &rules_only_rapid,
        format!("threshold: 30\n{RAPID_ACTIVITY_RULE}"),
    )
    .unwrap();
    let rules_cfg = |alerts: &Path| rules_with_alerts(&rules_only_rapid, alerts);

    // Reference: one worker, the whole unsplit input, windows in process.
    let one_alerts = dir.join("one.alerts");
    let one_cfg = dir.join("one.yaml");
    std::fs::write(
        &one_cfg,
        format!("worker:\n  progress: never\n{}", rules_cfg(&one_alerts)),
    )
    .unwrap();
    in_process_run(&one_cfg, &["--threads", "1"], whole);
    let expected = rapid_alerts(&one_alerts);
    let expected_set: BTreeSet<&String> = expected.iter().collect();
    assert!(
        expected_set.len() > 20,
        "planted rapid activity: {}",
        expected_set.len()
    );
    assert_eq!(expected_set.len(), expected.len());

    // One worker per part, at the same time, windows shared in Valkey.
    let valkey = Valkey::start();
    let url = valkey.url();
    let mut children = Vec::new();
    let mut alert_files = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let alerts = dir.join(format!("w{i}.alerts"));
        // The parts are read at the same time, so one worker may be far ahead of the
        // other in event time: allow for that (30 days) in the shared windows.
        let windows = windows_url.map_or_else(String::new, |u| format!("    windows_url: {u}\n"));
        let extra = format!(
            "    window_lateness_secs: 2592000\n{windows}{}",
            rules_cfg(&alerts)
        );
        let cfg = config(dir, &format!("w{i}.yaml"), 30, &extra);
        let summary = dir.join(format!("w{i}.json"));
        let mut c = spawn_worker(
            &worker_args(&cfg, &url, &summary, &format!("w{i}")),
            &[
                "--destination",
                "null",
                "--threads",
                "1",
                "--batch-size",
                "2000",
            ],
            &summary,
        );
        feed(&mut c, part);
        children.push((c, summary));
        alert_files.push(alerts);
    }
    for (c, summary) in children {
        ok(&finished(c, &summary));
    }
    let two: Vec<String> = alert_files.iter().flat_map(|p| rapid_alerts(p)).collect();
    let two_set: BTreeSet<&String> = two.iter().collect();
    assert_eq!(
        two_set, expected_set,
        "same alerts across two workers as one"
    );
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for k in &two {
        *counts.entry(k).or_default() += 1;
    }
    assert!(
        counts.values().all(|&n| n == 1),
        "each alert raised exactly once"
    );
    println!(
        "rapid_activity: {} alerts with one worker, {} with two workers sharing Valkey",
        expected.len(),
        two.len()
    );
}
