//! Live run counters and their Prometheus endpoint.
//!
//! Pipeline threads add to [`Metrics`] once per batch (relaxed atomics, never per
//! record); the progress display and [`serve`]'s `/metrics` endpoint read them. The
//! final summary is computed from exact per-thread totals, not from these counters.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use pf_error::{PfError, Result};
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

/// Counters for one process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Records seen in sources.
    pub rows_read: AtomicU64,
    /// Records accepted by the destination.
    pub rows_indexed: AtomicU64,
    /// Records dropped by the transform.
    pub rows_dropped: AtomicU64,
    /// Records that failed while decoding.
    pub rows_failed_read: AtomicU64,
    /// Records that failed in the transform.
    pub rows_failed_transform: AtomicU64,
    /// Records the destination rejected.
    pub rows_failed_index: AtomicU64,
    /// Records flagged as fraud.
    pub fraud_rows: AtomicU64,
    /// Source bytes read.
    pub bytes_read: AtomicU64,
    /// Batches handed to the indexer.
    pub batches: AtomicU64,
    /// Files completed.
    pub files_completed: AtomicU64,
    /// Files failed for good.
    pub files_failed: AtomicU64,
    /// File attempts given back to the queue for a retry.
    pub files_retried: AtomicU64,
    /// Duplicate deliveries of completed files.
    pub files_skipped: AtomicU64,
    /// Files being processed right now.
    pub files_in_flight: AtomicI64,
    /// Nanoseconds spent reading and decoding.
    pub read_ns: AtomicU64,
    /// Nanoseconds spent in the transform.
    pub transform_ns: AtomicU64,
    /// Nanoseconds spent indexing.
    pub index_ns: AtomicU64,
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
        let c = match stage {
            Stage::Read => &self.rows_failed_read,
            Stage::Transform => &self.rows_failed_transform,
            Stage::Index => &self.rows_failed_index,
        };
        add(c, n);
    }

    /// Adds a delta of per-file counters (failures are added per stage separately).
    pub fn add_stats(&self, d: &FileStats) {
        add(&self.rows_read, d.rows_read);
        add(&self.rows_indexed, d.rows_indexed);
        add(&self.rows_dropped, d.rows_dropped);
        add(&self.fraud_rows, d.fraud_rows);
        add(&self.bytes_read, d.bytes_read);
        add(&self.batches, d.batches);
    }

    /// Adds time spent in a stage.
    pub fn add_stage_time(&self, stage: Stage, elapsed: Duration) {
        let c = match stage {
            Stage::Read => &self.read_ns,
            Stage::Transform => &self.transform_ns,
            Stage::Index => &self.index_ns,
        };
        add(c, elapsed.as_nanos() as u64);
    }

    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Records read so far.
    pub fn rows_read(&self) -> u64 {
        Self::get(&self.rows_read)
    }

    /// Files finished so far (completed, failed or skipped).
    pub fn files_done(&self) -> u64 {
        Self::get(&self.files_completed)
            + Self::get(&self.files_failed)
            + Self::get(&self.files_skipped)
    }

    /// The counters in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let g = Self::get;
        let one = |c: &AtomicU64| vec![("", g(c))];
        let by_stage = |read: &AtomicU64, transform: &AtomicU64, index: &AtomicU64| {
            vec![
                ("stage=\"read\"", g(read)),
                ("stage=\"transform\"", g(transform)),
                ("stage=\"index\"", g(index)),
            ]
        };
        // (name, help, series as (labels, value)), in exposition order.
        let counters = [
            (
                "paraflow_rows_read_total",
                "Records seen in sources.",
                one(&self.rows_read),
            ),
            (
                "paraflow_rows_indexed_total",
                "Records accepted by the destination.",
                one(&self.rows_indexed),
            ),
            (
                "paraflow_rows_dropped_total",
                "Records dropped by the transform.",
                one(&self.rows_dropped),
            ),
            (
                "paraflow_rows_failed_total",
                "Records sent to the record DLQ, by stage.",
                by_stage(
                    &self.rows_failed_read,
                    &self.rows_failed_transform,
                    &self.rows_failed_index,
                ),
            ),
            (
                "paraflow_fraud_rows_total",
                "Records flagged as fraud.",
                one(&self.fraud_rows),
            ),
            (
                "paraflow_bytes_read_total",
                "Source bytes read.",
                one(&self.bytes_read),
            ),
            (
                "paraflow_batches_total",
                "Batches handed to the indexer.",
                one(&self.batches),
            ),
            (
                "paraflow_files_total",
                "Files finished, by status.",
                vec![
                    ("status=\"completed\"", g(&self.files_completed)),
                    ("status=\"failed\"", g(&self.files_failed)),
                    ("status=\"retried\"", g(&self.files_retried)),
                    ("status=\"skipped\"", g(&self.files_skipped)),
                ],
            ),
            (
                "paraflow_stage_seconds_total",
                "Time spent in each pipeline stage, summed over threads.",
                by_stage(&self.read_ns, &self.transform_ns, &self.index_ns),
            ),
        ];
        let mut out = String::with_capacity(2048);
        for (name, help, series) in &counters {
            counter(&mut out, name, help, series);
        }
        let _ = writeln!(
            out,
            "# HELP paraflow_files_in_flight Files being processed now."
        );
        let _ = writeln!(out, "# TYPE paraflow_files_in_flight gauge");
        let _ = writeln!(
            out,
            "paraflow_files_in_flight {}",
            self.files_in_flight.load(Ordering::Relaxed)
        );
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, series: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let seconds = name.ends_with("_seconds_total");
    for (labels, v) in series {
        let value = if seconds {
            format!("{}", *v as f64 / 1e9)
        } else {
            v.to_string()
        };
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// A running `/metrics` endpoint; it serves until the process exits.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
}

impl MetricsServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Connections answered at once; one more is closed unanswered, so that idle or slow
/// clients cannot take more than this many threads.
const MAX_CONNECTIONS: u64 = 64;

/// Longest request head read; a client that sends more is answered from what came.
const MAX_REQUEST_HEAD: u64 = 8 * 1024;

/// How long a connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `addr` from a background thread.
///
/// A scrape endpoint needs no more than HTTP/1.0 request-response, so this avoids an
/// HTTP stack; each connection is answered on a thread of its own (at most
/// [`MAX_CONNECTIONS`] at once) and closed, so an idle or slow client never delays a
/// scrape.
pub fn serve(metrics: Arc<Metrics>, addr: SocketAddr) -> Result<MetricsServer> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| PfError::config("metrics.addr", format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| PfError::io(addr.to_string(), e))?;
    let open = Arc::new(AtomicU64::new(0));
    std::thread::Builder::new()
        .name("metrics-endpoint".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    open.fetch_sub(1, Ordering::AcqRel);
                    drop(stream);
                    continue;
                }
                let (metrics, done) = (Arc::clone(&metrics), Arc::clone(&open));
                let spawned = std::thread::Builder::new()
                    .name("metrics-scrape".into())
                    .spawn(move || {
                        if let Err(e) = answer(&metrics, stream) {
                            tracing::debug!(error = %e, "metrics scrape failed");
                        }
                        done.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    open.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })
        .map_err(|e| PfError::io("metrics thread", e))?;
    tracing::info!(addr = %local, "serving Prometheus metrics at /metrics");
    Ok(MetricsServer { addr: local })
}

fn answer(metrics: &Metrics, stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let mut reader = BufReader::new(std::io::Read::take(stream.try_clone()?, MAX_REQUEST_HEAD));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain headers so the client sees a clean close.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, body, ctype) = if path == "/metrics" || path.starts_with("/metrics?") {
        ("200 OK", metrics.render(), "text/plain; version=0.0.4")
    } else {
        ("404 Not Found", "try /metrics\n".to_owned(), "text/plain")
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn serves_prometheus_text() {
        let m = Metrics::new();
        m.add_stats(&FileStats {
            rows_read: 10,
            rows_indexed: 9,
            bytes_read: 100,
            batches: 1,
            ..Default::default()
        });
        m.add_failed(Stage::Read, 1);
        let server = serve(m.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("paraflow_rows_read_total 10\n"));
        assert!(body.contains("paraflow_rows_failed_total{stage=\"read\"} 1\n"));
        assert!(body.contains("# TYPE paraflow_files_in_flight gauge"));
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn idle_connections_do_not_hold_a_scrape() {
        let server = serve(Metrics::new(), "127.0.0.1:0".parse().unwrap()).unwrap();
        // Thirty clients connect and send nothing; one of them sends half a request.
        let mut idle: Vec<TcpStream> = (0..30)
            .map(|_| TcpStream::connect(server.local_addr()).unwrap())
            .collect();
        idle[0].write_all(b"GET /metr").unwrap();
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
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
    }
}
