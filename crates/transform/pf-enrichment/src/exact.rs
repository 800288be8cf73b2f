//! Exact-match lookup: an open-addressing hash table of row numbers over the key column.
//!
//! The keys themselves stay in the table's Arrow key column, so the index costs 8 bytes
//! per slot (a hash tag and a row) instead of an owned `String` per key; the tag rejects
//! almost every non-matching slot without touching the key bytes.

use arrow::array::{Array, StringArray};

use crate::cidr::LANES;
use xxhash_rust::xxh3::xxh3_64;

/// An empty slot. Rows are below `u32::MAX` (checked at load), so no row collides with it.
const EMPTY: u32 = u32::MAX;

/// A lookup that found nothing (the same sentinel as the CIDR index uses).
const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Slot {
    tag: u32,
    row: u32,
}

/// The lookup structure of an `exact` table.
#[derive(Clone)]
pub(crate) struct ExactIndex {
    slots: Box<[Slot]>,
    mask: usize,
    keys: StringArray,
    duplicates: usize,
}

impl ExactIndex {
    /// Indexes the non-null values of `keys`; of equal keys the last row wins.
    pub(crate) fn build(keys: StringArray) -> ExactIndex {
        // At most half full, so probe sequences stay short even for unlucky hashes.
        let capacity = (keys.len().max(4) * 2).next_power_of_two();
        let mut index = ExactIndex {
            slots: vec![Slot { tag: 0, row: EMPTY }; capacity].into_boxed_slice(),
            mask: capacity - 1,
            keys,
            duplicates: 0,
        };
        for row in 0..index.keys.len() {
            if index.keys.is_null(row) {
                continue;
            }
            let key = index.keys.value(row);
            let hash = xxh3_64(key.as_bytes());
            let mut pos = hash as usize & index.mask;
            loop {
                let slot = index.slots[pos];
                if slot.row == EMPTY {
                    index.slots[pos] = Slot {
                        tag: tag(hash),
                        row: row as u32,
                    };
                    break;
                }
                if slot.tag == tag(hash) && index.keys.value(slot.row as usize) == key {
                    index.slots[pos].row = row as u32;
                    index.duplicates += 1;
                    break;
                }
                pos = (pos + 1) & index.mask;
            }
        }
        index
    }

    /// The row whose key equals `key`.
    #[inline]
    pub(crate) fn lookup(&self, key: &str) -> Option<u32> {
        self.probe(key, xxh3_64(key.as_bytes()))
    }

    #[inline]
    fn probe(&self, key: &str, hash: u64) -> Option<u32> {
        let tag = tag(hash);
        let mut pos = hash as usize & self.mask;
        // The table is never full, so an empty slot ends every probe sequence; the bound
        // only guards against a logic error turning into an endless loop.
        for _ in 0..self.slots.len() {
            let slot = *self.slots.get(pos)?;
            if slot.row == EMPTY {
                return None;
            }
            if slot.tag == tag {
                let row = slot.row as usize;
                if row < self.keys.len() && self.keys.value(row) == key {
                    return Some(slot.row);
                }
            }
            pos = (pos + 1) & self.mask;
        }
        None
    }

    /// [`lookup`](Self::lookup) for up to [`LANES`] keys at once: `out[i]` is the row for
    /// `keys[i]`, or [`NONE`]. Hashing every key and touching every first slot before
    /// comparing any lets the CPU overlap the slot misses of all keys.
    #[inline]
    pub(crate) fn lookup_lanes(&self, keys: &[Option<&str>], out: &mut [u32]) {
        let n = keys.len().min(LANES).min(out.len());
        let mut hashes = [0u64; LANES];
        for i in 0..n {
            if let Some(k) = keys[i] {
                hashes[i] = xxh3_64(k.as_bytes());
            }
        }
        let mut first = [Slot { tag: 0, row: EMPTY }; LANES];
        for i in 0..n {
            if let Some(slot) = self.slots.get(hashes[i] as usize & self.mask) {
                first[i] = *slot;
            }
        }
        for i in 0..n {
            out[i] = match keys[i] {
                // The common outcomes, decided by the slot already loaded.
                Some(_) if first[i].row == EMPTY => NONE,
                Some(k) => self.probe(k, hashes[i]).unwrap_or(NONE),
                None => NONE,
            };
        }
    }

    pub(crate) fn duplicates(&self) -> usize {
        self.duplicates
    }
}

/// The slot position uses the low bits of the hash; the tag uses the high ones so that
/// keys sharing a probe sequence still differ in their tags.
#[inline]
fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_duplicate_wins_and_nulls_are_skipped() {
        let keys = StringArray::from(vec![Some("a"), Some("b"), None, Some("a"), Some("")]);
        let idx = ExactIndex::build(keys);
        assert_eq!(idx.lookup("a"), Some(3));
        assert_eq!(idx.lookup("b"), Some(1));
        assert_eq!(idx.lookup(""), Some(4));
        assert_eq!(idx.lookup("c"), None);
        assert_eq!(idx.duplicates(), 1);
    }

    #[test]
    fn many_keys() {
        let keys: StringArray = (0..50_000).map(|i| Some(format!("acct-{i:07}"))).collect();
        let idx = ExactIndex::build(keys);
        for i in 0..50_000 {
            assert_eq!(idx.lookup(&format!("acct-{i:07}")), Some(i));
        }
        assert_eq!(idx.lookup("acct-0050000"), None);
        let empty = ExactIndex::build(StringArray::from(Vec::<&str>::new()));
        assert_eq!(empty.lookup("x"), None);
    }
}
