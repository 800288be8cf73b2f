//! `reader.parquet`: the one declaration of the Parquet reader's settings.

use std::collections::HashSet;

use pf_error::{PfError, Result};
use serde::{Deserialize, Serialize};

use crate::{ParquetReader, ParquetReaderOptions};

/// `reader.parquet`: Parquet reader settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParquetConfig {
    /// `columns`: read only these top-level columns; the others are never fetched from
    /// storage. Default `null`: every column.
    pub columns: Option<Vec<String>>,
    /// `look_ahead_mib`: most MiB of the next row groups fetched while one decodes, per
    /// pipeline thread. The next group is always fetched (whatever its size), and one
    /// more each time decoding catches up with the fetches, so only slow stores use it.
    /// Default 8: hides 20–50 ms round trips; 0 fetches only the next group.
    pub look_ahead_mib: u64,
    /// `window_mib`: MiB of a row group's column chunks read ahead at once, per pipeline
    /// thread, shared by the columns in proportion to their sizes (each between 64 KiB
    /// and half of this). More hides slow stores better on large row groups and costs
    /// about twice as much memory (a window and its next fetch). Default 5: 1M-row
    /// groups at 20 ms per request read at 91–97% of 0 ms (53–70% at 50 ms) and cost
    /// 54–63 MB per added thread; 8 reads them at 76–95% at 50 ms for 66–79 MB.
    pub window_mib: u64,
}

impl Default for ParquetConfig {
    fn default() -> Self {
        ParquetConfig {
            columns: None,
            look_ahead_mib: crate::DEFAULT_LOOK_AHEAD_BYTES >> 20,
            window_mib: crate::DEFAULT_WINDOW_BYTES >> 20,
        }
    }
}

impl ParquetConfig {
    /// Column names must be non-empty and unique; errors name the entry.
    pub fn validate(&self) -> Result<()> {
        if self.window_mib == 0 {
            return Err(PfError::config(
                "reader.parquet.window_mib",
                "must be at least 1 (MiB of column chunks read ahead at once)",
            ));
        }
        let mut seen = HashSet::new();
        for (i, name) in self.columns.iter().flatten().enumerate() {
            let key = format!("reader.parquet.columns[{i}]");
            if name.trim().is_empty() {
                return Err(PfError::config(key, "must not be empty"));
            }
            if !seen.insert(name) {
                return Err(PfError::config(key, format!("duplicate name `{name}`")));
            }
        }
        Ok(())
    }

    /// The reader, cutting row groups into batches of `batch_size` rows
    /// (`reader.batch_size`).
    pub fn build(&self, batch_size: usize) -> ParquetReader {
        ParquetReader::new(ParquetReaderOptions {
            batch_size,
            columns: self.columns.clone(),
            look_ahead_bytes: self.look_ahead_mib.saturating_mul(1024 * 1024),
            window_bytes: self.window_mib.saturating_mul(1024 * 1024),
        })
    }
}
