use std::fmt::Write as _;

use pf_types::RunSummary;

/// The end-of-run report an operator reads.
pub fn render_summary(s: &RunSummary, destination: &str) -> String {
    let t = &s.totals;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "── Paraflow run summary ──────────────────────────────"
    );
    let _ = writeln!(
        out,
        "files      {} total: {} completed, {} failed, {} duplicate deliveries skipped",
        s.files_total, s.files_completed, s.files_failed, s.files_skipped
    );
    let _ = writeln!(
        out,
        "rows       {} read: {} indexed ({destination}), {} dropped, {} failed (record DLQ)",
        t.rows_read, t.rows_indexed, t.rows_dropped, t.rows_failed
    );
    let share = if t.rows_read > 0 {
        100.0 * t.fraud_rows as f64 / t.rows_read as f64
    } else {
        0.0
    };
    let _ = writeln!(out, "fraud      {} rows ({share:.2}%)", t.fraud_rows);
    let _ = writeln!(
        out,
        "throughput {:.2} s, {:.0} rows/s, {:.1} MB/s ({} bytes read), {} batches",
        s.duration_s, s.rows_per_s, s.mb_per_s, t.bytes_read, t.batches
    );
    if let Some(rss) = s.peak_rss_mb {
        let _ = writeln!(out, "memory     peak RSS {rss:.1} MiB");
    }
    for f in &s.failures {
        let _ = writeln!(
            out,
            "FAILED     {} ({}, {} attempt{}): {}",
            f.uri,
            f.class,
            f.attempts,
            if f.attempts == 1 { "" } else { "s" },
            f.error
        );
    }
    out
}
