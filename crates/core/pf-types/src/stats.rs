use std::collections::BTreeMap;
use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

use pf_error::ErrorClass;

/// Counters for one file, or summed over many.
///
/// Accounting is exact: `rows_read == rows_indexed + rows_dropped + rows_failed`, where
/// `rows_read` includes records that failed to decode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStats {
    /// Records seen in the source, including ones that failed to decode.
    pub rows_read: u64,
    /// Records the destination accepted.
    pub rows_indexed: u64,
    /// Records the transform deliberately dropped.
    pub rows_dropped: u64,
    /// Records sent to the record DLQ (decode, transform or index failures).
    pub rows_failed: u64,
    /// Records flagged as fraud by the rules.
    pub fraud_rows: u64,
    /// Arrow batches handed to the indexer.
    pub batches: u64,
    /// Source bytes read (compressed, as stored).
    pub bytes_read: u64,
}

impl AddAssign for FileStats {
    fn add_assign(&mut self, o: Self) {
        self.rows_read += o.rows_read;
        self.rows_indexed += o.rows_indexed;
        self.rows_dropped += o.rows_dropped;
        self.rows_failed += o.rows_failed;
        self.fraud_rows += o.fraud_rows;
        self.batches += o.batches;
        self.bytes_read += o.bytes_read;
    }
}

/// A file that did not complete, as reported in the run summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileFailure {
    /// The file's URI; for one range of a split file, followed by its bytes and index.
    pub uri: String,
    /// Why it failed.
    pub class: ErrorClass,
    /// The error message.
    pub error: String,
    /// How many times processing was attempted.
    pub attempts: u32,
}

/// The end-of-run summary; its JSON keys are stable for scripts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Files taken from the queue and finished (completed or failed).
    pub files_total: u64,
    /// Files that completed.
    pub files_completed: u64,
    /// Files that failed permanently or ran out of attempts.
    pub files_failed: u64,
    /// Duplicate deliveries of already-completed files, acknowledged without work.
    pub files_skipped: u64,
    /// Large files this worker cut into ranges for its threads and the fleet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub files_split: u64,
    /// Ranges of split files completed here that did not complete their file (the last
    /// range to complete counts the file in `files_completed`, wherever it ran).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ranges_completed: u64,
    /// Record and byte counters over every finished file; flattened into the JSON.
    #[serde(flatten)]
    pub totals: FileStats,
    /// Wall-clock duration of the run.
    pub duration_s: f64,
    /// `rows_read / duration_s`.
    pub rows_per_s: f64,
    /// `bytes_read / duration_s`, in MB (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// Peak resident memory of the process, in MiB, when the OS reports it.
    pub peak_rss_mb: Option<f64>,
    /// Files that failed, with their errors.
    pub failures: Vec<FileFailure>,
    /// Rows each fraud rule fired on (present when rules are configured).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fraud_by_rule: BTreeMap<String, u64>,
    /// Rule firings by the rules' severity (`low`, `medium`, `high`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fraud_by_severity: BTreeMap<String, u64>,
    /// Per rule, the share of rows labelled with it (input column `label_rules`) that it
    /// fired on; present only when the input carries ground-truth labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recall_by_rule: BTreeMap<String, f64>,
    /// Per rule, the share of its firings on rows labelled with it (see `recall_by_rule`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub precision_by_rule: BTreeMap<String, f64>,
    /// Window-rule events not counted, by rule: they arrived more than
    /// `coordinator.valkey.window_lateness_secs` behind the newest event of their key
    /// (threads or workers far apart in the event time of time-ordered data), so alerts
    /// they would have completed are missed. Absent when none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub window_late_by_rule: BTreeMap<String, u64>,
    /// The destination's own counters (Elasticsearch: `sent indexed retried rejected dlq
    /// abandoned …`); absent for destinations without any.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub indexer: BTreeMap<String, u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RunSummary {
    /// Sets the duration and derives the rates from it.
    pub fn finish(&mut self, duration_s: f64) {
        self.duration_s = duration_s;
        let d = duration_s.max(1e-9);
        self.rows_per_s = self.totals.rows_read as f64 / d;
        self.mb_per_s = self.totals.bytes_read as f64 / 1e6 / d;
    }

    /// Merges another summary (e.g. from another thread) into this one.
    pub fn merge(&mut self, o: RunSummary) {
        self.files_total += o.files_total;
        self.files_completed += o.files_completed;
        self.files_failed += o.files_failed;
        self.files_skipped += o.files_skipped;
        self.files_split += o.files_split;
        self.ranges_completed += o.ranges_completed;
        self.totals += o.totals;
        self.failures.extend(o.failures);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_json_keys_are_flat_and_stable() {
        let mut s = RunSummary {
            files_total: 2,
            ..Default::default()
        };
        s.totals += FileStats {
            rows_read: 10,
            rows_indexed: 7,
            rows_dropped: 1,
            rows_failed: 2,
            bytes_read: 2_000_000,
            ..Default::default()
        };
        s.finish(2.0);
        let v = serde_json::to_value(&s).unwrap();
        for key in [
            "files_total",
            "files_failed",
            "rows_read",
            "rows_indexed",
            "rows_dropped",
            "rows_failed",
            "fraud_rows",
            "batches",
            "bytes_read",
            "duration_s",
            "rows_per_s",
            "mb_per_s",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["rows_read"], 10);
        assert_eq!(v["rows_per_s"], 5.0);
        assert_eq!(v["mb_per_s"], 1.0);
    }
}
