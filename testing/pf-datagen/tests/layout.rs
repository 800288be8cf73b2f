//! The table generators: size, determinism, loadability in every format, and the layout
//! promised to the transaction generator.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use pf_datagen::layout::{
    GEO_V4_BLOCKS, GEO_V6_BLOCKS, THREAT_ANCHORS, THREAT_V4_OCTETS, THREAT_V6_GROUP, geo_country,
    home_v4_octets, load_table, user_home_country, write_geo_table, write_threat_table,
    write_users_table,
};
use pf_datagen::rng::mix64 as mix;
use pf_enrichment::{EnrichmentTable, TableKind};

fn load(path: &Path, kind: TableKind, key: &str) -> EnrichmentTable {
    load_table(path, kind, key).unwrap_or_else(|e| panic!("{e}"))
}

/// A table generator, with the kind and key column its tables load with.
type Generator = (
    fn(&Path, usize, u64) -> pf_error::Result<()>,
    TableKind,
    &'static str,
);
const GEO: Generator = (write_geo_table, TableKind::Cidr, "network");
const THREATS: Generator = (write_threat_table, TableKind::Cidr, "network");
const USERS: Generator = (write_users_table, TableKind::Exact, "account_id");

/// The table a [`Generator`] writes as `file` (its extension names the format) with `rows`
/// rows and `seed`, loaded back; it must hold `rows` rows.
fn generated((write, kind, key): Generator, file: &str, rows: usize, seed: u64) -> EnrichmentTable {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    write(&path, rows, seed).unwrap();
    let table = load(&path, kind, key);
    assert_eq!(table.len(), rows, "{file}");
    table
}

#[test]
fn geo_table_has_requested_size_and_layout() {
    let t = generated(GEO, "geo.parquet", 20_000, 1);
    assert_eq!(t.duplicate_keys(), 0, "generated prefixes are distinct");
    let schema = t.values().schema();
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["country", "city", "asn"]);
    assert_eq!(
        t.values().column(2).data_type(),
        &arrow::datatypes::DataType::Int64
    );

    // Any address in a block resolves to the block's country, whatever prefix matches; and
    // the table really is nested (many lookups land on something narrower than the block).
    let mut narrower = 0;
    for i in 0..50_000u64 {
        let h = mix(i);
        let (octet, country) = GEO_V4_BLOCKS[(h % 40) as usize];
        let ip = Ipv4Addr::from(u32::from(octet) << 24 | (h >> 40) as u32 & 0xFF_FFFF);
        let key = ip.to_string();
        assert_eq!(t.lookup_value(&key, "country"), Some(country), "{key}");
        assert_eq!(geo_country(IpAddr::V4(ip)), Some(country));
        let row = t.lookup_row(&key).unwrap();
        narrower += usize::from(!t.keys().value(row as usize).ends_with("/8"));
        let mapped = format!("::ffff:{key}");
        assert_eq!(t.lookup_value(&mapped, "country"), Some(country));
    }
    assert!(narrower > 1_000, "{narrower}");
    for i in 0..5_000u64 {
        let h = mix(i ^ 0xabc);
        let (group, country) = GEO_V6_BLOCKS[(h % 9) as usize];
        let ip = Ipv6Addr::from(u128::from(group) << 112 | u128::from(mix(h)) << 40);
        assert_eq!(
            t.lookup_value(&ip.to_string(), "country"),
            Some(country),
            "{ip}"
        );
    }
    for outside in ["10.1.2.3", "192.168.1.1", "127.0.0.1", "4.4.4.4", "fe80::1"] {
        assert_eq!(t.lookup_row(outside), None, "{outside}");
    }
    // There is IPv6 beyond the /16 blocks, and IPv4 prefixes of many lengths.
    let keys: Vec<&str> = t.keys().iter().flatten().collect();
    assert!(keys.iter().filter(|k| k.contains(':')).count() > 1_000);
    for len in [8, 12, 16, 20, 24, 28, 32] {
        assert!(
            keys.iter()
                .any(|k| !k.contains(':') && k.ends_with(&format!("/{len}"))),
            "/{len}"
        );
    }
}

#[test]
fn generators_are_deterministic_and_seeded() {
    let dir = tempfile::tempdir().unwrap();
    for ((write, _, _), name) in [(GEO, "geo"), (THREATS, "threats"), (USERS, "users")] {
        // The bytes of `name-<file>`, 2,000 rows generated with `seed`.
        let written = |file: &str, seed: u64| {
            let path = dir.path().join(format!("{name}-{file}"));
            write(&path, 2_000, seed).unwrap();
            fs::read(path).unwrap()
        };
        let a = written("a.csv", 5);
        assert_eq!(a, written("b.csv", 5), "{name}");
        assert_ne!(a, written("c.csv", 6), "{name}");
        assert_eq!(written("a.parquet", 5), written("b.parquet", 5), "{name}");
    }
}

#[test]
fn every_format_loads_with_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["csv", "ndjson", "parquet"] {
        for n in [0, 1, 7, 3_000] {
            let geo = dir.path().join(format!("geo-{n}.{ext}"));
            write_geo_table(&geo, n, 3).unwrap();
            let threats = dir.path().join(format!("threats-{n}.{ext}"));
            write_threat_table(&threats, n, 3).unwrap();
            let users = dir.path().join(format!("users-{n}.{ext}"));
            write_users_table(&users, n, 3).unwrap();
            if n == 0 && ext == "ndjson" {
                // An empty NDJSON file has no columns to check; it must still load.
                assert!(load(&geo, TableKind::Cidr, "network").is_empty());
                continue;
            }
            let g = load(&geo, TableKind::Cidr, "network");
            let t = load(&threats, TableKind::Cidr, "network");
            let u = load(&users, TableKind::Exact, "account_id");
            assert_eq!((g.len(), t.len(), u.len()), (n, n, n), "{ext} {n}");
            assert_eq!(
                g.duplicate_keys() + t.duplicate_keys() + u.duplicate_keys(),
                0
            );
            assert_eq!(g.values().num_columns(), 3, "{ext}");
            assert_eq!(t.values().num_columns(), 2, "{ext}");
            assert_eq!(u.values().num_columns(), 3, "{ext}");
        }
    }
}

#[test]
fn threat_table_stays_in_threat_space_and_lists_anchors() {
    let t = generated(THREATS, "threats.parquet", 30_000, 11);
    for (i, (prefix, _, _)) in THREAT_ANCHORS.iter().enumerate() {
        assert_eq!(t.keys().value(i), *prefix);
        // Inside the anchor, its own row or a narrower random entry matches.
        assert!(
            t.lookup_row(prefix.split('/').next().unwrap()).is_some(),
            "{prefix}"
        );
    }
    let a = generated(THREATS, "anchors.csv", THREAT_ANCHORS.len(), 11);
    for (prefix, category, confidence) in THREAT_ANCHORS {
        let base = prefix.split('/').next().unwrap();
        assert_eq!(a.lookup_value(base, "category"), Some(category), "{prefix}");
        assert_eq!(
            a.lookup_value(base, "confidence"),
            Some(confidence.to_string().as_str())
        );
    }
    assert_eq!(a.lookup_value("95.214.53.17", "category"), Some("tor_exit"));
    assert_eq!(
        t.values().column(1).data_type(),
        &arrow::datatypes::DataType::Int64
    );
    for key in t.keys().iter().flatten() {
        let addr: IpAddr = key.split('/').next().unwrap().parse().unwrap();
        match addr {
            IpAddr::V4(v4) => assert!(THREAT_V4_OCTETS.contains(&v4.octets()[0]), "{key}"),
            IpAddr::V6(v6) => assert_eq!(v6.segments()[0], THREAT_V6_GROUP, "{key}"),
        }
    }
    // Home space is never listed.
    for i in 0..20_000u64 {
        let h = mix(i ^ 77);
        let (octet, _) = GEO_V4_BLOCKS[(h % 32) as usize];
        let ip = Ipv4Addr::from(u32::from(octet) << 24 | (h >> 40) as u32 & 0xFF_FFFF);
        assert_eq!(t.lookup_row(&ip.to_string()), None, "{ip}");
    }
    // Single hosts inside listed networks exist, so longest-match matters here too.
    let hosts = t
        .keys()
        .iter()
        .flatten()
        .filter(|k| !k.contains('/'))
        .count();
    assert!(hosts > 10_000, "{hosts}");
}

#[test]
fn users_table_ids_and_home_countries() {
    let t = generated(USERS, "users.parquet", 10_000, 42);
    assert_eq!(t.keys().value(123), "acct-0000123");
    assert_eq!(t.lookup_row("acct-0000123"), Some(123));
    assert_eq!(t.lookup_row("acct-0010000"), None);
    for n in (0..10_000u64).step_by(97) {
        let id = format!("acct-{n:07}");
        let home = user_home_country(42, n);
        assert_eq!(t.lookup_value(&id, "home_country"), Some(home));
        assert!(!home_v4_octets(home).is_empty());
        let tier = t.lookup_value(&id, "risk_tier").unwrap();
        assert!(["low", "medium", "high"].contains(&tier), "{tier}");
        assert!(t.lookup_value(&id, "name").unwrap().contains(' '));
    }
}
