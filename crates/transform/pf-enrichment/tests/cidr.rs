//! Longest-prefix and exact matching, against hand-picked edge cases and against a
//! brute-force reference on random tables.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use pf_enrichment::{EnrichmentTable, TableKind};

/// A table whose value column `v` holds the row number, so a match is easy to read.
fn table(kind: TableKind, keys: &[&str]) -> EnrichmentTable {
    let values: Vec<String> = (0..keys.len()).map(|i| i.to_string()).collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(keys.to_vec())) as ArrayRef,
            Arc::new(StringArray::from(values)),
        ],
    )
    .unwrap();
    EnrichmentTable::from_batch("t", kind, "k", &batch).unwrap()
}

/// Asserts that every one of `keys` finds `row` (`None`: no match).
fn assert_rows(t: &EnrichmentTable, row: Option<u32>, keys: &[&str]) {
    for key in keys {
        assert_eq!(t.lookup_row(key), row, "lookup_row({key:?})");
    }
}

/// The CIDR table of `prefixes`, once every `(row, keys)` of `expected` is asserted:
/// each of the keys finds that row (`None`: no match).
fn cidr_table(prefixes: &[&str], expected: &[(Option<u32>, &[&str])]) -> EnrichmentTable {
    let t = table(TableKind::Cidr, prefixes);
    for &(row, keys) in expected {
        assert_rows(&t, row, keys);
    }
    t
}

#[test]
fn default_route_and_host_routes() {
    let t = cidr_table(
        &[
            "0.0.0.0/0",
            "1.2.3.4/32",
            "::/0",
            "2001:db8::1/128",
            "5.6.7.8",
        ],
        &[
            (Some(0), &["9.9.9.9", "0.0.0.0", "255.255.255.255"]),
            (Some(1), &["1.2.3.4"]),
            (Some(0), &["1.2.3.3", "1.2.3.5"]),
            (Some(3), &["2001:db8::1"]),
            (Some(2), &["2001:db8::2", "::"]),
        ],
    );
    assert_eq!(t.lookup_row("5.6.7.8"), Some(4), "a bare address is a /32");
    assert_eq!(t.lookup_value("5.6.7.8", "v"), Some("4"));
    assert_eq!(t.lookup_value("5.6.7.8", "nope"), None);
}

#[test]
fn nested_prefixes_longest_wins_regardless_of_order() {
    // Listed narrowest first, to show file order does not matter.
    cidr_table(
        &[
            "10.1.2.0/24",
            "10.1.0.0/16",
            "10.0.0.0/8",
            "10.1.2.128/25",
            "10.1.2.200/32",
        ],
        &[
            (Some(0), &["10.1.2.1", "10.1.2.127"]),
            (Some(1), &["10.1.9.9", "10.1.3.0"]),
            (Some(2), &["10.9.9.9", "10.255.255.255"]),
            (Some(3), &["10.1.2.128", "10.1.2.201", "10.1.2.255"]),
            (Some(4), &["10.1.2.200"]),
            (None, &["11.0.0.0", "9.255.255.255"]),
        ],
    );
}

#[test]
fn adjacent_prefixes_do_not_bleed() {
    cidr_table(
        &[
            "192.168.0.0/24",
            "192.168.1.0/24",
            "192.168.3.0/24",
            "2001:db8::/33",
            "2001:db8:8000::/33",
        ],
        &[
            (Some(0), &["192.168.0.255"]),
            (Some(1), &["192.168.1.0", "192.168.1.255"]),
            (None, &["192.168.2.0", "192.168.2.255"]),
            (Some(2), &["192.168.3.0"]),
            (None, &["192.168.4.0"]),
            (Some(3), &["2001:db8:7fff:ffff:ffff:ffff:ffff:ffff"]),
            (Some(4), &["2001:db8:8000::"]),
            (None, &["2001:db9::"]),
        ],
    );
}

#[test]
fn ipv4_mapped_ipv6_matches_ipv4_prefixes() {
    let t = table(
        TableKind::Cidr,
        &["1.2.3.0/24", "::ffff:10.0.0.0/104", "2001:db8::/32"],
    );
    assert_rows(
        &t,
        Some(0),
        &["::ffff:1.2.3.4", "::FFFF:1.2.3.4", "::ffff:0102:0304"],
    );
    assert_eq!(
        t.lookup_row("10.20.30.40"),
        Some(1),
        "a mapped prefix is an IPv4 prefix"
    );
    assert_rows(&t, Some(1), &["::ffff:10.20.30.40"]);
    assert_rows(&t, None, &["::ffff:1.2.4.4"]);
    // IPv4-compatible (deprecated) addresses are plain IPv6.
    assert_rows(&t, None, &["::1.2.3.4"]);
}

#[test]
fn invalid_ip_strings_match_nothing() {
    let t = table(TableKind::Cidr, &["0.0.0.0/0", "::/0"]);
    for bad in [
        "999.1.1.1",
        "",
        "1.2.3",
        "abc",
        "1.2.3.4 ",
        " 1.2.3.4",
        "1.2.3.4.5",
        "01.2.3.4",
        "1.2.3.256",
        "1.2.3.4/32",
        "1.2.3.-1",
        "2001:db8::1%eth0",
        "2001:db8:::1",
        "::ffff:999.1.1.1",
        "1.2.3.4\0",
        "١.٢.٣.٤",
        "\u{feff}1.2.3.4",
        &"9".repeat(10_000),
        &":".repeat(10_000),
    ] {
        assert_eq!(t.lookup_row(bad), None, "{bad:?}");
    }
    let keys = StringArray::from(vec![Some("1.2.3.4"), None, Some("nope"), Some("::1")]);
    let rows = t.lookup_rows(&keys);
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows.iter().collect::<Vec<_>>(),
        vec![Some(0), None, None, Some(1)]
    );
}

#[test]
fn duplicate_prefixes_last_row_wins() {
    let t = cidr_table(
        &[
            "10.0.0.0/8",
            "10.0.0.1/8",
            "10.1.0.0/16",
            "10.0.0.0/8",
            "10.1.0.0/16",
        ],
        &[(Some(3), &["10.9.9.9"]), (Some(4), &["10.1.9.9"])],
    );
    assert_eq!(t.duplicate_keys(), 3);
    assert_eq!(t.len(), 5, "shadowed rows stay in the table");
}

#[test]
fn exact_lookups() {
    let t = table(
        TableKind::Exact,
        &[
            "acct-0000001",
            "acct-0000002",
            "ACCT-0000001",
            "acct-0000002",
            "ü",
        ],
    );
    assert_eq!(t.lookup_row("acct-0000001"), Some(0));
    assert_eq!(t.lookup_row("acct-0000002"), Some(3), "last duplicate wins");
    assert_eq!(t.lookup_row("ACCT-0000001"), Some(2), "case matters");
    assert_eq!(t.lookup_row("acct-0000001 "), None, "whitespace matters");
    assert_eq!(t.lookup_row("ü"), Some(4));
    assert_eq!(t.lookup_row(""), None);
    assert_eq!(t.duplicate_keys(), 1);
    assert_eq!(t.lookup_value("acct-0000002", "v"), Some("3"));
    let rows = t.lookup_rows(&StringArray::from(vec![Some("ü"), None, Some("x")]));
    assert_eq!(rows.iter().collect::<Vec<_>>(), vec![Some(4), None, None]);
    let taken = t.take_values(&rows).unwrap();
    let v = taken
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(v.iter().collect::<Vec<_>>(), vec![Some("4"), None, None]);
}

#[test]
fn lookup_array_accepts_other_string_types() {
    let t = table(TableKind::Exact, &["a", "b"]);
    let view = arrow::array::StringViewArray::from(vec![Some("b"), None, Some("a")]);
    let large = arrow::array::LargeStringArray::from(vec![Some("a"), Some("z")]);
    let dict: arrow::array::DictionaryArray<arrow::datatypes::Int32Type> =
        vec!["b", "b", "a"].into_iter().collect();
    let ints = arrow::array::Int64Array::from(vec![1, 2]);
    let rows = |a: &dyn Array| t.lookup_array(a).unwrap().iter().collect::<Vec<_>>();
    assert_eq!(rows(&view), vec![Some(1), None, Some(0)]);
    assert_eq!(rows(&large), vec![Some(0), None]);
    assert_eq!(rows(&dict), vec![Some(1), Some(1), Some(0)]);
    assert_eq!(rows(&ints), vec![None, None]);
    let list =
        arrow::array::ListArray::new_null(Arc::new(Field::new_list_field(DataType::Utf8, true)), 1);
    // Whether a list has a text form depends on Arrow's cast rules; it must not panic.
    if let Ok(rows) = t.lookup_array(&list) {
        assert_eq!(rows.len(), 1);
    }
}

#[test]
fn tables_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EnrichmentTable>();
    assert_send_sync::<pf_enrichment::EnrichmentTables>();
    let t = Arc::new(table(TableKind::Cidr, &["10.0.0.0/8"]));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || t.lookup_row("10.1.1.1"))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Some(0));
    }
}

/// SplitMix64, so the random tables are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A parsed reference prefix: (is IPv6, network, length).
type RefPrefix = (bool, u128, u32);

fn ref_parse_prefix(s: &str) -> RefPrefix {
    let (addr, len) = s.split_once('/').unwrap_or((s, ""));
    let ip: IpAddr = addr.parse().unwrap();
    let (v6, a, max) = ref_fold(ip);
    let mut len: u32 = if len.is_empty() {
        max
    } else {
        len.parse().unwrap()
    };
    if let IpAddr::V6(v6addr) = ip
        && v6addr.to_ipv4_mapped().is_some()
    {
        len -= 96;
    }
    (v6, a, len)
}

fn ref_fold(ip: IpAddr) -> (bool, u128, u32) {
    match ip {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (false, u128::from(u32::from(v4)), 32),
            None => (true, u128::from(v6), 128),
        },
    }
}

/// Linear scan: the longest prefix containing the address; among equal prefixes the last.
fn ref_lookup(prefixes: &[RefPrefix], key: &str) -> Option<u32> {
    let (v6, a, bits) = ref_fold(key.parse().ok()?);
    let mut best: Option<(u32, u32)> = None;
    for (row, &(pv6, net, len)) in prefixes.iter().enumerate() {
        if pv6 != v6 {
            continue;
        }
        let host = bits - len;
        let m = if host >= 128 {
            0
        } else {
            !((1u128 << host) - 1)
        };
        if a & m == net & m && best.is_none_or(|(l, _)| len >= l) {
            best = Some((len, row as u32));
        }
    }
    best.map(|(_, r)| r)
}

fn v4_text(a: u32) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

fn v6_text(a: u128) -> String {
    std::net::Ipv6Addr::from(a).to_string()
}

/// A random table dense in nesting: prefixes cluster around a few base addresses, some
/// keys repeat (as given or with host bits set), some are mapped or bare.
fn random_cidr_keys(rng: &mut Rng, n: usize) -> Vec<String> {
    let v4_bases: Vec<u32> = (0..12).map(|_| rng.next() as u32).collect();
    let v6_bases: Vec<u128> = (0..4)
        .map(|_| u128::from(rng.next()) << 64 | u128::from(rng.next()))
        .collect();
    let mut keys: Vec<String> = Vec::with_capacity(n);
    while keys.len() < n {
        let p = rng.below(100);
        let key = if p < 5 && !keys.is_empty() {
            let i = rng.below(keys.len() as u64) as usize;
            keys[i].clone()
        } else if p < 75 {
            let base = v4_bases[rng.below(12) as usize];
            let len = match rng.below(10) {
                0 => rng.below(8) as u32,
                _ => 8 + rng.below(25) as u32,
            };
            // Flip a few low bits so siblings and children of other prefixes appear.
            let a = base ^ (rng.next() as u32 & ((1u32 << rng.below(20)) - 1));
            match rng.below(10) {
                0 => v4_text(a),
                1 => format!("::ffff:{}/{}", v4_text(a), 96 + len),
                _ => format!("{}/{len}", v4_text(a)),
            }
        } else {
            let base = v6_bases[rng.below(4) as usize];
            let len = rng.below(129) as u32;
            let a = base ^ (u128::from(rng.next()) & ((1u128 << rng.below(80)) - 1));
            if rng.below(10) == 0 {
                v6_text(a)
            } else {
                format!("{}/{len}", v6_text(a))
            }
        };
        keys.push(key);
    }
    keys
}

/// Lookup keys: mostly near the table's prefixes, plus random, mapped and junk ones.
fn random_lookup_keys(rng: &mut Rng, table: &[RefPrefix], n: usize) -> Vec<Option<String>> {
    (0..n)
        .map(|_| {
            let p = rng.below(100);
            let (v6, net, len) = table[rng.below(table.len() as u64) as usize];
            let inside = |rng: &mut Rng| -> u128 {
                let bits = if v6 { 128 } else { 32 };
                let host = bits - len;
                let r = u128::from(rng.next()) << 64 | u128::from(rng.next());
                let m = if host >= 128 {
                    u128::MAX
                } else {
                    (1u128 << host) - 1
                };
                // Sometimes step just outside the prefix, to test its edges.
                match rng.below(8) {
                    0 => net.wrapping_sub(1),
                    1 => (net | m).wrapping_add(1),
                    2 => net | m,
                    3 => net,
                    _ => net | (r & m),
                }
            };
            if p < 2 {
                return None;
            }
            Some(if p < 70 {
                let a = inside(rng);
                if v6 { v6_text(a) } else { v4_text(a as u32) }
            } else if p < 78 {
                let a = inside(rng);
                if v6 {
                    v6_text(a)
                } else {
                    format!("::ffff:{}", v4_text(a as u32))
                }
            } else if p < 88 {
                v4_text(rng.next() as u32)
            } else if p < 93 {
                v6_text(u128::from(rng.next()) << 64 | u128::from(rng.next()))
            } else {
                let junk = [
                    "999.1.1.1",
                    "",
                    "1.2.3",
                    "abc",
                    "1.2.3.4 ",
                    "01.2.3.4",
                    "::g",
                    "1.2.3.4/8",
                ];
                junk[rng.below(junk.len() as u64) as usize].to_owned()
            })
        })
        .collect()
}

fn check_against_reference(seed: u64, prefixes: usize, lookups: usize) {
    let mut rng = Rng(seed);
    let keys = random_cidr_keys(&mut rng, prefixes);
    let refs: Vec<RefPrefix> = keys.iter().map(|k| ref_parse_prefix(k)).collect();
    let refs_masked: Vec<RefPrefix> = refs
        .iter()
        .map(|&(v6, a, len)| {
            let host = if v6 { 128 } else { 32 } - len;
            let m = if host >= 128 {
                0
            } else {
                !((1u128 << host) - 1)
            };
            (v6, a & m, len)
        })
        .collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let t = table(TableKind::Cidr, &key_refs);
    let lookup_keys = random_lookup_keys(&mut rng, &refs_masked, lookups);
    let array = StringArray::from(lookup_keys.clone());
    let rows: UInt32Array = t.lookup_rows(&array);
    let mut hits = 0;
    for (i, key) in lookup_keys.iter().enumerate() {
        let expected = key.as_deref().and_then(|k| ref_lookup(&refs_masked, k));
        let single = key.as_deref().and_then(|k| t.lookup_row(k));
        assert_eq!(single, expected, "lookup_row({key:?})");
        let vectorized = rows.is_valid(i).then(|| rows.value(i));
        assert_eq!(vectorized, expected, "lookup_rows[{i}] = {key:?}");
        hits += usize::from(expected.is_some());
    }
    // The keys are built to hit often; a test that only ever misses proves nothing.
    assert!(
        hits > lookups / 2,
        "only {hits} of {lookups} lookups matched"
    );
}

#[test]
fn cidr_agrees_with_brute_force_on_random_tables() {
    check_against_reference(1, 1_000, 100_000);
    check_against_reference(2, 40, 20_000);
    check_against_reference(3, 5_000, 10_000);
}

#[test]
fn exact_agrees_with_hash_map_on_random_keys() {
    let mut rng = Rng(9);
    let keys: Vec<String> = (0..20_000)
        .map(|_| format!("k{}", rng.below(15_000)))
        .collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let t = table(TableKind::Exact, &key_refs);
    let mut reference = HashMap::new();
    for (row, k) in keys.iter().enumerate() {
        reference.insert(k.as_str(), row as u32);
    }
    let lookups: Vec<Option<String>> = (0..100_000)
        .map(|_| (rng.below(50) != 0).then(|| format!("k{}", rng.below(20_000))))
        .collect();
    let rows = t.lookup_rows(&StringArray::from(lookups.clone()));
    for (i, k) in lookups.iter().enumerate() {
        let expected = k.as_deref().and_then(|k| reference.get(k).copied());
        assert_eq!(
            k.as_deref().and_then(|k| t.lookup_row(k)),
            expected,
            "{k:?}"
        );
        assert_eq!(rows.is_valid(i).then(|| rows.value(i)), expected, "{k:?}");
    }
    assert_eq!(t.duplicate_keys(), keys.len() - reference.len());
}
