//! The enrichment tables that go with generated transactions: geo, users and threats.
//!
//! The tables are written by [`crate::layout`] and follow its address layout,
//! which the transaction generator follows too, so the `geo_mismatch` and `threat_ip`
//! labels of a data set are exact against tables written with the **same seed**, provided
//!
//! * the geo table has at least [`MIN_GEO_ROWS`] rows (the layout's `/8` and `/16` blocks,
//!   which give every generated address its country),
//! * the threat table has at least [`MIN_THREAT_ROWS`] rows (the anchor prefixes the
//!   planted threat addresses lie in), and
//! * the users table has at least [`crate::GenOptions::account_count`] rows, so every
//!   account id of the data set (`acct-0000000` … in order) has its home country.
//!
//! [`TableOptions::validate`] checks the first two; the third depends on the data set and
//! is left to the caller (`pf gen tables` defaults `--users` to it).

use std::fs;
use std::path::{Path, PathBuf};

use crate::layout::{
    GEO_V4_BLOCKS, GEO_V6_BLOCKS, THREAT_ANCHORS, write_geo_table, write_threat_table,
    write_users_table,
};
use pf_enrichment::{TableConfig, TableKind};
use pf_error::PfError;

use crate::GeneratedFile;

/// Fewest geo rows for which every generated address resolves to its layout country.
pub const MIN_GEO_ROWS: usize = GEO_V4_BLOCKS.len() + GEO_V6_BLOCKS.len();
/// Fewest threat rows for which every planted threat address is listed.
pub const MIN_THREAT_ROWS: usize = THREAT_ANCHORS.len();
/// Default geo table size (prefixes).
pub const DEFAULT_GEO_ROWS: usize = 500_000;
/// Default threat table size (entries).
pub const DEFAULT_THREAT_ROWS: usize = 50_000;

/// File name of the geo table (`cidr`, key `network` → `country`, `city`, `asn`).
pub const GEO_FILE: &str = "geo.parquet";
/// File name of the users table (`exact`, key `account_id` → `name`, `risk_tier`,
/// `home_country`).
pub const USERS_FILE: &str = "users.parquet";
/// File name of the threat table (`cidr`, key `network` → `category`, `confidence`).
pub const THREATS_FILE: &str = "threats.parquet";

/// What [`write_tables`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    /// Directory for the three files; created if missing.
    pub out_dir: PathBuf,
    /// Rows of the geo table (at least [`MIN_GEO_ROWS`]).
    pub geo_rows: usize,
    /// Rows of the users table: accounts `acct-0000000` … `acct-{users − 1}`.
    pub users: u64,
    /// Rows of the threat table (at least [`MIN_THREAT_ROWS`]).
    pub threat_rows: usize,
    /// Seed; must be the transactions' seed for the users' home countries to agree.
    pub seed: u64,
}

impl TableOptions {
    /// Tables for the transactions `options` generates: default geo and threat sizes,
    /// one user per account the data set can use, the same seed, written to `out_dir`.
    pub fn for_transactions(
        out_dir: impl Into<PathBuf>,
        options: &crate::GenOptions,
    ) -> Result<Self, PfError> {
        Ok(TableOptions {
            out_dir: out_dir.into(),
            geo_rows: DEFAULT_GEO_ROWS,
            users: options.account_count()?,
            threat_rows: DEFAULT_THREAT_ROWS,
            seed: options.seed,
        })
    }

    /// Checks the sizes without touching the file system.
    pub fn validate(&self) -> Result<(), PfError> {
        if self.geo_rows < MIN_GEO_ROWS {
            return Err(PfError::config(
                "geo",
                format!(
                    "must be at least {MIN_GEO_ROWS} (the layout's /8 and /16 blocks) for \
                     geo_mismatch labels to be exact; got {}",
                    self.geo_rows
                ),
            ));
        }
        if self.threat_rows < MIN_THREAT_ROWS {
            return Err(PfError::config(
                "threats",
                format!(
                    "must be at least {MIN_THREAT_ROWS} (the anchor prefixes) for threat_ip \
                     labels to be exact; got {}",
                    self.threat_rows
                ),
            ));
        }
        if usize::try_from(self.users).is_err() {
            return Err(PfError::config("users", "too many users for this platform"));
        }
        Ok(())
    }
}

/// Writes [`GEO_FILE`], [`USERS_FILE`] and [`THREATS_FILE`] (Parquet) into
/// `options.out_dir`, in parallel, and returns them in that order.
///
/// Errors: [`PfError::Config`] for invalid sizes (before anything is written), else the
/// I/O error of the directory or file that failed.
pub fn write_tables(options: &TableOptions) -> Result<Vec<GeneratedFile>, PfError> {
    options.validate()?;
    let dir = &options.out_dir;
    fs::create_dir_all(dir).map_err(|e| PfError::io(dir.display().to_string(), e))?;
    let (geo, users, threats) = (
        dir.join(GEO_FILE),
        dir.join(USERS_FILE),
        dir.join(THREATS_FILE),
    );
    let users_rows = options.users as usize;
    let (g, (u, t)) = rayon::join(
        || write_geo_table(&geo, options.geo_rows, options.seed),
        || {
            rayon::join(
                || write_users_table(&users, users_rows, options.seed),
                || write_threat_table(&threats, options.threat_rows, options.seed),
            )
        },
    );
    g?;
    u?;
    t?;
    [
        (geo, options.geo_rows as u64),
        (users, options.users),
        (threats, options.threat_rows as u64),
    ]
    .into_iter()
    .map(|(path, rows)| file_info(path, rows))
    .collect()
}

/// How a transform loads the tables [`write_tables`] writes into `dir`: `geo` (cidr on
/// `network`), `users` (exact on `account_id`) and `threats` (cidr on `network`), every
/// other column a value.
pub fn table_configs(dir: &Path) -> Vec<TableConfig> {
    let config = |name: &str, kind, file: &str, key: &str| TableConfig {
        name: name.into(),
        kind,
        path: dir.join(file),
        format: None,
        key: key.into(),
        values: Vec::new(),
    };
    vec![
        config("geo", TableKind::Cidr, GEO_FILE, "network"),
        config("users", TableKind::Exact, USERS_FILE, "account_id"),
        config("threats", TableKind::Cidr, THREATS_FILE, "network"),
    ]
}

fn file_info(path: PathBuf, rows: u64) -> Result<GeneratedFile, PfError> {
    let bytes = size(&path)?;
    Ok(GeneratedFile { path, rows, bytes })
}

fn size(path: &Path) -> Result<u64, PfError> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| PfError::io(path.display().to_string(), e))
}
