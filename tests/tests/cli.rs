//! Operator-facing behaviour of the binaries: configuration errors, effective config,
//! and the one-command demo.

use std::process::Command;

use pf_tests::{assert_accounted, assert_exit, bin, read_summary, temp_file};

/// Runs `pf-worker` with `args`, which must succeed; its stdout.
fn worker_prints(args: &[&str]) -> String {
    let out = Command::new(bin("pf-worker")).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn print_config_masks_secrets_and_applies_flags() {
    let (_dir, cfg) = temp_file(
        "w.yaml",
        "indexer:\n  elasticsearch:\n    endpoints: ['http://localhost:9200']\n    username: elastic\n    password: ${PF_TEST_PW:-hunter2}\nreader:\n  batch_size: ${PF_TEST_BATCH:-1000}\n",
    );
    let cfg = cfg.to_str().unwrap();
    let text = worker_prints(&["--config", cfg, "--threads", "3", "--print-config"]);
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
        let (code, stderr) = worker_fails(&["--config", cfg.to_str().unwrap(), "--print-config"]);
        assert_eq!(code, Some(1), "{yaml}: {stderr}");
        assert!(stderr.contains(needle), "{yaml}: {stderr}");
    }
    let (code, stderr) = worker_fails(&["--input", "sqs"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("queue.sqs.queue_url"));
}

/// Runs `pf-worker` with `args` and no input; (exit code, stderr).
fn worker_fails(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bin("pf-worker"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn start_up_errors_name_the_key_and_where_it_was_set() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("worker.yaml");
    let path = cfg.to_str().unwrap();
    std::fs::write(
        dir.path().join("fraud.yaml"),
        "rules:\n  - name: x\n    condition: 'amount >'\n",
    )
    .unwrap();
    // (config file, extra flags, what stderr must say): a table file that does not
    // exist and a rules file that does not parse (both found while the transform stage
    // starts), a wrong-typed key in the file, through its flag and through --set.
    let cases: [(&str, &[&str], String); 5] = [
        (
            "worker:\n  threads: 1\ntransform:\n  tables:\n    - name: geo\n      kind: cidr\n      path: /nonexistent/geo.csv\n      key: network\n",
            &[],
            format!(
                "configuration error at `transform.tables[0].path`: {path}:7: object not found: /nonexistent/geo.csv"
            ),
        ),
        (
            "transform:\n  rules: fraud.yaml\n",
            &[],
            format!("configuration error at `transform.rules`: {path}:2: "),
        ),
        (
            "reader:\n  batch_size: 10\nworker:\n  threads: many\n",
            &[],
            format!("configuration error at `worker.threads`: {path}:4: invalid type"),
        ),
        (
            "",
            &["--threads", "many", "--print-config"],
            "configuration error at `worker.threads`: --threads: invalid type".to_owned(),
        ),
        (
            "",
            &["--set", "queue.kind=kafka", "--print-config"],
            "`queue.kind`: --set queue.kind: unknown variant `kafka`".to_owned(),
        ),
    ];
    for (yaml, flags, needle) in cases {
        std::fs::write(&cfg, yaml).unwrap();
        let mut args = vec!["--config", path];
        args.extend_from_slice(flags);
        let (code, stderr) = worker_fails(&args);
        assert_eq!(code, Some(1), "{yaml}: {stderr}");
        assert!(stderr.contains(&needle), "{yaml}: {needle}\n{stderr}");
    }
}

#[test]
fn set_overrides_any_key_and_flags_apply_before_it() {
    let text = worker_prints(&[
        "--threads",
        "3",
        "--set",
        "worker.threads=5",
        "--set",
        "worker.max_attempts=9",
        "--set",
        "worker.id=0123",
        "--es-endpoint",
        "http://a:9200",
        "--print-config",
    ]);
    for part in [
        "threads: 5",
        "max_attempts: 9",
        "id: '0123'",
        "- http://a:9200",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
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
    assert_exit(&out, 0);
    assert!(stdout.contains("Paraflow run summary"), "{stdout}");
    assert!(stdout.contains("rows/s"), "{stdout}");
    let s = read_summary(&summary);
    assert_eq!(
        (s.files_completed, s.totals.rows_read, s.totals.rows_indexed),
        (4, 50_000, 50_000)
    );
    assert_accounted(&s);
}
