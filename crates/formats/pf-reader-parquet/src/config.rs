//! `reader.parquet`: the one declaration of the Parquet reader's settings.

use std::collections::HashSet;

use pf_error::{PfError, Result};
use serde::{Deserialize, Serialize};

use crate::{ParquetReader, ParquetReaderOptions};

/// `reader.parquet`: Parquet reader settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParquetConfig {
    /// `columns`: read only these top-level columns; the others are never fetched from
    /// storage. Default `null`: every column.
    pub columns: Option<Vec<String>>,
}

impl ParquetConfig {
    /// Column names must be non-empty and unique; errors name the entry.
    pub fn validate(&self) -> Result<()> {
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
        })
    }
}
