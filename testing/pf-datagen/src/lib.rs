//! Deterministic synthetic card transactions with planted fraud patterns and exact
//! ground-truth labels, written as Parquet or NDJSON (plain, gzip or zstd).
//!
//! The same [`GenOptions`] (and seed) always produce byte-identical files, whatever the
//! number of threads: every file is generated from its own random stream, derived from
//! the seed and the file's index only, by a generator frozen in this crate ([`rng`]).
//!
//! Each row carries `label_fraud` and `label_rules`: the sorted names of the [`Pattern`]s
//! present in the row. Labels are exact — a rule that implements a pattern's definition
//! has recall and precision 1.0 on generated data. How that is achieved for each pattern
//! is explained on [`TransactionGenerator`]'s module ([`generator`]).
//!
//! The patterns are the five rules of `config/rules/fraud.yaml`:
//!
//! | label | rule | planted share |
//! | --- | --- | --- |
//! | `high_value` | `amount > 10000.0` | ~0.5 % |
//! | `rapid_activity` | ≥ 5 rows of the account in the row's own trailing `[t − 60 s, t]` | ~0.4 % |
//! | `unusual_hour` | `hour(timestamp)` in 1..5 (UTC) | ~0.5 % |
//! | `geo_mismatch` | `lookup_cidr("geo", source_ip).country != lookup("users", account_id).home_country` | ~0.8 % |
//! | `threat_ip` | `in_table("threats", source_ip)` | ~0.3 % |
//!
//! `rapid_activity` is defined as a causal streaming window rule sees it: a row is
//! labelled when its own trailing window (inclusive, same account) holds five or more
//! rows counting itself and earlier ones, i.e. the 5th and later rows of a burst; the
//! first four rows of a burst are unlabelled. `geo_mismatch` and `threat_ip` are exact
//! against the enrichment tables written for the same seed ([`tables::write_tables`],
//! `pf gen tables`); every planted threat address is also a geo mismatch (threat space
//! is foreign to every account), so those rows carry both labels, and `geo_mismatch`
//! covers ~0.5 % foreign addresses plus the ~0.3 % threat rows.

pub mod fixtures;
pub mod generator;
pub mod layout;
mod ndjson;
mod pattern;
mod plan;
pub mod rng;
mod schema;
pub mod tables;
mod text;
mod write;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use pf_error::PfError;
use pf_types::{Compression, FileFormat};
use rayon::prelude::*;

pub use generator::TransactionGenerator;
pub use ndjson::write_ndjson_batch;
pub use pattern::{LabelSet, Pattern};
pub use plan::{DatasetPlan, FilePlan};
pub use schema::{columns, transaction_schema};
pub use write::file_name;

/// Default rows per Parquet row group.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 131_072;
/// Default rows per generated record batch.
pub const DEFAULT_BATCH_ROWS: usize = 65_536;
/// Largest accepted batch, so the bytes of one string column fit Arrow's i32 offsets.
pub const MAX_BATCH_ROWS: usize = 1 << 24;

/// What to generate and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenOptions {
    /// Total rows over all files; 0 writes `files` empty files (a valid Parquet file with
    /// the schema and no row groups, or an empty NDJSON stream), so a consumer sees the
    /// same layout and schema as for a non-empty data set.
    pub rows: u64,
    /// Number of files (at least 1); rows are split evenly, the remainder going to the
    /// first files.
    pub files: usize,
    /// Output format.
    pub format: FileFormat,
    /// Whole-file compression; NDJSON only (Parquet compresses its pages with zstd).
    pub compression: Compression,
    /// Directory for the files; created if missing.
    pub out_dir: PathBuf,
    /// Seed of all randomness; the same seed gives the same bytes.
    pub seed: u64,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Rows per generated record batch (1..=[`MAX_BATCH_ROWS`]).
    pub batch_rows: usize,
}

impl GenOptions {
    /// One Parquet file of `rows` rows in `out_dir`, seed 42, default batch sizes.
    pub fn new(out_dir: impl Into<PathBuf>, rows: u64) -> Self {
        GenOptions {
            rows,
            files: 1,
            format: FileFormat::Parquet,
            compression: Compression::None,
            out_dir: out_dir.into(),
            seed: 42,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            batch_rows: DEFAULT_BATCH_ROWS,
        }
    }

    /// Accounts the data set uses: its account ids are `acct-0000000` …
    /// `acct-{account_count − 1}` ([`account_id`]), whatever the seed. A users table with
    /// this many rows (`pf gen tables --users`) covers every account of the data set.
    /// Only `rows` and `files` matter; `files == 0` is a configuration error.
    pub fn account_count(&self) -> Result<u64, PfError> {
        Ok(DatasetPlan::new(self.rows, self.files)?.accounts())
    }

    /// Checks the options without touching the file system.
    pub fn validate(&self) -> Result<(), PfError> {
        if self.files == 0 {
            return Err(PfError::config("files", "must be at least 1"));
        }
        if self.format == FileFormat::Parquet && self.compression != Compression::None {
            return Err(PfError::config(
                "compression",
                format!(
                    "must be none for Parquet (got {}): Parquet compresses its pages with \
                     zstd, and a wrapped file could not be read by byte ranges",
                    self.compression.as_str()
                ),
            ));
        }
        if self.row_group_rows == 0 {
            return Err(PfError::config("row_group_rows", "must be at least 1"));
        }
        if !(1..=MAX_BATCH_ROWS).contains(&self.batch_rows) {
            return Err(PfError::config(
                "batch_rows",
                format!("must be between 1 and {MAX_BATCH_ROWS}"),
            ));
        }
        Ok(())
    }
}

/// The id of account number `n`: `acct-` and at least 7 zero-padded digits, as in the
/// `account_id` column and in the users table.
pub fn account_id(n: u64) -> String {
    format!("acct-{n:07}")
}

/// One written file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Where it is.
    pub path: PathBuf,
    /// Rows in it.
    pub rows: u64,
    /// Its size on disk.
    pub bytes: u64,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenReport {
    /// The files, in file order.
    pub files: Vec<GeneratedFile>,
    /// Total rows.
    pub rows: u64,
    /// Rows labelled with each pattern, by pattern name; every pattern is listed, with 0
    /// if absent. A row with several patterns counts once for each.
    pub planted: BTreeMap<String, u64>,
    /// Rows with at least one pattern (`label_fraud = true`).
    pub fraud_rows: u64,
}

impl GenReport {
    /// Total bytes written.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// Generates the data set described by `options`, one file per rayon task.
///
/// Errors: [`PfError::Config`] for invalid options (checked before anything is written),
/// [`PfError::Io`] or [`PfError::NotFound`] naming the directory or file that could not
/// be created or written. Files already finished when another one fails are left in
/// place; a failed file leaves no partial file under its final name.
pub fn generate(options: &GenOptions) -> Result<GenReport, PfError> {
    options.validate()?;
    let plan = DatasetPlan::new(options.rows, options.files)?;
    fs::create_dir_all(&options.out_dir)
        .map_err(|e| PfError::io(options.out_dir.display().to_string(), e))?;
    let outcomes = plan
        .files()
        .par_iter()
        .map(|file| write::write_file(options, file))
        .collect::<Result<Vec<_>, PfError>>()?;
    let mut planted = BTreeMap::new();
    for p in Pattern::ALL {
        let n = outcomes.iter().map(|o| o.planted[p as usize]).sum();
        planted.insert(p.name().to_owned(), n);
    }
    Ok(GenReport {
        rows: outcomes.iter().map(|o| o.file.rows).sum(),
        fraud_rows: outcomes.iter().map(|o| o.fraud_rows).sum(),
        files: outcomes.into_iter().map(|o| o.file).collect(),
        planted,
    })
}
