use arrow::array::RecordBatch;

/// A batch of records on its way to the indexer, with each row's ordinal in its source file.
///
/// Ordinals make document ids deterministic (hash of uri + etag + ordinal) even after
/// the transform dropped some rows.
#[derive(Debug, Clone)]
pub struct DocBatch {
    /// The records.
    pub batch: RecordBatch,
    /// Ordinal of row 0 when rows are contiguous in the source.
    pub first_row: u64,
    /// Per-row ordinals when rows are not contiguous (after a filter); length = rows.
    pub ordinals: Option<Vec<u64>>,
}

impl DocBatch {
    /// Rows that are contiguous in the source, starting at `first_row`.
    pub fn contiguous(batch: RecordBatch, first_row: u64) -> Self {
        DocBatch {
            batch,
            first_row,
            ordinals: None,
        }
    }

    /// The source ordinal of row `i` of this batch.
    pub fn ordinal(&self, i: usize) -> u64 {
        match &self.ordinals {
            Some(o) => o[i],
            None => self.first_row + i as u64,
        }
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }
}
