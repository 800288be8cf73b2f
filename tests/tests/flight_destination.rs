//! The Arrow Flight destination through the binaries, against the in-repo Flight test
//! server (`pf-flight-test-server`, built on arrow-flight's server trait — a test
//! server, not a production Flight service): every scored row arrives by `DoPut` with
//! `fraud_score`; an unavailable server is retried; a refused token is permanent; TLS
//! works with the configured CA and is refused with another.

use std::path::Path;

use pf_datagen::{GenOptions, generate};
use pf_error::ErrorClass;
use pf_flight_test_server::{Code, FlightTestServer, TestCertificates};
use pf_tests::{bin, discover, read_summary, shipped_fraud_config, spawn_with_stdin};
use pf_types::FileFormat;

const ROWS: u64 = 20_000;

/// Generated transactions in `dir/data` and their work items.
fn inputs(dir: &Path) -> Vec<u8> {
    let data = dir.join("data");
    generate(&GenOptions {
        files: 4,
        format: FileFormat::Parquet,
        seed: 17,
        row_group_rows: 2_500,
        ..GenOptions::new(data.clone(), ROWS)
    })
    .expect("generate");
    discover(&["--path", data.to_str().unwrap()])
}

/// `pf-worker --destination flight` over `items`; (exit code, stderr).
fn run(
    dir: &Path,
    server: &FlightTestServer,
    items: &[u8],
    env: &[(&str, &str)],
    extra: &[&str],
) -> (i32, String) {
    let cfg = shipped_fraud_config(dir, "");
    let mut worker = std::process::Command::new(bin("pf-worker"));
    worker
        .args(["--config", cfg.to_str().unwrap(), "--input", "stdin"])
        .args([
            "--destination",
            "flight",
            "--flight-endpoint",
            &server.endpoint(),
        ])
        .args(["--threads", "2", "--batch-size", "2500"])
        .args([
            "--set",
            "worker.max_attempts=5",
            "--set",
            "worker.retry_base_ms=50",
        ])
        .arg("--summary-json")
        .arg(dir.join("summary.json"))
        .args(extra)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let out = spawn_with_stdin(&mut worker, items)
        .wait_with_output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_scored_row_arrives_by_do_put() {
    let dir = tempfile::tempdir().unwrap();
    let items = inputs(dir.path());
    let server = FlightTestServer::start().unwrap();
    let (code, log) = run(dir.path(), &server, &items, &[], &[]);
    assert_eq!(code, 0, "{log}");
    let got = server.received();
    assert_eq!(got.rows.get("transactions"), Some(&ROWS), "{:?}", got.rows);
    assert!(
        got.schemas
            .iter()
            .all(|s| s.field_with_name("fraud_score").is_ok()
                && s.field_with_name("is_fraud").is_ok()),
        "every batch carries the scores"
    );
    // Each call names its input and first row.
    let first_rows: Vec<serde_json::Value> = got
        .metadata
        .iter()
        .map(|m| serde_json::from_str(m).expect("app_metadata is JSON"))
        .collect();
    assert!(
        first_rows
            .iter()
            .all(|m| m["uri"].is_string() && m["rows"].as_u64() > Some(0))
    );
    let sent: u64 = first_rows.iter().map(|m| m["rows"].as_u64().unwrap()).sum();
    assert_eq!(sent, ROWS);
    let s = read_summary(&dir.path().join("summary.json"));
    assert_eq!(s.totals.rows_indexed, ROWS);
    assert!(s.totals.fraud_rows > 0);
}

#[test]
fn an_unavailable_server_is_retried_and_a_refused_token_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let items = inputs(dir.path());
    let server = FlightTestServer::start().unwrap();
    server.fail_next(3, Code::Unavailable);
    let (code, log) = run(dir.path(), &server, &items, &[], &[]);
    assert_eq!(code, 0, "{log}");
    let got = server.received();
    assert_eq!(got.refused, 3);
    // A failed call delivered nothing; the retry resumes from the checkpoint.
    assert_eq!(got.rows.get("transactions"), Some(&ROWS));

    let locked = FlightTestServer::start().unwrap();
    locked.require_token("s3cret");
    let with_token = |token: &str| {
        run(
            dir.path(),
            &locked,
            &items,
            &[("PF_FLIGHT_TOKEN", token)],
            &[],
        )
    };
    let (code, log) = with_token("not-the-token-9f3k");
    assert_eq!(code, 2, "{log}");
    let s = read_summary(&dir.path().join("summary.json"));
    assert_eq!(s.files_failed, 4);
    assert!(
        s.failures.iter().all(|f| f.class == ErrorClass::Permanent),
        "{:?}",
        s.failures
    );
    assert!(log.contains("Unauthenticated"), "{log}");
    assert!(!log.contains("9f3k"), "the token never reaches the log");
    let (code, log) = with_token("s3cret");
    assert_eq!(code, 0, "{log}");
    assert_eq!(locked.received().rows.get("transactions"), Some(&ROWS));
}

#[test]
fn rows_arrive_over_tls_with_the_configured_ca_and_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let items = inputs(dir.path());
    let certs = TestCertificates::generate();
    let server = FlightTestServer::start_tls(&certs).unwrap();
    assert!(server.endpoint().starts_with("grpc+tls://localhost:"));
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &certs.ca_pem).unwrap();
    let trust = |ca: &Path| format!("indexer.flight.ca_cert={}", ca.display());
    let (code, log) = run(dir.path(), &server, &items, &[], &["--set", &trust(&ca)]);
    assert_eq!(code, 0, "{log}");
    assert_eq!(server.received().rows.get("transactions"), Some(&ROWS));

    // A CA that did not sign the server's certificate: nothing is delivered.
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, TestCertificates::generate().ca_pem).unwrap();
    let (code, log) = run(dir.path(), &server, &items, &[], &["--set", &trust(&other)]);
    assert_ne!(code, 0, "an unknown CA must not be trusted:\n{log}");
    assert!(log.contains("invalid peer certificate"), "{log}");
    // It will not heal: permanent at the first attempt, naming the key to fix.
    let s = read_summary(&dir.path().join("summary.json"));
    assert_eq!(s.files_failed, 4);
    assert!(
        s.failures
            .iter()
            .all(|f| f.class == ErrorClass::Permanent && f.attempts == 1),
        "{:?}",
        s.failures
    );
    assert!(log.contains("indexer.flight.ca_cert"), "{log}");
    assert_eq!(
        server.received().rows.get("transactions"),
        Some(&ROWS),
        "no row arrived over the untrusted connection"
    );
}
