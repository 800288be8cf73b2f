//! Groups transformed batches into index requests.
//!
//! Readers produce batches sized for decoding speed; destinations want requests sized
//! for their bulk API. The [`Accumulator`] slices and groups batches (zero-copy) into
//! [`Chunk`]s of at most `max_docs` documents and about `max_bytes` bytes.
//!
//! A batch that carries a reader resume point closes the chunk it ends in, even when
//! that chunk is not full: the chunk then holds exactly the records up to the resume
//! point, so the checkpoint taken after indexing it is safe (every record before it
//! has an outcome) and its counters cover exactly those records (none of the next
//! batch). Resume points come per Parquet row group or per NDJSON read chunk, so the
//! extra, smaller requests are rare.

use pf_traits::{BulkLimits, DocBatch, ResumePoint};

/// One index request's worth of documents.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    /// The documents, in source order.
    pub docs: Vec<DocBatch>,
    /// Total documents.
    pub rows: usize,
    /// Set when indexing this chunk (after all earlier ones) makes the resume point safe.
    pub resume: Option<ResumePoint>,
}

/// Accumulates documents of one file into bounded chunks.
#[derive(Debug)]
pub struct Accumulator {
    limits: BulkLimits,
    pending: Chunk,
    pending_bytes: usize,
}

impl Accumulator {
    /// An empty accumulator; zero limits are treated as 1.
    pub fn new(limits: BulkLimits) -> Self {
        Accumulator {
            limits: BulkLimits {
                max_docs: limits.max_docs.max(1),
                max_bytes: limits.max_bytes.max(1),
            },
            pending: Chunk::default(),
            pending_bytes: 0,
        }
    }

    /// Adds a batch; returns the chunks that became full, in order, and — when the
    /// batch carries `resume`, the reader's resume point after it — the chunk it ends
    /// in, with that resume point.
    pub fn push(&mut self, docs: DocBatch, resume: Option<ResumePoint>) -> Vec<Chunk> {
        let mut ready = Vec::new();
        let rows = docs.num_rows();
        if rows > 0 {
            self.add(docs, &mut ready);
        }
        if resume.is_some() {
            self.pending.resume = resume;
            ready.push(self.take());
        }
        ready
    }

    fn add(&mut self, docs: DocBatch, ready: &mut Vec<Chunk>) {
        let rows = docs.num_rows();
        let bytes_per_row = (docs.batch.get_array_memory_size() / rows).max(1);
        if self.room(bytes_per_row) >= rows {
            // Moved whole, not copied: per-row ordinals can be as large as a column.
            self.append(docs, rows, bytes_per_row, ready);
            return;
        }
        let mut offset = 0;
        while offset < rows {
            let take = self.room(bytes_per_row).min(rows - offset);
            self.append(slice(&docs, offset, take), take, bytes_per_row, ready);
            offset += take;
        }
    }

    /// Rows of `bytes_per_row` the pending chunk still takes (at least one).
    fn room(&self, bytes_per_row: usize) -> usize {
        let room_docs = self.limits.max_docs - self.pending.rows;
        let room_bytes = self.limits.max_bytes.saturating_sub(self.pending_bytes) / bytes_per_row;
        room_docs.min(room_bytes.max(1))
    }

    fn append(
        &mut self,
        part: DocBatch,
        rows: usize,
        bytes_per_row: usize,
        ready: &mut Vec<Chunk>,
    ) {
        self.pending.docs.push(part);
        self.pending.rows += rows;
        self.pending_bytes += rows * bytes_per_row;
        if self.pending.rows >= self.limits.max_docs || self.pending_bytes >= self.limits.max_bytes
        {
            ready.push(self.take());
        }
    }

    /// The remaining documents (end of file), if any — or a bare resume point.
    pub fn flush(&mut self) -> Option<Chunk> {
        if self.pending.rows == 0 && self.pending.resume.is_none() {
            return None;
        }
        Some(self.take())
    }

    fn take(&mut self) -> Chunk {
        self.pending_bytes = 0;
        std::mem::take(&mut self.pending)
    }
}

fn slice(docs: &DocBatch, offset: usize, len: usize) -> DocBatch {
    DocBatch {
        batch: docs.batch.slice(offset, len),
        first_row: docs.first_row + offset as u64,
        ordinals: docs
            .ordinals
            .as_ref()
            .map(|o| o[offset..offset + len].to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch};
    use std::sync::Arc;

    fn docs(first: u64, n: usize) -> DocBatch {
        let col = Int64Array::from_iter_values((0..n as i64).map(|i| i + first as i64));
        let batch = RecordBatch::try_from_iter([("v", Arc::new(col) as _)]).unwrap();
        DocBatch::contiguous(batch, first)
    }

    fn rp(n: u64) -> Option<ResumePoint> {
        Some(ResumePoint {
            position: n,
            next_row: n,
            lines_done: 0,
        })
    }

    #[test]
    fn splits_and_groups_by_doc_count_keeping_order() {
        let mut acc = Accumulator::new(BulkLimits {
            max_docs: 4,
            max_bytes: usize::MAX,
        });
        let ready = acc.push(docs(0, 10), None);
        assert_eq!(ready.iter().map(|c| c.rows).collect::<Vec<_>>(), [4, 4]);
        assert_eq!(ready[1].docs[0].first_row, 4);
        let ready = acc.push(docs(10, 3), rp(1));
        assert_eq!(ready.len(), 2);
        assert_eq!(ready[0].rows, 4);
        assert_eq!(ready[0].docs.len(), 2);
        assert_eq!(ready[0].docs[1].ordinal(0), 10);
        // Two rows of the resumable batch were still in it: no resume point there.
        assert!(ready[0].resume.is_none());
        // The batch's end closes the next chunk early, with the resume point.
        assert_eq!(ready[1].rows, 1);
        assert_eq!(ready[1].docs[0].ordinal(0), 12);
        assert_eq!(ready[1].resume, rp(1));
        assert!(acc.flush().is_none());
    }

    #[test]
    fn resume_point_rides_on_the_chunk_that_completes_its_batch() {
        let mut acc = Accumulator::new(BulkLimits {
            max_docs: 5,
            max_bytes: usize::MAX,
        });
        let ready = acc.push(docs(0, 5), rp(7));
        assert_eq!(ready.len(), 2, "a full chunk, then the bare resume point");
        assert_eq!(ready[0].resume, None);
        assert_eq!((ready[1].rows, ready[1].resume), (0, rp(7)));
        // Batches without a resume point keep filling chunks across batch boundaries.
        assert!(acc.push(docs(5, 3), None).is_empty());
        let ready = acc.push(docs(8, 1), rp(9));
        assert_eq!(ready.len(), 1);
        assert_eq!((ready[0].rows, ready[0].resume), (4, rp(9)));
        // A batch with no rows (all records failed) still carries its resume point.
        let ready = acc.push(docs(5, 0), rp(8));
        assert_eq!(ready.len(), 1);
        assert_eq!((ready[0].rows, ready[0].resume), (0, rp(8)));
    }

    #[test]
    fn byte_limit_bounds_chunks() {
        let one = docs(0, 1000);
        let per_row = one.batch.get_array_memory_size() / 1000;
        let mut acc = Accumulator::new(BulkLimits {
            max_docs: usize::MAX,
            max_bytes: per_row * 300,
        });
        let ready = acc.push(one, None);
        assert_eq!(
            ready.iter().map(|c| c.rows).collect::<Vec<_>>(),
            [300, 300, 300]
        );
        assert_eq!(acc.flush().unwrap().rows, 100);
    }
}
