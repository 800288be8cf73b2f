//! Enrichment tables: loaded once at start-up, shared read-only ([`std::sync::Arc`]) by
//! every pipeline thread, looked up per record (Rhai `lookup` / `lookup_cidr`) or per
//! batch (the vectorized rule engine).
//!
//! A table maps a key column to value columns. Two kinds:
//!
//! * **`cidr`** — keys are IPv4/IPv6 prefixes (`10.0.0.0/8`, `2001:db8::/32`) or bare
//!   addresses (a `/32` or `/128`); a lookup parses an IP address and returns the
//!   *longest* prefix containing it.
//! * **`exact`** — keys are strings; a lookup returns the row with an equal key
//!   (byte-for-byte: case and whitespace matter).
//!
//! ```no_run
//! use pf_enrichment::{EnrichmentTables, TableConfig, TableKind};
//!
//! let tables = EnrichmentTables::load(&[TableConfig {
//!     name: "geo".into(),
//!     kind: TableKind::Cidr,
//!     path: "config/enrichment/geo.csv".into(),
//!     format: None,
//!     key: "network".into(),
//!     values: vec![],
//! }])?;
//! let geo = tables.get("geo").expect("configured above");
//! assert_eq!(geo.lookup_value("81.2.69.160", "country"), Some("GB"));
//! # Ok::<(), pf_error::PfError>(())
//! ```
//!
//! # Matching rules
//!
//! * **Nested prefixes:** the longest (most specific) prefix containing the address wins;
//!   `/0` prefixes are allowed and act as a default.
//! * **Duplicate keys — the last row wins.** Two rows with the same `exact` key, or the
//!   same `cidr` prefix after normalization (`10.0.0.1/8` and `10.0.0.0/8`), are not an
//!   error: lookups return the later row, so an override can be appended to a feed. Both
//!   rows stay in [`EnrichmentTable::values`] (row numbers are the source's data rows) and
//!   [`EnrichmentTable::duplicate_keys`] counts the shadowed ones, worth logging.
//! * **Host bits:** a prefix with bits set below its length (`10.0.0.1/8`) is normalized to
//!   its network (`10.0.0.0/8`), not rejected; hand-made and firewall-exported lists often
//!   carry them. Surrounding whitespace in CIDR keys is ignored at load.
//! * **IPv4-mapped IPv6:** a lookup of `::ffff:1.2.3.4` is a lookup of `1.2.3.4`, and a
//!   mapped prefix in a table (`::ffff:10.0.0.0/104`) is stored as the IPv4 prefix
//!   (`10.0.0.0/8`). Consequently IPv6 prefixes covering the mapped range (such as `::/0`)
//!   do not match mapped addresses; IPv4 prefixes do.
//! * **Invalid lookups:** anything that is not exactly an IPv4 dotted quad or an IPv6
//!   address (`"999.1.1.1"`, `""`, `"1.2.3"`, `"1.2.3.4 "`, `"01.2.3.4"`, zone ids) matches
//!   nothing; no input panics. Null keys match nothing.
//! * **Invalid table keys** are load errors: a bad CIDR or an empty / null key names the
//!   file, line (CSV, NDJSON) or 1-based data row (Parquet), and the column.
//!
//! # File formats
//!
//! * **CSV** — header row; all columns read as Utf8; an empty cell is a null value. A file
//!   with only a header, or a 0-byte file, is an empty table.
//! * **NDJSON** — one object per line, blank lines skipped; the key may be a string or a
//!   number. Value column types are inferred: all integers → Int64, all numbers →
//!   Float64, all booleans → Boolean, else Utf8 (other values as JSON text). With no
//!   `values` configured, the columns are every member other than the key, in order of
//!   first appearance.
//! * **Parquet** — only the key and value columns are read; value types are kept; the key
//!   column may be any type with a text form (strings, integers).
//!
//! Value columns of any type can be read as text by [`EnrichmentTable::lookup_value`]
//! (rendered as by Arrow's cast to Utf8; a column with no text form is a load error).
//!
//! # Errors
//!
//! Missing or unreadable files give [`pf_error::PfError::NotFound`] or
//! [`pf_error::PfError::Io`]; a missing key column or unknown value column
//! [`pf_error::PfError::Schema`] (listing the columns the file has); bad rows
//! [`pf_error::PfError::InvalidData`] located as `path:line` (`path row N` for Parquet);
//! configuration mistakes (duplicate table names, a format that cannot be inferred, a value
//! column listed twice) [`pf_error::PfError::Config`] with the key
//! `transform.tables[<index>].<field>`. All are permanent: a worker should refuse to start.
//!
//! # Speed
//!
//! A `cidr` lookup is a branch-free hand-written IPv4 parse (IPv6 has its own parser too,
//! `std`'s being several times slower), one read of an index on the top 16–20 address
//! bits, and a binary search over the few range starts in that bucket, which share a
//! cache line with their rows. On a table much larger than the CPU caches that is two
//! cache misses in a row per lookup, so [`EnrichmentTable::lookup_rows`] works on 32 keys
//! at a time, step by step, to overlap the misses of different keys; prefer it to a loop
//! over [`EnrichmentTable::lookup_row`]. `exact` lookups are one xxh3 hash and usually
//! one probe, batched the same way.
//!
//! Measured by `tests/speed.rs` (release, one thread, a shared 2-vCPU VM, random
//! addresses spread over the covered space, i.e. no cache locality at all): on a
//! 500,000-prefix generated geo table `lookup_rows` does about 17–19 M lookups/s and
//! `lookup_row` about 9 M/s; on a cache-resident table 31–41 M/s. Traffic with repeated
//! addresses lands in between.
//!
//! # Generated tables
//!
//! Large deterministic geo, threat and users tables for tests and benches, and the
//! address layout they follow, live with the test-data generator (`pf_datagen::layout`).

mod cidr;
mod config;
mod exact;
mod ip;
mod load;
mod registry;
mod table;

pub use config::{TableConfig, TableFormat, TableKind};
pub use registry::EnrichmentTables;
pub use table::EnrichmentTable;
