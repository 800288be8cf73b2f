//! Deterministic generators for large, realistic enrichment tables, and the address
//! layout a transaction generator follows to be consistent with them.
//!
//! # The layout (the contract with the transaction generator)
//!
//! Everything below holds for every seed and every table size, so a transaction
//! generator needs neither the tables nor their seed to stay consistent with them:
//!
//! * **Geo, IPv4.** The country of an IPv4 address is a function of its first octet:
//!   [`GEO_V4_BLOCKS`] lists the 40 covered `/8` blocks and their country. Every generated
//!   geo table with at least 49 rows contains each of these `/8`s (and the [`GEO_V6_BLOCKS`]
//!   `/16`s), and every more specific prefix inside a block has the block's country (only
//!   city and ASN vary), so *any* address in a block resolves to that country whatever the
//!   longest match is. Addresses outside the blocks (private, loopback, other public space)
//!   have no geo match.
//! * **Geo, IPv6.** Likewise by the first 16-bit group: [`GEO_V6_BLOCKS`]. IPv4-mapped
//!   addresses (`::ffff:a.b.c.d`) resolve as their IPv4 address.
//! * **Home space.** The first 32 entries of [`GEO_V4_BLOCKS`] are exactly the public first
//!   octets the transaction generator already draws from, split over its 16 countries
//!   ([`HOME_COUNTRIES`]; every country has at least one block, the US has 17). For a row's
//!   IP country to equal the account's home country, draw the first octet from
//!   [`home_v4_octets`] of the home country (or the IPv6 group from [`home_v6_groups`],
//!   when the country has one). To plant an "IP country differs from home country" row,
//!   draw it from another country's blocks; an unlabeled row must not do that, so random
//!   "travel" IPs drawn from all 32 octets would trip the rule.
//! * **Threat space.** The last 8 `/8` blocks of [`GEO_V4_BLOCKS`] ([`THREAT_V4_OCTETS`],
//!   foreign countries) and the IPv6 `/16` [`THREAT_V6_GROUP`] are the only places a
//!   generated threat table lists anything. So addresses in home space are never on the
//!   threat list, and an unlabeled transaction stays off it as long as it uses home space.
//! * **Guaranteed threats.** Every threat table with at least [`THREAT_ANCHORS`]`.len()`
//!   entries lists the anchor prefixes first; to plant an "IP on a threat list" row, use an
//!   address inside an anchor (e.g. `95.214.53.17`). Random entries may add more listed
//!   addresses anywhere in threat space, so a generator wanting a *clean* foreign IP
//!   should not use threat space at all. Note that threat addresses resolve to foreign
//!   countries, so a threat row is usually a country-mismatch row too.
//! * **Users.** Account `n` has id `acct-%07d` (at least 7 digits) and home country
//!   [`user_home_country`]`(seed, n)`, which is the transaction generator's own formula
//!   for an account's home country (SplitMix64 of `n` keyed by the seed, weighted by
//!   [`HOME_COUNTRIES`]), so a users table and a transaction file from the same seed agree
//!   on every account's home country.
//!
//! # Output format
//!
//! By the path's extension: `.csv` writes CSV with a header row, `.ndjson` / `.jsonl` /
//! `.json` writes NDJSON, anything else Parquet (Snappy), which loads fastest. Rows are
//! written in generation order (the /8 and /16 base rows first), not sorted.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use pf_error::{PfError, Result};

use pf_enrichment::{EnrichmentTable, TableConfig, TableFormat, TableKind};

use crate::rng::mix64;

/// The transaction generator's countries and their weights in percent (summing to 100), in
/// its order; [`user_home_country`] depends on both.
pub const HOME_COUNTRIES: [(&str, u8); 16] = [
    ("US", 40),
    ("GB", 10),
    ("DE", 8),
    ("FR", 7),
    ("CA", 5),
    ("ES", 4),
    ("IT", 4),
    ("AU", 4),
    ("NL", 3),
    ("JP", 3),
    ("SE", 2),
    ("CH", 2),
    ("SG", 2),
    ("BR", 2),
    ("MX", 2),
    ("IN", 2),
];

/// The IPv4 `/8` blocks of the geo table and their country: 32 blocks of home space, then
/// the 8 blocks of threat space ([`THREAT_V4_OCTETS`]).
pub const GEO_V4_BLOCKS: [(u8, &str); 40] = [
    (3, "US"),
    (5, "SE"),
    (8, "US"),
    (12, "US"),
    (13, "US"),
    (18, "US"),
    (23, "US"),
    (24, "US"),
    (31, "NL"),
    (34, "US"),
    (35, "US"),
    (37, "FR"),
    (45, "AU"),
    (46, "DE"),
    (50, "US"),
    (52, "US"),
    (54, "US"),
    (62, "JP"),
    (66, "US"),
    (69, "US"),
    (73, "US"),
    (77, "IN"),
    (81, "GB"),
    (85, "ES"),
    (91, "BR"),
    (98, "US"),
    (104, "US"),
    (142, "CA"),
    (151, "IT"),
    (178, "CH"),
    (185, "SG"),
    (212, "MX"),
    // Threat space.
    (36, "CN"),
    (58, "CN"),
    (95, "RU"),
    (109, "RU"),
    (113, "VN"),
    (176, "UA"),
    (188, "RO"),
    (197, "NG"),
];

/// The IPv6 `/16` blocks of the geo table (by first 16-bit group) and their country: the
/// transaction generator's 8 groups, then threat space ([`THREAT_V6_GROUP`]).
pub const GEO_V6_BLOCKS: [(u16, &str); 9] = [
    (0x2001, "US"),
    (0x2400, "JP"),
    (0x2600, "US"),
    (0x2604, "CA"),
    (0x2a00, "DE"),
    (0x2a01, "FR"),
    (0x2a02, "GB"),
    (0x2c0f, "IN"),
    (0x2a0e, "RU"),
];

/// First octets of IPv4 threat space: the only `/8`s a generated threat table lists.
pub const THREAT_V4_OCTETS: [u8; 8] = [36, 58, 95, 109, 113, 176, 188, 197];

/// The only IPv6 `/16` a generated threat table lists.
pub const THREAT_V6_GROUP: u16 = 0x2a0e;

/// Prefixes every threat table lists first: (prefix, category, confidence).
pub const THREAT_ANCHORS: [(&str, &str, u8); 6] = [
    ("95.214.52.0/22", "tor_exit", 95),
    ("109.70.100.0/24", "tor_exit", 90),
    ("176.111.174.0/24", "scanner", 85),
    ("188.166.0.0/17", "proxy", 60),
    ("197.210.64.0/18", "carding", 80),
    ("2a0e:1c80::/32", "botnet", 75),
];

const CATEGORIES: [&str; 7] = [
    "tor_exit",
    "botnet",
    "scanner",
    "proxy",
    "spam",
    "malware_c2",
    "bruteforce",
];

/// The geo country of `ip` under the layout, i.e. what every generated geo table returns
/// for it: by first octet ([`GEO_V4_BLOCKS`]) or first IPv6 group ([`GEO_V6_BLOCKS`]).
pub fn geo_country(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let first = v4.octets()[0];
            GEO_V4_BLOCKS.iter().find(|b| b.0 == first).map(|b| b.1)
        }
        IpAddr::V6(v6) => {
            let group = v6.segments()[0];
            GEO_V6_BLOCKS.iter().find(|b| b.0 == group).map(|b| b.1)
        }
    }
}

/// The home-space `/8` first octets whose addresses resolve to `country`; empty for a
/// country that is not in [`HOME_COUNTRIES`].
pub fn home_v4_octets(country: &str) -> Vec<u8> {
    GEO_V4_BLOCKS[..32]
        .iter()
        .filter(|b| b.1 == country)
        .map(|b| b.0)
        .collect()
}

/// The home-space IPv6 first groups whose addresses resolve to `country` (often none).
pub fn home_v6_groups(country: &str) -> Vec<u16> {
    GEO_V6_BLOCKS
        .iter()
        .filter(|b| b.0 != THREAT_V6_GROUP && b.1 == country)
        .map(|b| b.0)
        .collect()
}

/// The home country of account `n` (`acct-%07d`) for `seed`: the transaction generator's
/// formula, so users tables and transactions from the same seed agree.
pub fn user_home_country(seed: u64, account: u64) -> &'static str {
    // The same keying as the transaction generator: "account" in ASCII as the salt.
    let account_key = mix64(seed ^ 0x0061_6363_6f75_6e74);
    let h = mix64(account ^ account_key);
    country_by_percent(((h >> 48) % 100) as u8)
}

fn country_by_percent(p: u8) -> &'static str {
    let mut acc = 0u8;
    for (code, weight) in HOME_COUNTRIES {
        acc += weight;
        if p < acc {
            return code;
        }
    }
    HOME_COUNTRIES[0].0
}

/// SplitMix64 as a stream; plenty for table contents and frozen here so a seed's tables
/// never change with a dependency update.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, salt: u64) -> Rng {
        Rng(mix64(seed ^ salt))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// A value in `0..n` (0 for `n == 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.below(hi_inclusive - lo + 1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn cities(country: &str) -> &'static [&'static str] {
    match country {
        "US" => &[
            "New York",
            "Los Angeles",
            "Chicago",
            "Houston",
            "Phoenix",
            "Seattle",
            "Miami",
            "Denver",
        ],
        "GB" => &["London", "Manchester", "Birmingham", "Leeds", "Glasgow"],
        "DE" => &["Berlin", "Hamburg", "Munich", "Cologne", "Frankfurt"],
        "FR" => &["Paris", "Marseille", "Lyon", "Toulouse", "Nice"],
        "CA" => &["Toronto", "Montreal", "Vancouver", "Calgary", "Ottawa"],
        "ES" => &["Madrid", "Barcelona", "Valencia", "Seville"],
        "IT" => &["Rome", "Milan", "Naples", "Turin"],
        "AU" => &["Sydney", "Melbourne", "Brisbane", "Perth"],
        "NL" => &["Amsterdam", "Rotterdam", "The Hague", "Utrecht"],
        "JP" => &["Tokyo", "Osaka", "Yokohama", "Nagoya"],
        "SE" => &["Stockholm", "Gothenburg", "Malmo"],
        "CH" => &["Zurich", "Geneva", "Basel"],
        "SG" => &["Singapore"],
        "BR" => &["Sao Paulo", "Rio de Janeiro", "Brasilia"],
        "MX" => &["Mexico City", "Guadalajara", "Monterrey"],
        "IN" => &["Mumbai", "Delhi", "Bangalore", "Chennai"],
        "CN" => &["Beijing", "Shanghai", "Shenzhen"],
        "RU" => &["Moscow", "Saint Petersburg", "Novosibirsk"],
        "VN" => &["Hanoi", "Ho Chi Minh City"],
        "UA" => &["Kyiv", "Kharkiv", "Odesa"],
        "RO" => &["Bucharest", "Cluj-Napoca"],
        "NG" => &["Lagos", "Abuja"],
        _ => &["Unknown"],
    }
}

/// Formats a (masked) prefix as CIDR text.
fn cidr_text(v6: bool, addr: u128, len: u8) -> String {
    if v6 {
        format!("{}/{len}", Ipv6Addr::from(addr))
    } else {
        format!("{}/{len}", Ipv4Addr::from(addr as u32))
    }
}

fn mask(v6: bool, addr: u128, len: u8) -> u128 {
    let bits = if v6 { 128 } else { 32 };
    let host = bits - u32::from(len);
    if host >= 128 {
        0
    } else {
        addr & !((1u128 << host) - 1)
    }
}

/// Writes a geo table of exactly `prefixes` rows: `network` (CIDR) → `country`, `city`,
/// `asn` (Int64 in Parquet and NDJSON).
///
/// The first 49 rows are the `/8` and `/16` blocks of the layout (see the module docs);
/// the rest are distinct prefixes nested inside them: about 92 % IPv4 with lengths /9–/32
/// (mostly /16–/24, as in real routing tables) and 8 % IPv6 /20–/64 with a few /128s.
/// Nested prefixes share their block's country, so only city and ASN tell them apart.
pub fn write_geo_table(path: &Path, prefixes: usize, seed: u64) -> Result<()> {
    let mut rng = Rng::new(seed, 0x67_656f);
    let mut network = Vec::with_capacity(prefixes);
    let mut country = Vec::with_capacity(prefixes);
    let mut city = Vec::with_capacity(prefixes);
    let mut asn = Vec::with_capacity(prefixes);
    let mut seen: HashSet<(bool, u128, u8)> = HashSet::with_capacity(prefixes);
    let bases = GEO_V4_BLOCKS
        .iter()
        .map(|&(o, c)| (false, u128::from(o) << 24, 8u8, c))
        .chain(
            GEO_V6_BLOCKS
                .iter()
                .map(|&(g, c)| (true, u128::from(g) << 112, 16u8, c)),
        );
    for (v6, addr, len, c) in bases.take(prefixes) {
        seen.insert((v6, addr, len));
        network.push(cidr_text(v6, addr, len));
        country.push(c);
        city.push(cities(c)[0]);
        asn.push(rng.range(1_000, 64_000) as i64);
    }
    while network.len() < prefixes {
        let (v6, addr, len, c) = if rng.below(100) < 8 {
            let &(group, c) = rng.pick(&GEO_V6_BLOCKS);
            let len = if rng.below(50) == 0 {
                128
            } else {
                *rng.pick(&[20u8, 24, 28, 29, 32, 32, 36, 40, 44, 48, 48, 48, 56, 64])
            };
            let low = (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())) >> 16;
            (true, u128::from(group) << 112 | low, len, c)
        } else {
            let &(octet, c) = rng.pick(&GEO_V4_BLOCKS);
            let p = rng.below(100);
            let len = match p {
                0..5 => rng.range(9, 15),
                5..30 => rng.range(16, 20),
                30..80 => rng.range(21, 24),
                _ => rng.range(25, 32),
            } as u8;
            let low = rng.below(1 << 24) as u128;
            (false, u128::from(octet) << 24 | low, len, c)
        };
        let addr = mask(v6, addr, len);
        if !seen.insert((v6, addr, len)) {
            continue;
        }
        network.push(cidr_text(v6, addr, len));
        country.push(c);
        city.push(*rng.pick(cities(c)));
        asn.push(rng.range(1_000, 399_999) as i64);
    }
    write_columns(
        path,
        [
            ("network", strings(network)),
            ("country", strings(country)),
            ("city", strings(city)),
            ("asn", Arc::new(Int64Array::from(asn))),
        ],
    )
}

/// Writes a threat table of exactly `entries` rows: `network` (CIDR) → `category`,
/// `confidence` (0–100; Int64 in Parquet and NDJSON).
///
/// The first rows are [`THREAT_ANCHORS`]; the rest are distinct prefixes in threat space
/// only (see the module docs): about 60 % single IPv4 addresses (/32), 25 % /24s, 10 %
/// /16–/23 and 5 % IPv6, so single addresses often sit inside a listed network.
pub fn write_threat_table(path: &Path, entries: usize, seed: u64) -> Result<()> {
    let mut rng = Rng::new(seed, 0x7468_7265_6174);
    let mut network = Vec::with_capacity(entries);
    let mut category = Vec::with_capacity(entries);
    let mut confidence = Vec::with_capacity(entries);
    let mut seen: HashSet<(bool, u128, u8)> = HashSet::with_capacity(entries);
    for &(prefix, cat, conf) in THREAT_ANCHORS.iter().take(entries) {
        if let Some(key) = prefix_key(prefix) {
            seen.insert(key);
        }
        network.push(prefix.to_owned());
        category.push(cat);
        confidence.push(i64::from(conf));
    }
    while network.len() < entries {
        let p = rng.below(100);
        let (v6, addr, len) = if p < 5 {
            let len = *rng.pick(&[48u8, 56, 64, 128, 128]);
            let low = (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())) >> 16;
            (true, u128::from(THREAT_V6_GROUP) << 112 | low, len)
        } else {
            let len = match p {
                5..65 => 32,
                65..90 => 24,
                _ => rng.range(16, 23) as u8,
            };
            let octet = *rng.pick(&THREAT_V4_OCTETS);
            let low = rng.below(1 << 24) as u128;
            (false, u128::from(octet) << 24 | low, len)
        };
        let addr = mask(v6, addr, len);
        if !seen.insert((v6, addr, len)) {
            continue;
        }
        // Bare addresses for single hosts, as real feeds write them.
        let text = if (!v6 && len == 32) || len == 128 {
            if v6 {
                Ipv6Addr::from(addr).to_string()
            } else {
                Ipv4Addr::from(addr as u32).to_string()
            }
        } else {
            cidr_text(v6, addr, len)
        };
        network.push(text);
        category.push(*rng.pick(&CATEGORIES));
        confidence.push(rng.range(30, 100) as i64);
    }
    write_columns(
        path,
        [
            ("network", strings(network)),
            ("category", strings(category)),
            ("confidence", Arc::new(Int64Array::from(confidence))),
        ],
    )
}

const FIRST_NAMES: [&str; 24] = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Sophie",
    "Lukas",
    "Emma",
    "Hugo",
    "Yuki",
    "Priya",
    "Lucas",
    "Sofia",
    "Mateo",
    "Ingrid",
    "Wei",
    "Aisha",
];

const LAST_NAMES: [&str; 24] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Martin",
    "Muller",
    "Schmidt",
    "Dubois",
    "Rossi",
    "Tanaka",
    "Sato",
    "Silva",
    "Santos",
    "Hernandez",
    "Lopez",
    "Patel",
    "Sharma",
    "Andersson",
    "Jansen",
    "Tan",
];

/// Writes a users table of exactly `users` rows: `account_id` (`acct-0000000`,
/// `acct-0000001`, …) → `name`, `risk_tier` (`low` 85 %, `medium` 12 %, `high` 3 %),
/// `home_country` ([`user_home_country`]).
pub fn write_users_table(path: &Path, users: usize, seed: u64) -> Result<()> {
    let name_key = mix64(seed ^ 0x6e61_6d65);
    let mut account_id = Vec::with_capacity(users);
    let mut name = Vec::with_capacity(users);
    let mut risk_tier = Vec::with_capacity(users);
    let mut home_country = Vec::with_capacity(users);
    for n in 0..users as u64 {
        let h = mix64(n ^ name_key);
        account_id.push(format!("acct-{n:07}"));
        name.push(format!(
            "{} {}",
            FIRST_NAMES[(h % 24) as usize],
            LAST_NAMES[((h >> 8) % 24) as usize]
        ));
        risk_tier.push(match (h >> 32) % 100 {
            0..85 => "low",
            85..97 => "medium",
            _ => "high",
        });
        home_country.push(user_home_country(seed, n));
    }
    write_columns(
        path,
        [
            ("account_id", strings(account_id)),
            ("name", strings(name)),
            ("risk_tier", strings(risk_tier)),
            ("home_country", strings(home_country)),
        ],
    )
}

/// Loads a table written by this module as the transform stage would: keyed on `key`,
/// every other column a value, named after the file's stem.
pub fn load_table(path: &Path, kind: TableKind, key: &str) -> Result<EnrichmentTable> {
    let name = path.file_stem().unwrap_or_default().to_string_lossy();
    EnrichmentTable::load(&TableConfig {
        name: name.into_owned(),
        kind,
        path: path.to_owned(),
        format: None,
        key: key.to_owned(),
        values: vec![],
    })
}

fn strings<S: AsRef<str>>(values: Vec<S>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// Writes the non-null `columns` as one batch, in the format `path`'s extension names.
fn write_columns<const N: usize>(path: &Path, columns: [(&str, ArrayRef); N]) -> Result<()> {
    let batch = RecordBatch::try_from_iter_with_nullable(columns.map(|(name, a)| (name, a, false)))
        .map_err(|e| PfError::invalid_data(path.display().to_string(), "arrow", e))?;
    write_batch(path, &batch)
}

/// Writes `batch` (Utf8 and Int64 columns only) in the format `path`'s extension names.
fn write_batch(path: &Path, batch: &RecordBatch) -> Result<()> {
    let location = path.display().to_string();
    let io = |e: std::io::Error| PfError::io(location.clone(), e);
    let file = File::create(path).map_err(io)?;
    match TableFormat::from_path(path) {
        Some(TableFormat::Csv) => {
            let mut w = csv::Writer::from_writer(BufWriter::new(file));
            let csv_err = |e: csv::Error| PfError::invalid_data(location.clone(), "csv", e);
            let names: Vec<&str> = batch
                .schema_ref()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            w.write_record(&names).map_err(csv_err)?;
            let mut record = Vec::with_capacity(names.len());
            for row in 0..batch.num_rows() {
                record.clear();
                for column in batch.columns() {
                    record.push(cell_text(column.as_ref(), row));
                }
                w.write_record(&record).map_err(csv_err)?;
            }
            w.flush().map_err(io)?;
        }
        Some(TableFormat::Ndjson) => {
            let mut w = BufWriter::new(file);
            let schema = batch.schema();
            for row in 0..batch.num_rows() {
                let mut object = serde_json::Map::new();
                for (field, column) in schema.fields().iter().zip(batch.columns()) {
                    let value = match column.as_any().downcast_ref::<Int64Array>() {
                        Some(ints) => serde_json::Value::from(ints.value(row)),
                        None => serde_json::Value::from(cell_text(column.as_ref(), row)),
                    };
                    object.insert(field.name().clone(), value);
                }
                serde_json::to_writer(&mut w, &object)
                    .map_err(|e| PfError::invalid_data(location.clone(), "ndjson", e))?;
                w.write_all(b"\n").map_err(io)?;
            }
            w.flush().map_err(io)?;
        }
        Some(TableFormat::Parquet) | None => {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build();
            let parquet_err = |e: parquet::errors::ParquetError| {
                PfError::invalid_data(location.clone(), "parquet", e)
            };
            let mut w = ArrowWriter::try_new(BufWriter::new(file), batch.schema(), Some(props))
                .map_err(parquet_err)?;
            w.write(batch).map_err(parquet_err)?;
            w.close().map_err(parquet_err)?;
        }
    }
    Ok(())
}

fn cell_text(column: &dyn Array, row: usize) -> String {
    if let Some(s) = column.as_any().downcast_ref::<StringArray>() {
        return s.value(row).to_owned();
    }
    if let Some(i) = column.as_any().downcast_ref::<Int64Array>() {
        return i.value(row).to_string();
    }
    String::new()
}

/// `(is IPv6, first address, length)` of a CIDR text such as `95.214.53.0/24`, the key
/// under which random threat entries are de-duplicated against the anchors.
fn prefix_key(text: &str) -> Option<(bool, u128, u8)> {
    let (ip, len) = text.split_once('/')?;
    let len: u8 = len.parse().ok()?;
    let (v6, addr) = match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (true, u128::from(v6)),
    };
    (len <= if v6 { 128 } else { 32 }).then(|| (v6, mask(v6, addr, len), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_consistent() {
        // Weights sum to 100 and every home country has home space.
        assert_eq!(
            HOME_COUNTRIES.iter().map(|c| u32::from(c.1)).sum::<u32>(),
            100
        );
        for (c, _) in HOME_COUNTRIES {
            assert!(!home_v4_octets(c).is_empty(), "{c}");
        }
        // Blocks are distinct; threat space is exactly the last 8 blocks.
        let mut octets: Vec<u8> = GEO_V4_BLOCKS.iter().map(|b| b.0).collect();
        assert_eq!(&octets[32..], &THREAT_V4_OCTETS);
        octets.sort_unstable();
        octets.dedup();
        assert_eq!(octets.len(), 40);
        for (o, c) in &GEO_V4_BLOCKS[..32] {
            assert!(HOME_COUNTRIES.iter().any(|h| h.0 == *c), "{o} {c}");
        }
        // Anchors lie in threat space.
        for (p, _, _) in THREAT_ANCHORS {
            let ip: IpAddr = p.split('/').next().unwrap().parse().unwrap();
            match ip {
                IpAddr::V4(v4) => assert!(THREAT_V4_OCTETS.contains(&v4.octets()[0]), "{p}"),
                IpAddr::V6(v6) => assert_eq!(v6.segments()[0], THREAT_V6_GROUP, "{p}"),
            }
        }
        assert_eq!(geo_country("95.214.53.17".parse().unwrap()), Some("RU"));
        assert_eq!(geo_country("::ffff:3.1.2.3".parse().unwrap()), Some("US"));
        assert_eq!(geo_country("10.0.0.1".parse().unwrap()), None);
        assert_eq!(home_v6_groups("US"), vec![0x2001, 0x2600]);
        assert!(home_v6_groups("RU").is_empty());
    }

    #[test]
    fn home_country_distribution_follows_weights() {
        let mut us = 0;
        for n in 0..100_000 {
            if user_home_country(7, n) == "US" {
                us += 1;
            }
        }
        assert!((38_000..42_000).contains(&us), "{us}");
        assert_eq!(country_by_percent(0), "US");
        assert_eq!(country_by_percent(39), "US");
        assert_eq!(country_by_percent(40), "GB");
        assert_eq!(country_by_percent(99), "IN");
    }
}
