//! Run metrics: a few exact live counters for the progress display, and every figure
//! recorded through the [`metrics`] facade, which `metrics-exporter-prometheus` serves
//! at `/metrics` once [`install`] has run (`metrics.addr`).
//!
//! Pipeline threads record once per batch, never per record; without an endpoint the
//! facade has no recorder and a record costs next to nothing. Counters count attempts:
//! the rows of a file retried from its checkpoint are read and indexed again and counted
//! again here, while the run summary, built from per-file totals, counts them once.
//! Components record their own metrics beside their code (the Elasticsearch bulk
//! sender, the SQS queue, the Valkey connection, the rules); each crate describes them
//! in a `describe_metrics` function that `pf-config` calls for all of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use pf_error::{ErrorClass, PfError, Result};
use pf_types::{FileStats, Stage};
use serde::{Deserialize, Serialize};

/// `metrics`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `addr`: `ip:port` to serve `/metrics` on, e.g. `127.0.0.1:9898` (keep it on
    /// loopback unless a scraper elsewhere needs it). Default `null`: no endpoint.
    pub addr: Option<String>,
}

impl MetricsConfig {
    /// The parsed `addr`; an error names `metrics.addr` when it is not `ip:port`.
    pub fn socket_addr(&self) -> Result<Option<SocketAddr>> {
        match &self.addr {
            None => Ok(None),
            Some(addr) => addr.trim().parse().map(Some).map_err(|e| {
                PfError::config(
                    "metrics.addr",
                    format!(
                        "`{addr}` is not a socket address ({e}); expected ip:port such as 127.0.0.1:9898"
                    ),
                )
            }),
        }
    }
}

/// Bucket bounds, in seconds, of every `*_seconds` histogram: 100 µs to an hour, so one
/// heatmap scale fits a batch's transform, a slow bulk request and a queue's lag alike.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Installs the process-wide Prometheus recorder and serves it at `http://addr/metrics`
/// from a thread of its own, then describes the pipeline's metrics and creates their
/// series at zero (a scrape shows them before the first file).
///
/// The exporter's HTTP server answers connections concurrently, so idle or slow clients
/// never delay a scrape. Fails when `addr` cannot be bound or a recorder is already
/// installed in this process.
pub fn install(addr: SocketAddr) -> Result<()> {
    let endpoint_error = |e: &dyn std::fmt::Display| {
        PfError::config(
            "metrics.addr",
            format!("cannot serve metrics on {addr}: {e}"),
        )
    };
    exporter()
        .with_http_listener(addr)
        .install()
        .map_err(|e| endpoint_error(&e))?;
    describe_metrics();
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    Ok(())
}

/// The exporter's settings: bucketed histograms (for heatmaps) for every `*_seconds`.
fn exporter() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .expect("SECONDS_BUCKETS is not empty")
}

/// Metric names of the pipeline (the other crates name theirs beside their code).
pub mod names {
    /// Counter: records seen in sources (decoded or failed), every attempt.
    pub const ROWS_READ: &str = "paraflow_rows_read_total";
    /// Counter: records accepted by the destination, every attempt.
    pub const ROWS_INDEXED: &str = "paraflow_rows_indexed_total";
    /// Counter: records dropped by the transform.
    pub const ROWS_DROPPED: &str = "paraflow_rows_dropped_total";
    /// Counter by `stage`: records sent to the record DLQ.
    pub const ROWS_FAILED: &str = "paraflow_rows_failed_total";
    /// Counter: records flagged as fraud.
    pub const FRAUD_ROWS: &str = "paraflow_fraud_rows_total";
    /// Counter: source bytes read (compressed size for compressed files).
    pub const BYTES_READ: &str = "paraflow_bytes_read_total";
    /// Counter: chunks of documents handed to the destination.
    pub const BATCHES: &str = "paraflow_batches_total";
    /// Counter by `status`: files (and ranges) settled.
    pub const FILES: &str = "paraflow_files_total";
    /// Counter by `class`: file attempts ended by an error.
    pub const FILE_ERRORS: &str = "paraflow_file_errors_total";
    /// Gauge: files being processed now.
    pub const FILES_IN_FLIGHT: &str = "paraflow_files_in_flight";
    /// Histogram by `stage`, seconds: time per batch in each pipeline stage.
    pub const STAGE_DURATION: &str = "paraflow_stage_duration_seconds";
}

use names::*;

const STAGES: [Stage; 3] = [Stage::Read, Stage::Transform, Stage::Index];
const CLASSES: [ErrorClass; 2] = [ErrorClass::Transient, ErrorClass::Permanent];

/// Describes the pipeline's metrics to the installed recorder and creates their
/// series at zero.
pub fn describe_metrics() {
    for (name, unit, help) in [
        (
            ROWS_READ,
            Unit::Count,
            "Records seen in sources, decoded or failed; rows re-read by a retry count again.",
        ),
        (
            ROWS_INDEXED,
            Unit::Count,
            "Records accepted by the destination; rows re-sent by a retry count again.",
        ),
        (
            ROWS_DROPPED,
            Unit::Count,
            "Records dropped by the transform.",
        ),
        (
            ROWS_FAILED,
            Unit::Count,
            "Records written to the record DLQ, by the stage they failed in.",
        ),
        (
            FRAUD_ROWS,
            Unit::Count,
            "Records flagged as fraud by the rules.",
        ),
        (
            BYTES_READ,
            Unit::Bytes,
            "Source bytes read (compressed size for compressed files).",
        ),
        (
            BATCHES,
            Unit::Count,
            "Chunks of documents handed to the destination.",
        ),
        (
            FILES,
            Unit::Count,
            "Files settled, by status: completed, failed (dead-lettered), retried (released for another attempt), skipped (duplicate delivery or claim lost), range_completed (one range of a split file).",
        ),
        (
            FILE_ERRORS,
            Unit::Count,
            "File attempts ended by an error, by class: transient (retried) or permanent (dead-lettered).",
        ),
    ] {
        describe_counter!(name, unit, help);
    }
    describe_gauge!(FILES_IN_FLIGHT, Unit::Count, "Files being processed now.");
    describe_histogram!(
        STAGE_DURATION,
        Unit::Seconds,
        "Time per batch in each pipeline stage: read (decode), transform (script and rules), index (destination)."
    );
    for (name, zero) in stat_counters(&FileStats::default()) {
        counter!(name).increment(zero);
    }
    for stage in STAGES {
        counter!(ROWS_FAILED, "stage" => stage.as_str()).increment(0);
        // A registered histogram is exported (empty) before its first sample.
        let _ = histogram!(STAGE_DURATION, "stage" => stage.as_str());
    }
    for outcome in FileOutcome::ALL {
        counter!(FILES, "status" => outcome.as_str()).increment(0);
    }
    for class in CLASSES {
        counter!(FILE_ERRORS, "class" => class.as_str()).increment(0);
    }
    gauge!(FILES_IN_FLIGHT).set(0.0);
}

/// The unlabeled counters a [`FileStats`] delta adds to, with its values.
fn stat_counters(d: &FileStats) -> [(&'static str, u64); 6] {
    [
        (ROWS_READ, d.rows_read),
        (ROWS_INDEXED, d.rows_indexed),
        (ROWS_DROPPED, d.rows_dropped),
        (FRAUD_ROWS, d.fraud_rows),
        (BYTES_READ, d.bytes_read),
        (BATCHES, d.batches),
    ]
}

/// How a delivery of a file (or of one range of a split file) was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOutcome {
    /// Every record accounted for; acknowledged.
    Completed,
    /// One range of a split file completed; the file counts once, when its last
    /// range completes.
    RangeCompleted,
    /// Given up for good; dead-lettered.
    Failed,
    /// Released for another attempt (transient failure or shutdown).
    Retried,
    /// Not worked: a duplicate delivery of a completed file, or a claim lost.
    Skipped,
}

impl FileOutcome {
    const ALL: [FileOutcome; 5] = [
        FileOutcome::Completed,
        FileOutcome::RangeCompleted,
        FileOutcome::Failed,
        FileOutcome::Retried,
        FileOutcome::Skipped,
    ];

    /// The `status` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FileOutcome::Completed => "completed",
            FileOutcome::RangeCompleted => "range_completed",
            FileOutcome::Failed => "failed",
            FileOutcome::Retried => "retried",
            FileOutcome::Skipped => "skipped",
        }
    }
}

/// The live counters of one process that the progress display reads; every method also
/// records to the metrics facade.
#[derive(Debug, Default)]
pub struct Metrics {
    rows_read: AtomicU64,
    bytes_read: AtomicU64,
    files_done: AtomicU64,
    files_in_flight: AtomicI64,
}

fn add(c: &AtomicU64, v: u64) {
    if v != 0 {
        c.fetch_add(v, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A fresh set of counters, shareable across threads.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Adds `n` records that failed at `stage`.
    pub fn add_failed(&self, stage: Stage, n: u64) {
        counter!(ROWS_FAILED, "stage" => stage.as_str()).increment(n);
    }

    /// Adds a delta of per-file counters (failures are added per stage separately).
    pub fn add_stats(&self, d: &FileStats) {
        add(&self.rows_read, d.rows_read);
        add(&self.bytes_read, d.bytes_read);
        for (name, v) in stat_counters(d) {
            if v != 0 {
                counter!(name).increment(v);
            }
        }
    }

    /// Records the time one batch spent in a stage.
    pub fn add_stage_time(&self, stage: Stage, elapsed: Duration) {
        histogram!(STAGE_DURATION, "stage" => stage.as_str()).record(elapsed.as_secs_f64());
    }

    /// A file's processing started (the in-flight gauge).
    pub fn file_started(&self) {
        self.files_in_flight.fetch_add(1, Ordering::Relaxed);
        gauge!(FILES_IN_FLIGHT).increment(1.0);
    }

    /// A file's processing ended, however it was settled.
    pub fn file_ended(&self) {
        self.files_in_flight.fetch_sub(1, Ordering::Relaxed);
        gauge!(FILES_IN_FLIGHT).decrement(1.0);
    }

    /// Counts how a delivery was settled.
    pub fn file_settled(&self, outcome: FileOutcome) {
        if matches!(
            outcome,
            FileOutcome::Completed | FileOutcome::Failed | FileOutcome::Skipped
        ) {
            add(&self.files_done, 1);
        }
        counter!(FILES, "status" => outcome.as_str()).increment(1);
    }

    /// Counts a file attempt ended by an error of `class`.
    pub fn file_error(&self, class: ErrorClass) {
        counter!(FILE_ERRORS, "class" => class.as_str()).increment(1);
    }

    /// Records read so far (every attempt).
    pub fn rows_read(&self) -> u64 {
        self.rows_read.load(Ordering::Relaxed)
    }

    /// Source bytes read so far (every attempt).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Files finished so far (completed, failed or skipped).
    pub fn files_done(&self) -> u64 {
        self.files_done.load(Ordering::Relaxed)
    }

    /// Files being processed now.
    pub fn files_in_flight(&self) -> i64 {
        self.files_in_flight.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// What the exporter would serve after `record` ran against a recorder of its own.
    fn rendered(record: impl FnOnce()) -> String {
        let recorder = exporter().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, record);
        handle.render()
    }

    #[test]
    fn pipeline_figures_are_exported() {
        let m = Metrics::new();
        let text = rendered(|| {
            describe_metrics();
            m.add_stats(&FileStats {
                rows_read: 10,
                rows_indexed: 9,
                bytes_read: 100,
                batches: 1,
                ..Default::default()
            });
            m.add_failed(Stage::Read, 1);
            m.add_stage_time(Stage::Transform, Duration::from_millis(3));
            m.file_started();
            m.file_settled(FileOutcome::Completed);
            m.file_error(ErrorClass::Transient);
        });
        for line in [
            "paraflow_rows_read_total 10",
            "paraflow_rows_indexed_total 9",
            "paraflow_bytes_read_total 100",
            "paraflow_rows_failed_total{stage=\"read\"} 1",
            "paraflow_rows_failed_total{stage=\"index\"} 0",
            "paraflow_files_total{status=\"completed\"} 1",
            "paraflow_files_total{status=\"failed\"} 0",
            "paraflow_file_errors_total{class=\"transient\"} 1",
            "paraflow_files_in_flight 1",
            // 3 ms falls in the 5 ms bucket, not the 2.5 ms one.
            "paraflow_stage_duration_seconds_bucket{stage=\"transform\",le=\"0.0025\"} 0",
            "paraflow_stage_duration_seconds_bucket{stage=\"transform\",le=\"0.005\"} 1",
            "paraflow_stage_duration_seconds_count{stage=\"transform\"} 1",
            // Registered at start-up: shown before its first sample.
            "paraflow_stage_duration_seconds_count{stage=\"index\"} 0",
            "# TYPE paraflow_stage_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        assert_eq!(
            (m.rows_read(), m.bytes_read(), m.files_done()),
            (10, 100, 1)
        );
    }

    fn free_port() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
    }

    fn scrape(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    }

    /// The only test that installs the process-wide recorder (one per process).
    #[test]
    fn idle_connections_do_not_hold_a_scrape() {
        let addr = free_port();
        install(addr).unwrap();
        Metrics::new().add_stage_time(Stage::Read, Duration::from_millis(1));
        // Thirty clients connect and send nothing; one of them sends half a request.
        let mut idle: Vec<TcpStream> = (0..30).map(|_| TcpStream::connect(addr).unwrap()).collect();
        idle[0].write_all(b"GET /metr").unwrap();
        let body = scrape(addr);
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(
            body.contains("paraflow_stage_duration_seconds_bucket{stage=\"read\""),
            "{body}"
        );
        assert!(body.contains("paraflow_rows_read_total 0"), "{body}");
        // Answered while every idle client is still connected: a server that answers
        // one connection at a time would have had to time each of them out first.
        for (i, conn) in idle.iter_mut().enumerate() {
            conn.set_nonblocking(true).unwrap();
            let mut byte = [0u8; 1];
            let still_open = matches!(
                conn.read(&mut byte),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            );
            assert!(
                still_open,
                "idle connection {i} was closed before the scrape"
            );
        }
        // A second endpoint in one process is refused with the key to look at.
        let again = install(free_port()).unwrap_err().to_string();
        assert!(again.contains("metrics.addr"), "{again}");
    }
}
