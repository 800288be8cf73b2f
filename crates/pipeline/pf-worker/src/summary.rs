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
    for (rule, fired) in &s.fraud_by_rule {
        let mut line = format!("rule       {rule:<16} {fired:>10} rows");
        if let Some(r) = s.recall_by_rule.get(rule) {
            let _ = write!(line, "  recall {r:.4}");
        }
        if let Some(p) = s.precision_by_rule.get(rule) {
            let _ = write!(line, "  precision {p:.4}");
        }
        let _ = writeln!(out, "{line}");
    }
    for (rule, late) in &s.window_late_by_rule {
        let _ = writeln!(
            out,
            "LATE       {rule:<16} {late:>10} window events arrived beyond the allowed lateness and \
             were not counted: alerts may be missed (raise coordinator.valkey.window_lateness_secs \
             to cover how far apart in event time threads and workers read)"
        );
    }
    if !s.fraud_by_severity.is_empty() {
        let by: Vec<String> = s
            .fraud_by_severity
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "severity   {}", by.join(", "));
    }
    if !s.indexer.is_empty() {
        let counters: Vec<String> = s.indexer.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "{destination:<10} {}", counters.join(", "));
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
