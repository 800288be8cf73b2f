//! Operator-facing behaviour of the binaries: configuration errors, effective config,
//! and the one-command demo.

use std::process::Command;

use pf_tests::{assert_accounted, bin, read_summary};

#[test]
fn print_config_masks_secrets_and_applies_flags() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("w.yaml");
    std::fs::write(
        &cfg,
        "indexer:\n  elasticsearch:\n    endpoints: ['http://localhost:9200']\n    username: elastic\n    password: ${PF_TEST_PW:-hunter2}\nreader:\n  batch_size: ${PF_TEST_BATCH:-1000}\n",
    )
    .unwrap();
    let out = Command::new(bin("pf-worker"))
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--threads",
            "3",
            "--print-config",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("hunter2"), "secret leaked: {text}");
    assert!(text.contains("***"));
    assert!(text.contains("threads: 3"));
    assert!(text.contains("batch_size: 1000"));
}

#[test]
fn config_errors_name_the_key_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    for (yaml, needle) in [
        ("reader:\n  batch_size: big\n", "reader.batch_size"),
        ("indexer:\n  bulk_size: 3\n", "indexer.bulk_size"),
        (
            "reader:\n  batch_size: ${PF_TEST_SURELY_UNSET_VAR}\n",
            "PF_TEST_SURELY_UNSET_VAR",
        ),
    ] {
        let cfg = dir.path().join("bad.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        let out = Command::new(bin("pf-worker"))
            .args(["--config", cfg.to_str().unwrap(), "--print-config"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{yaml}: {stderr}");
        assert!(stderr.contains(needle), "{yaml}: {stderr}");
    }
    let out = Command::new(bin("pf-worker"))
        .args(["--input", "sqs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("queue.sqs.queue_url"));
}

#[test]
fn demo_runs_the_whole_pipeline_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("demo.json");
    let out = Command::new(bin("pf"))
        .current_dir(dir.path())
        .args(["demo", "--rows", "50000", "--files", "4", "--threads", "2"])
        .args(["--summary-json", summary.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Paraflow run summary"), "{stdout}");
    assert!(stdout.contains("rows/s"), "{stdout}");
    let s = read_summary(&summary);
    assert_eq!(
        (s.files_completed, s.totals.rows_read, s.totals.rows_indexed),
        (4, 50_000, 50_000)
    );
    assert_accounted(&s);
}
