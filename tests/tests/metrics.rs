//! The Prometheus endpoint of a fleet worker end to end: SQS (moto) for work items,
//! Valkey for metadata, the `_bulk` protocol test server (with throttled items) as the
//! destination. A scrape taken once every file is done must agree with the run summary
//! and the server's own counts, and must export every metric the shipped Grafana
//! dashboard (`config/grafana/paraflow.json`) queries.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pf_bulk_test_server::{BulkTestServer, Faults, ServerOptions};
use pf_test_services::{Valkey, free_port};
use pf_tests::cluster::{Cluster, finish, terminate};
use pf_tests::{read_summary, shipped_fraud_config};
use pf_types::{Compression, FileFormat};

const ROWS: u64 = 20_000;
const FILES: usize = 4;

/// One scrape: metric family → kind, and series (`name{labels}`) → value.
struct Scrape {
    text: String,
    kinds: BTreeMap<String, String>,
    helps: BTreeSet<String>,
    series: BTreeMap<String, f64>,
}

impl Scrape {
    fn take(addr: &str) -> Option<Scrape> {
        let mut s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        s.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let mut scrape = Scrape {
            text: body.to_owned(),
            kinds: BTreeMap::new(),
            helps: BTreeSet::new(),
            series: BTreeMap::new(),
        };
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                scrape.kinds.insert(name.to_owned(), kind.to_owned());
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                scrape
                    .helps
                    .insert(rest.split(' ').next().unwrap_or("").to_owned());
            } else if let Some((series, value)) = line.rsplit_once(' ') {
                let value = value
                    .parse()
                    .unwrap_or_else(|_| panic!("value of `{line}`"));
                scrape.series.insert(series.to_owned(), value);
            }
        }
        Some(scrape)
    }

    /// The value of one series, 0 when absent.
    fn get(&self, series: &str) -> f64 {
        self.series.get(series).copied().unwrap_or(0.0)
    }

    /// The sum over every series of `name` whose labels contain all of `labels`.
    fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.series
            .iter()
            .filter(|(s, _)| {
                let (n, l) = s.split_once('{').unwrap_or((s, ""));
                n == name && labels.iter().all(|want| l.contains(want))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

/// The metric families a dashboard's queries use (`_bucket`, `_count` and `_sum` of a
/// histogram name the histogram).
fn dashboard_metrics(path: &Path, exported: &BTreeMap<String, String>) -> BTreeSet<String> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("dashboard JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    assert!(
        exprs.len() >= 20,
        "the dashboard has {} queries",
        exprs.len()
    );
    let mut names = BTreeSet::new();
    for expr in exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("paraflow_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| exported.get(*base).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(name);
            names.insert(family.to_owned());
            rest = &tail[end..];
        }
    }
    names
}

#[test]
fn a_fleet_worker_exports_what_the_dashboard_shows_and_it_matches_the_run() {
    let c = Cluster::start(60);
    c.upload_generated("in/", ROWS, FILES, FileFormat::Parquet, Compression::None);
    let report = c.discover_to_sqs(&["--prefix", "in/"]);
    assert!(report.contains("4 messages sent"), "{report}");
    let valkey = Valkey::start();
    let server = BulkTestServer::start_local(ServerOptions {
        faults: Faults {
            throttle_fraction: 0.1,
            throttle_attempts: 1,
            ..Faults::default()
        },
        keep_sources: false,
        ..ServerOptions::default()
    })
    .unwrap();
    // In-process windows (metadata still in Valkey), so the window-state gauges show.
    let config = shipped_fraud_config(
        c.dir.path(),
        "coordinator:\n  valkey:\n    windows: local\nindexer:\n  elasticsearch:\n    retry_base_ms: 10\n    retry_max_ms: 100\n",
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let summary = c.path("summary.json");
    let worker = c
        .worker_command(&summary)
        .args(["--config", config.to_str().unwrap()])
        .args(["--valkey-url", &valkey.url()])
        .args(["--destination", "elasticsearch", "--es-endpoint"])
        .arg(server.url())
        .args([
            "--metrics-addr",
            &addr,
            "--threads",
            "2",
            "--idle-exit",
            "300",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Scrape until every file is done (the worker keeps serving while it waits for more).
    let deadline = Instant::now() + Duration::from_secs(240);
    let scrape = loop {
        if let Some(s) = Scrape::take(&addr)
            && s.get("paraflow_files_total{status=\"completed\"}") >= FILES as f64
        {
            break s;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill").arg(worker.id().to_string()).status();
            let (_, log) = finish(worker);
            panic!("the worker did not complete {FILES} files in time:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (code, log) = terminate(worker);
    assert_eq!(code, 0, "SIGTERM ends an idle worker cleanly:\n{log}");
    let run = read_summary(&summary);
    assert_eq!(run.files_completed, FILES as u64, "{run:?}");

    // Pipeline counters agree with the run summary (no file was retried).
    let rows = ROWS as f64;
    assert_eq!(scrape.get("paraflow_rows_read_total"), rows);
    assert_eq!(scrape.get("paraflow_rows_indexed_total"), rows);
    assert_eq!(
        scrape.get("paraflow_fraud_rows_total"),
        run.totals.fraud_rows as f64
    );
    assert_eq!(
        scrape.get("paraflow_bytes_read_total"),
        run.totals.bytes_read as f64
    );
    assert_eq!(scrape.get("paraflow_files_in_flight"), 0.0);
    assert_eq!(scrape.sum("paraflow_file_errors_total", &[]), 0.0);
    for stage in ["read", "transform", "index"] {
        let batches = scrape.get(&format!(
            "paraflow_stage_duration_seconds_count{{stage=\"{stage}\"}}"
        ));
        assert!(batches >= FILES as f64, "{stage}: {batches} batches timed");
    }
    // Rule hits per rule are the summary's `fraud_by_rule`.
    assert!(!run.fraud_by_rule.is_empty());
    for (rule, fired) in &run.fraud_by_rule {
        let rule_label = format!("rule=\"{rule}\"");
        assert_eq!(
            scrape.sum("paraflow_rule_hits_total", &[&rule_label]),
            *fired as f64,
            "hits of {rule}"
        );
    }
    assert!(scrape.get("paraflow_window_keys") > 0.0);

    // Bulk items: every row indexed once; each throttled item re-sent once.
    let stats = server.stats();
    assert!(stats.items_throttled > 0);
    assert_eq!(
        scrape.get("paraflow_bulk_items_total{result=\"indexed\"}"),
        rows
    );
    assert_eq!(
        scrape.get("paraflow_bulk_items_total{result=\"retried\"}"),
        stats.items_throttled as f64
    );
    assert_eq!(
        scrape.get("paraflow_bulk_requests_total{outcome=\"ok\"}"),
        stats.bulk_requests as f64
    );
    assert_eq!(
        scrape.get("paraflow_bulk_request_duration_seconds_count"),
        stats.bulk_requests as f64
    );

    // Queue and Valkey.
    assert_eq!(
        scrape.get("paraflow_queue_messages_total{event=\"acked\"}"),
        FILES as f64
    );
    assert_eq!(
        scrape.get("paraflow_queue_messages_total{event=\"received\"}"),
        FILES as f64
    );
    assert_eq!(
        scrape.get("paraflow_queue_messages_total{event=\"dead_lettered\"}"),
        0.0
    );
    assert_eq!(
        scrape.get("paraflow_queue_message_age_seconds_count"),
        FILES as f64
    );
    assert!(
        scrape.sum(
            "paraflow_valkey_call_duration_seconds_count",
            &["outcome=\"ok\""]
        ) >= 2.0 * FILES as f64,
        "a claim and a completion per file at least"
    );

    // Every family is described, and the dashboard only queries exported families.
    for family in scrape.kinds.keys() {
        assert!(scrape.helps.contains(family), "{family} has no HELP");
    }
    let dashboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/grafana/paraflow.json");
    let used = dashboard_metrics(&dashboard, &scrape.kinds);
    let missing: Vec<_> = used
        .iter()
        .filter(|m| !scrape.kinds.contains_key(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics the worker does not export: {missing:?}\n{}",
        scrape.text
    );
    assert!(used.contains("paraflow_stage_duration_seconds"));
}
