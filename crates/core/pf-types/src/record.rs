use serde::{Deserialize, Serialize};

use pf_error::ErrorClass;

/// The pipeline stage at which a record failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Decoding the source file (bad JSON line, type mismatch, line too long).
    Read,
    /// The transform script or fraud rules.
    Transform,
    /// The destination rejected the document.
    Index,
}

impl Stage {
    /// The stage's name as serialized (`read`, `transform`, `index`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Transform => "transform",
            Stage::Index => "index",
        }
    }
}

/// One record that failed on its own while the rest of its file carried on.
///
/// Serialized as one NDJSON line of the record DLQ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordFailure {
    /// URI of the source file.
    pub uri: String,
    /// 1-based line number for NDJSON sources, when known (a range that starts after
    /// the file's first byte knows its lines' byte offsets, not their numbers).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u64>,
    /// The record's ordinal in the file, which is its document id's suffix: the 0-based
    /// row index for Parquet, the byte offset of the line's first byte for NDJSON.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub row: Option<u64>,
    /// Where it failed.
    pub stage: Stage,
    /// Always [`ErrorClass::Record`] today; kept explicit for DLQ consumers.
    pub class: ErrorClass,
    /// Why it failed.
    pub error: String,
    /// The original record text, when available (truncated for very long lines).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub record: Option<String>,
}

/// How serious a fraud signal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Likely fraud.
    Medium,
    /// Act now.
    High,
}

impl Severity {
    /// The lower-case name used in alerts and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// A fraud signal raised by a rule or by a script's `alert(…)`, sent to the alerts
/// destination (one NDJSON line each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule (or script-chosen name) that raised it.
    pub rule: String,
    /// How serious it is.
    pub severity: Severity,
    /// URI of the file holding the record.
    pub uri: String,
    /// Ordinal of the record in its file.
    pub row: u64,
    /// Identifies the alert across workers and retries (e.g. `rule|account|window end`),
    /// so a destination can deduplicate.
    pub key: String,
    /// Free-form context (the script's `details`, the rule's key fields).
    pub details: serde_json::Value,
}
