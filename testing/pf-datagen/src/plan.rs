//! How rows, accounts and time are divided among the files of a data set.

use pf_error::PfError;

/// Span of generated time per million rows of the whole data set, in days.
///
/// Growing the span with the row count keeps the rate of transactions per account (and
/// so the chance that normal activity looks like a burst) independent of the data size.
pub const DAYS_PER_MILLION_ROWS: u64 = 30;

/// Never fewer accounts per file than this, so that picking an account that is not
/// "busy" (see the crate docs on exactness) always succeeds quickly.
pub const MIN_ACCOUNTS_PER_FILE: u64 = 1_000;

/// Average number of transactions per account over the whole span.
pub const ROWS_PER_ACCOUNT: u64 = 50;

/// Caps the per-file account state (48 bytes each) at under 1 GiB for absurd row counts.
const MAX_ACCOUNTS_PER_FILE: u64 = 1 << 24;

/// Caps the span so that timestamps stay within four-digit years (2026 + ~6,800 years).
const MAX_DAYS: u64 = 2_500_000;

/// The share of one file in a data set: its rows, its own accounts and the common span.
///
/// Only [`DatasetPlan`] creates these, because the exactness argument for
/// `rapid_activity` relies on the relation between rows, days and accounts it sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePlan {
    pub(crate) file_index: usize,
    pub(crate) rows: u64,
    pub(crate) first_row: u64,
    pub(crate) first_account: u64,
    pub(crate) accounts: u32,
    pub(crate) days: u32,
}

impl FilePlan {
    /// Position of the file in the data set (0-based).
    pub fn file_index(&self) -> usize {
        self.file_index
    }

    /// Rows in this file.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Data-set-wide number of this file's first row; transaction ids derive from it.
    pub fn first_row(&self) -> u64 {
        self.first_row
    }

    /// First account number owned by this file; no other file uses its accounts.
    pub fn first_account(&self) -> u64 {
        self.first_account
    }

    /// Number of accounts owned by this file.
    pub fn accounts(&self) -> u32 {
        self.accounts
    }

    /// Days spanned by the data set (every file covers the same days).
    pub fn days(&self) -> u32 {
        self.days
    }
}

/// The split of a data set into files.
///
/// Rows are divided evenly, the remainder going to the first files. Every file covers the
/// same span of days but owns a disjoint range of accounts, like an export partitioned by
/// account: per-account patterns are then complete within one file, whatever order or
/// parallelism a consumer reads the files in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetPlan {
    files: Vec<FilePlan>,
    rows: u64,
    days: u32,
}

impl DatasetPlan {
    /// Plans `rows` rows over `files` files; `files == 0` is a configuration error.
    pub fn new(rows: u64, files: usize) -> Result<Self, PfError> {
        if files == 0 {
            return Err(PfError::config("files", "must be at least 1"));
        }
        Ok(Self::split(rows, files))
    }

    /// The plan for `files >= 1`.
    pub(crate) fn split(rows: u64, files: usize) -> Self {
        debug_assert!(files > 0);
        let days = (rows.saturating_mul(DAYS_PER_MILLION_ROWS)).div_ceil(1_000_000);
        let days = days.clamp(1, MAX_DAYS) as u32;
        let k = files as u64;
        let (base, rem) = (rows / k, rows % k);
        let mut first_row = 0;
        let mut first_account = 0;
        let plans = (0..files)
            .map(|i| {
                let rows = base + u64::from((i as u64) < rem);
                let accounts = (rows / ROWS_PER_ACCOUNT)
                    .clamp(MIN_ACCOUNTS_PER_FILE, MAX_ACCOUNTS_PER_FILE)
                    as u32;
                let plan = FilePlan {
                    file_index: i,
                    rows,
                    first_row,
                    first_account,
                    accounts,
                    days,
                };
                first_row += rows;
                first_account += u64::from(accounts);
                plan
            })
            .collect();
        DatasetPlan {
            files: plans,
            rows,
            days,
        }
    }

    /// One plan per file, in file order.
    pub fn files(&self) -> &[FilePlan] {
        &self.files
    }

    /// Total rows.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Days spanned, starting 2026-01-01 UTC.
    pub fn days(&self) -> u32 {
        self.days
    }

    /// Accounts over all files. Files own consecutive ranges starting at 0, so the data
    /// set's account ids are exactly `acct-0000000` … `acct-{accounts − 1}` (see
    /// [`crate::account_id`]); every id in that range occurs unless the file owning it
    /// has very few rows.
    pub fn accounts(&self) -> u64 {
        self.files.iter().map(|f| u64::from(f.accounts)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_rows_and_accounts() {
        let p = DatasetPlan::new(10_007, 4).unwrap();
        let rows: Vec<u64> = p.files().iter().map(FilePlan::rows).collect();
        assert_eq!(rows, [2502, 2502, 2502, 2501]);
        assert_eq!(p.files()[3].first_row(), 7506);
        assert_eq!(p.files()[1].first_account(), 1000);
        assert_eq!(p.days(), 1);
        let p = DatasetPlan::new(2_000_000, 2).unwrap();
        assert_eq!(p.days(), 60);
        assert_eq!(p.files()[0].accounts(), 20_000);
        assert_eq!(p.accounts(), 40_000);
        assert_eq!(DatasetPlan::new(10_007, 4).unwrap().accounts(), 4_000);
        assert!(DatasetPlan::new(5, 0).is_err());
        let p = DatasetPlan::new(0, 3).unwrap();
        assert!(p.files().iter().all(|f| f.rows() == 0));
    }
}
