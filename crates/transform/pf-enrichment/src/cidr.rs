//! Longest-prefix match by flattening prefixes into disjoint ranges.
//!
//! Prefixes either nest or are disjoint, so the address line splits into ranges each of
//! which has exactly one longest covering prefix (or none). Storing only the range starts,
//! sorted, turns a lookup into "last start ≤ address", a binary search. A first-level
//! index on the top bits of the address narrows that search to the few starts in the
//! address's bucket, 16 to 20 bits depending on the table size (about one bucket per
//! range); IPv6 uses a sampled two-level search instead (see [`V6Ranges`]). IPv4 entries
//! pack the start's bits
//! below the bucket and the row into one `u64`, so the cache line the search ends on
//! holds the answer too. A lookup in a large table thus costs about two cache misses
//! (index, bucket); [`CidrIndex::lookup_lanes`] overlaps them across keys.

use crate::ip::{Ip, Prefix, parse_ip};

/// Marks a range covered by no prefix, and a lookup that found nothing.
pub(crate) const NONE: u32 = u32::MAX;

/// How many keys [`CidrIndex::lookup_lanes`] works on at once: enough independent misses
/// to keep the memory system busy, few enough that the lane arrays stay in registers and L1.
pub(crate) const LANES: usize = 32;

/// The lookup structure of a `cidr` table.
#[derive(Clone)]
pub(crate) struct CidrIndex {
    v4: V4Ranges,
    v6: V6Ranges,
    /// Rows whose prefix is also given by a later row, which wins.
    duplicates: usize,
}

#[derive(Clone)]
struct V4Ranges {
    /// `32 - index bits`: the address shifted right by this is its bucket.
    shift: u32,
    /// `first[h]` = number of range starts below bucket `h`; bucket `h` holds
    /// `first[h]..first[h + 1]`.
    first: Box<[u32]>,
    /// One per range, sorted: the start's bits below the bucket number in the high half,
    /// the row (or [`NONE`]) in the low half. Keeping the row next to the start means the
    /// cache line the search ends on already holds the answer.
    entries: Box<[u64]>,
}

/// IPv6 ranges. A top-bits bucket index, as for IPv4, does not work here: real (and
/// generated) IPv6 tables sit in a handful of /16s under `2000::/3`, so a few buckets
/// would hold everything. Instead every [`V6_BLOCK`]-th start is copied into `samples`,
/// small enough to stay in cache; searching it picks a block of starts spanning two cache
/// lines, searched in turn.
#[derive(Clone)]
struct V6Ranges {
    samples: Box<[u128]>,
    starts: Box<[u128]>,
    rows: Box<[u32]>,
}

/// Starts per IPv6 block: 8 × 16 bytes, two cache lines.
const V6_BLOCK: usize = 8;

impl CidrIndex {
    /// Builds the index from `(prefix, row)` pairs. Of several rows with the same prefix the
    /// last (highest row) wins.
    pub(crate) fn build(prefixes: impl IntoIterator<Item = (Prefix, u32)>) -> CidrIndex {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (prefix, row) in prefixes {
            let (start, end) = prefix.range();
            match prefix.ip {
                Ip::V4(_) => v4.push((start, end, row)),
                Ip::V6(_) => v6.push((start, end, row)),
            }
        }
        let mut duplicates = 0;
        let v4 = flatten(v4, u128::from(u32::MAX), &mut duplicates);
        let v6 = flatten(v6, u128::MAX, &mut duplicates);
        CidrIndex {
            v4: V4Ranges::new(&v4),
            v6: V6Ranges::new(&v6),
            duplicates,
        }
    }

    /// The row of the longest prefix containing the address `ip`, if `ip` parses.
    #[inline]
    pub(crate) fn lookup(&self, ip: &str) -> Option<u32> {
        match parse_ip(ip)? {
            Ip::V4(a) => self.v4.lookup(a),
            Ip::V6(a) => self.v6.lookup(a),
        }
    }

    /// [`lookup`](Self::lookup) for up to [`LANES`] keys at once: `out[i]` is the row for
    /// `keys[i]`, or [`NONE`]. `out` must be at least as long as `keys`.
    ///
    /// A single lookup waits on two cache misses in a row (the bucket index, then the
    /// bucket). Doing each step for all keys before the next step makes those misses
    /// independent of each other, so the CPU overlaps them instead of paying for each.
    #[inline]
    pub(crate) fn lookup_lanes(&self, keys: &[Option<&str>], out: &mut [u32]) {
        let n = keys.len().min(LANES).min(out.len());
        let mut ips = [0u32; LANES];
        let mut is_v4 = [false; LANES];
        let mut v6 = [None; LANES];
        for i in 0..n {
            out[i] = NONE;
            match keys[i].and_then(parse_ip) {
                Some(Ip::V4(a)) => {
                    ips[i] = a;
                    is_v4[i] = true;
                }
                // Looked up last, so their cache misses do not hold up the IPv4 parses.
                Some(Ip::V6(a)) => v6[i] = Some(a),
                None => {}
            }
        }
        let v4 = &self.v4;
        let mut bounds = [(0usize, 0usize); LANES];
        for i in 0..n {
            if is_v4[i] {
                bounds[i] = v4.bucket(ips[i]);
            }
        }
        // Touch each bucket's first start: another set of independent misses, and the
        // answer outright when the address lies before it.
        let mut before_first = [false; LANES];
        for i in 0..n {
            if is_v4[i] {
                let (lo, hi) = bounds[i];
                before_first[i] = lo >= hi || v4.low_of(lo) > v4.low(ips[i]);
            }
        }
        for i in 0..n {
            if is_v4[i] {
                let (lo, hi) = bounds[i];
                let row = if before_first[i] {
                    v4.row_at(lo.wrapping_sub(1))
                } else {
                    v4.search(ips[i], lo, hi)
                };
                out[i] = row.unwrap_or(NONE);
            }
        }
        for i in 0..n {
            if let Some(a) = v6[i] {
                out[i] = self.v6.lookup(a).unwrap_or(NONE);
            }
        }
    }

    pub(crate) fn duplicates(&self) -> usize {
        self.duplicates
    }

    /// Number of disjoint ranges (IPv4, IPv6).
    #[cfg(test)]
    pub(crate) fn range_counts(&self) -> (usize, usize) {
        (self.v4.entries.len(), self.v6.rows.len())
    }
}

impl V4Ranges {
    fn new(ranges: &[(u128, u32)]) -> V4Ranges {
        // About one bucket per range, so a bucket holds a few ranges and the search stays
        // within a cache line; at least 16 bits so small tables stay cheap to index, at most
        // 20 (a 4 MiB index) so huge tables do not pay for an index larger than themselves.
        // (Measured on a 500,000-prefix table: 20 bits beat 16, 18 and 22.)
        let bits = (usize::BITS - ranges.len().max(1).leading_zeros()).clamp(16, 20);
        Self::with_bits(ranges, bits)
    }

    fn with_bits(ranges: &[(u128, u32)], bits: u32) -> V4Ranges {
        let shift = 32 - bits;
        let low_mask = (1u64 << shift) - 1;
        V4Ranges {
            shift,
            first: bucket_index(
                ranges.iter().map(|&(s, _)| (s as u32 >> shift) as usize),
                1 << bits,
                ranges.len(),
            ),
            entries: ranges
                .iter()
                .map(|&(s, r)| ((s as u64 & low_mask) << 32) | u64::from(r))
                .collect(),
        }
    }

    #[inline]
    fn lookup(&self, ip: u32) -> Option<u32> {
        let (lo, hi) = self.bucket(ip);
        self.search(ip, lo, hi)
    }

    /// The entries of `ip`'s bucket, as an index range (empty if the index is damaged).
    #[inline]
    fn bucket(&self, ip: u32) -> (usize, usize) {
        let h = (ip >> self.shift) as usize;
        match (self.first.get(h), self.first.get(h + 1)) {
            (Some(&lo), Some(&hi)) => (lo as usize, hi as usize),
            _ => (0, 0),
        }
    }

    /// `ip`'s bits below its bucket number.
    #[inline]
    fn low(&self, ip: u32) -> u64 {
        u64::from(ip) & ((1u64 << self.shift) - 1)
    }

    /// The within-bucket start of entry `idx` (`u64::MAX` if out of range).
    #[inline]
    fn low_of(&self, idx: usize) -> u64 {
        self.entries.get(idx).map_or(u64::MAX, |&e| e >> 32)
    }

    /// The row of entry `idx`, `None` for a gap or an index out of range.
    #[inline]
    fn row_at(&self, idx: usize) -> Option<u32> {
        let row = *self.entries.get(idx)? as u32;
        (row != NONE).then_some(row)
    }

    /// The row of the last range starting at or before `ip`, searching bucket `lo..hi`.
    #[inline]
    fn search(&self, ip: u32, lo: usize, hi: usize) -> Option<u32> {
        let low = self.low(ip);
        let within = self
            .entries
            .get(lo..hi)
            .map_or(0, |b| b.partition_point(|&e| e >> 32 <= low));
        // Range 0 starts at address 0, so some start is always ≤ ip; with none in this
        // bucket the answer is the last range of an earlier one. `wrapping_sub` turns a
        // damaged index into "no match" (via `row_at`) instead of a panic.
        self.row_at((lo + within).wrapping_sub(1))
    }
}

impl V6Ranges {
    fn new(ranges: &[(u128, u32)]) -> V6Ranges {
        let starts: Box<[u128]> = ranges.iter().map(|&(s, _)| s).collect();
        V6Ranges {
            samples: starts.iter().step_by(V6_BLOCK).copied().collect(),
            starts,
            rows: ranges.iter().map(|&(_, r)| r).collect(),
        }
    }

    #[inline]
    fn lookup(&self, ip: u128) -> Option<u32> {
        // Range 0 starts at address 0, so the first sample is always ≤ ip.
        let block = self.samples.partition_point(|&s| s <= ip).checked_sub(1)?;
        let lo = block * V6_BLOCK;
        let hi = (lo + V6_BLOCK).min(self.starts.len());
        let within = self.starts.get(lo..hi)?.partition_point(|&s| s <= ip);
        let idx = (lo + within).checked_sub(1)?;
        let row = *self.rows.get(idx)?;
        (row != NONE).then_some(row)
    }
}

/// `first[h]` = how many of the (sorted) bucket numbers are below `h`, for `h` in
/// `0..=buckets`.
fn bucket_index(numbers: impl Iterator<Item = usize>, buckets: usize, len: usize) -> Box<[u32]> {
    let mut counts = vec![0u32; buckets + 1];
    for b in numbers {
        counts[b + 1] += 1;
    }
    for h in 1..=buckets {
        counts[h] += counts[h - 1];
    }
    debug_assert_eq!(counts[buckets] as usize, len);
    counts.into_boxed_slice()
}

/// Turns possibly nested `(start, end, row)` prefixes (inclusive ends, within `0..=max`)
/// into sorted disjoint ranges `(start, row)`, the first starting at 0, each mapped to its
/// longest covering prefix or [`NONE`]. Neighbouring ranges with the same row are merged.
fn flatten(mut prefixes: Vec<(u128, u128, u32)>, max: u128, dups: &mut usize) -> Vec<(u128, u32)> {
    // Wider prefixes first at the same start, so a nested one is seen after its parent; for
    // the same prefix the highest row last, so it wins below.
    prefixes.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let before = prefixes.len();
    prefixes.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0 && later.1 == earlier.1;
        if same {
            // `dedup_by` keeps the earlier element; give it the later (winning) row.
            earlier.2 = later.2;
        }
        same
    });
    *dups += before - prefixes.len();

    let mut out: Vec<(u128, u32)> = vec![(0, NONE)];
    // The prefixes containing the current position, innermost last: (end, row).
    let mut stack: Vec<(u128, u32)> = Vec::new();
    for (start, end, row) in prefixes {
        while let Some(&(top_end, _)) = stack.last() {
            if top_end >= start {
                break;
            }
            stack.pop();
            // `top_end < start <= max`, so this cannot overflow.
            emit(
                &mut out,
                top_end + 1,
                stack.last().map_or(NONE, |&(_, r)| r),
            );
        }
        emit(&mut out, start, row);
        stack.push((end, row));
    }
    while let Some((top_end, _)) = stack.pop() {
        if top_end < max {
            emit(
                &mut out,
                top_end + 1,
                stack.last().map_or(NONE, |&(_, r)| r),
            );
        }
    }
    out
}

/// Appends a range starting at `start` (never below the last start). A range that would be
/// empty (same start as the last) replaces it; one with the same row as its predecessor is
/// merged into it.
fn emit(out: &mut Vec<(u128, u32)>, start: u128, row: u32) {
    if let Some(&(last_start, _)) = out.last()
        && last_start == start
    {
        out.pop();
    }
    if out.last().map(|&(_, r)| r) != Some(row) {
        out.push((start, row));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::parse_prefix;

    fn index(prefixes: &[&str]) -> CidrIndex {
        CidrIndex::build(
            prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| (parse_prefix(p).unwrap(), i as u32)),
        )
    }

    /// Asserts that every one of `ips` finds `row` (`None`: no match).
    fn assert_rows(idx: &CidrIndex, row: Option<u32>, ips: &[&str]) {
        for ip in ips {
            assert_eq!(idx.lookup(ip), row, "lookup({ip:?})");
        }
    }

    #[test]
    fn flatten_nested_and_adjacent() {
        let mut d = 0;
        let out = flatten(
            vec![
                (0, 99, 0),
                (10, 19, 1),
                (10, 14, 2),
                (20, 29, 3),
                (200, 255, 4),
            ],
            255,
            &mut d,
        );
        assert_eq!(
            out,
            vec![
                (0, 0),
                (10, 2),
                (15, 1),
                (20, 3),
                (30, 0),
                (100, NONE),
                (200, 4)
            ]
        );
        assert_eq!(d, 0);
    }

    #[test]
    fn flatten_duplicates_last_wins_and_merges() {
        let mut d = 0;
        let out = flatten(vec![(0, 9, 5), (0, 9, 7), (0, 9, 6)], 255, &mut d);
        assert_eq!(out, vec![(0, 7), (10, NONE)]);
        assert_eq!(d, 2);
        // A child with the same row as its parent leaves no seam.
        let out = flatten(vec![(0, 255, 1), (16, 31, 1)], 255, &mut d);
        assert_eq!(out, vec![(0, 1)]);
        let out = flatten(vec![], 255, &mut d);
        assert_eq!(out, vec![(0, NONE)]);
    }

    #[test]
    fn lookups_across_bucket_boundaries() {
        let idx = index(&[
            "10.0.0.0/8",
            "10.1.0.0/16",
            "10.1.255.255/32",
            "10.2.0.0/15",
        ]);
        assert_rows(&idx, Some(0), &["10.0.255.255"]);
        assert_rows(&idx, Some(1), &["10.1.0.0", "10.1.255.254"]);
        assert_rows(&idx, Some(2), &["10.1.255.255"]);
        assert_rows(&idx, Some(3), &["10.2.0.0", "10.3.255.255"]);
        assert_rows(&idx, Some(0), &["10.4.0.0"]);
        let outside = ["11.0.0.0", "9.255.255.255", "255.255.255.255", "0.0.0.0"];
        assert_rows(&idx, None, &outside);
    }

    #[test]
    fn full_range_prefixes() {
        let idx = index(&[
            "0.0.0.0/0",
            "255.255.255.255/32",
            "::/0",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
        ]);
        assert_rows(&idx, Some(0), &["0.0.0.0", "255.255.255.254"]);
        assert_rows(&idx, Some(1), &["255.255.255.255"]);
        assert_rows(
            &idx,
            Some(2),
            &["::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"],
        );
        assert_rows(&idx, Some(3), &["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]);
        assert_eq!(idx.range_counts(), (2, 2));
    }

    #[test]
    fn every_index_width_agrees_with_a_plain_search() {
        // Random nested prefixes, dense enough that buckets of every width hold several
        // ranges and many are empty.
        let mut state = 5u64;
        let mut next = || {
            state = crate::ip::test_mix64(state);
            state
        };
        let mut prefixes = Vec::new();
        for row in 0..20_000u32 {
            let h = next();
            let len = 8 + (h % 25) as u8;
            let addr = ((h >> 32) as u32 & 0x0FFF_FFFF) | 0x5000_0000;
            let p = parse_prefix(&format!("{}/{len}", std::net::Ipv4Addr::from(addr))).unwrap();
            let (a, b) = p.range();
            prefixes.push((a, b, row));
        }
        let flat = flatten(prefixes, u128::from(u32::MAX), &mut 0);
        let plain = |ip: u32| -> Option<u32> {
            let i = flat.partition_point(|&(s, _)| s <= u128::from(ip)) - 1;
            (flat[i].1 != NONE).then_some(flat[i].1)
        };
        let ips: Vec<u32> = (0..50_000)
            .map(|i| {
                let h = next();
                match i % 4 {
                    0 => h as u32,
                    // Range edges, where off-by-one errors live.
                    1 => flat[(h as usize >> 8) % flat.len()].0 as u32,
                    2 => (flat[(h as usize >> 8) % flat.len()].0 as u32).wrapping_sub(1),
                    _ => ((h >> 32) as u32 & 0x0FFF_FFFF) | 0x5000_0000,
                }
            })
            .collect();
        let texts: Vec<String> = ips
            .iter()
            .map(|&ip| std::net::Ipv4Addr::from(ip).to_string())
            .collect();
        let keys: Vec<Option<&str>> = texts.iter().map(|t| Some(t.as_str())).collect();
        for bits in [16, 17, 18, 20] {
            let v4 = V4Ranges::with_bits(&flat, bits);
            let index = CidrIndex {
                v4,
                v6: V6Ranges::new(&[(0, NONE)]),
                duplicates: 0,
            };
            let mut out = vec![0u32; keys.len()];
            for (k, o) in keys.chunks(LANES).zip(out.chunks_mut(LANES)) {
                index.lookup_lanes(k, o);
            }
            for (i, &ip) in ips.iter().enumerate() {
                let expected = plain(ip);
                assert_eq!(index.v4.lookup(ip), expected, "bits {bits}, {ip:#x}");
                assert_eq!(
                    (out[i] != NONE).then_some(out[i]),
                    expected,
                    "lanes, bits {bits}"
                );
            }
        }
    }
}
