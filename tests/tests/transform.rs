//! The transform stage through the real worker: scripts that fail per record, scripts
//! that cannot compile, and a script that changes and drops records.

use std::path::Path;

use pf_datagen::{GenOptions, generate};
use pf_tests::{assert_accounted, assert_exit, discover_and_process, dlq_lines, read_summary};

fn data(dir: &Path, rows: u64) {
    generate(&GenOptions {
        files: 2,
        seed: 11,
        ..GenOptions::new(dir.to_path_buf(), rows)
    })
    .expect("generate");
}

fn config(dir: &Path, script: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("script.rhai"), script).unwrap();
    let cfg = dir.join("worker.yaml");
    std::fs::write(
        &cfg,
        "worker:\n  progress: never\ntransform:\n  script: script.rhai\n  max_operations: 10000\n",
    )
    .unwrap();
    cfg
}

fn run(dir: &Path, cfg: &Path) -> (std::process::Output, pf_types::RunSummary) {
    let summary = dir.join("summary.json");
    let out = discover_and_process(
        &["--path", dir.join("data").to_str().unwrap()],
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--input",
            "stdin",
            "--threads",
            "2",
            "--dlq-dir",
            dir.join("dlq").to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
        ],
    );
    let s = if summary.exists() {
        read_summary(&summary)
    } else {
        Default::default()
    };
    (out, s)
}

#[test]
fn runaway_and_broken_records_fail_alone_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    data(&dir.path().join("data"), 2_000);
    // Every 100th record loops forever; every 250th reads a field that is not there.
    let script = r#"
fn transform(record) {
    let n = hash64(record.transaction_id) % 1000;
    if n % 100 == 7 {
        loop { n += 1; }
    }
    if n % 250 == 3 {
        let x = record.no_such_field.len();
    }
    record.amount_cents = record.amount * 100.0;
    record
}
"#;
    let cfg = config(dir.path(), script);
    let (out, s) = run(dir.path(), &cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(s.files_completed, 2);
    assert_eq!(s.totals.rows_read, 2_000);
    assert!(s.totals.rows_failed > 0, "some records must fail: {s:?}");
    assert_eq!(s.totals.rows_indexed + s.totals.rows_failed, 2_000);
    assert_accounted(&s);
    let lines = dlq_lines(&dir.path().join("dlq"));
    assert_eq!(lines.len() as u64, s.totals.rows_failed);
    let mut loops = 0;
    let mut missing = 0;
    for l in &lines {
        assert_eq!(l["stage"], "transform");
        let err = l["error"].as_str().unwrap();
        assert!(err.contains("line "), "error carries a position: {err}");
        if err.contains("line 5") {
            loops += 1;
        } else if err.contains("line 8") {
            missing += 1;
        }
    }
    assert!(
        loops > 0 && missing > 0,
        "both failure kinds with their lines: {lines:?}"
    );
}

#[test]
fn a_script_that_does_not_compile_stops_start_up_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    data(&dir.path().join("data"), 100);
    let cfg = config(
        dir.path(),
        "fn transform(record) {\n    let x = ;\n    record\n}\n",
    );
    let (out, _) = run(dir.path(), &cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("transform.script"), "{stderr}");
    assert!(
        stderr.contains("script.rhai:2:"),
        "file:line:col in {stderr}"
    );
}

#[test]
fn a_script_drops_and_enriches_records() {
    let dir = tempfile::tempdir().unwrap();
    data(&dir.path().join("data"), 3_000);
    let script = "fn transform(record) {\n  if record.channel == \"atm\" { return (); }\n  record.hour = hour(record.timestamp);\n  record\n}\n";
    let cfg = config(dir.path(), script);
    let (out, s) = run(dir.path(), &cfg);
    assert_exit(&out, 0);
    assert!(s.totals.rows_dropped > 0);
    assert_eq!(s.totals.rows_indexed + s.totals.rows_dropped, 3_000);
    assert_accounted(&s);
}

#[test]
fn window_events_beyond_the_lateness_are_reported_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // One account going back an hour: its second and third events are further behind
    // its newest than the window (60 s) plus the allowed lateness (0 s).
    std::fs::write(
        data.join("a.ndjson"),
        "{\"account_id\":\"a\",\"timestamp\":\"2026-01-01T01:00:00Z\"}\n\
         {\"account_id\":\"a\",\"timestamp\":\"2026-01-01T00:00:00Z\"}\n\
         {\"account_id\":\"a\",\"timestamp\":\"2026-01-01T00:00:01Z\"}\n\
         {\"account_id\":\"b\",\"timestamp\":\"2026-01-01T00:00:00Z\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        "threshold: 50\nrules:\n  - name: burst\n    window: { key: account_id, time: timestamp, seconds: 60, min_count: 2 }\n    severity: medium\n    score: 30\n",
    )
    .unwrap();
    let cfg = dir.path().join("worker.yaml");
    std::fs::write(
        &cfg,
        "worker:\n  progress: never\ntransform:\n  rules: rules.yaml\ncoordinator:\n  valkey:\n    window_lateness_secs: 0\n",
    )
    .unwrap();
    let (out, s) = run(dir.path(), &cfg);
    assert_exit(&out, 0);
    assert_eq!(s.totals.rows_indexed, 4);
    assert_eq!(
        s.window_late_by_rule,
        [("burst".to_owned(), 2)].into_iter().collect(),
        "{s:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let late = stderr
        .lines()
        .find(|l| l.starts_with("LATE"))
        .unwrap_or_else(|| panic!("no LATE line in the summary:\n{stderr}"));
    assert!(
        late.contains("burst") && late.contains(" 2 ") && late.contains("window_lateness_secs"),
        "{late}"
    );
}
