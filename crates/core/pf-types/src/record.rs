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

/// One record that failed on its own while the rest of its file carried on.
///
/// Serialized as one NDJSON line of the record DLQ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordFailure {
    /// URI of the source file.
    pub uri: String,
    /// 1-based line number for NDJSON sources.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u64>,
    /// 0-based ordinal of the record among the file's decoded records, when it has one.
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
