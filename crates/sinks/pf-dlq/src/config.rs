//! `record_dlq`: the one declaration of the record DLQ's settings.

use std::path::PathBuf;
use std::sync::Arc;

use pf_error::{PfError, Result};
use pf_traits::RecordDlq;
use serde::{Deserialize, Serialize};

use crate::{FileRecordDlq, ObjectRecordDlq, PutObject};

/// `record_dlq`: where records that fail on their own are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordDlqConfig {
    /// `dir`: directory for the NDJSON files of failed records (source uri, row, error,
    /// original record). Created when needed. Default `./dlq`.
    pub dir: PathBuf,
    /// `s3_prefix`: `s3://bucket/prefix/` to upload the failed records to instead (one
    /// NDJSON object per flush, named by worker id, a random part and sequence), so a fleet's
    /// record DLQ lands in one place. Default `null`: files in `dir`.
    pub s3_prefix: Option<String>,
}

impl Default for RecordDlqConfig {
    fn default() -> Self {
        RecordDlqConfig {
            dir: PathBuf::from("./dlq"),
            s3_prefix: None,
        }
    }
}

impl RecordDlqConfig {
    /// `dir` must not be empty.
    pub fn validate(&self) -> Result<()> {
        if self.dir.as_os_str().is_empty() {
            return Err(PfError::config("record_dlq.dir", "must not be empty"));
        }
        Ok(())
    }

    /// Files in `dir`, or, with `s3_prefix` (given here as the normalized `prefix_uri`),
    /// objects uploaded with `put` and named after `writer` (the worker id).
    pub fn build(
        &self,
        prefix_uri: Option<String>,
        writer: &str,
        put: PutObject,
    ) -> Arc<dyn RecordDlq> {
        match prefix_uri {
            Some(uri) => Arc::new(ObjectRecordDlq::new(uri, writer, put)),
            None => Arc::new(FileRecordDlq::new(&self.dir)),
        }
    }
}
