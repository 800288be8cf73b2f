//! `indexer.parquet`: the one declaration of the Parquet destination's settings.

use parquet::basic::{Compression, ZstdLevel};
use serde::{Deserialize, Serialize};

use pf_error::{PfError, Result, require_at_least_one};

/// `indexer.parquet.compression`: the codec of every column chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParquetCodec {
    /// ZSTD (level 1: most of the size gain at a fraction of level 3's CPU): the lakehouse
    /// default, read by DuckDB, Spark, pyarrow, Polars.
    #[default]
    Zstd,
    /// Snappy: faster, larger.
    Snappy,
    /// LZ4 (raw).
    Lz4,
    /// Gzip (level 6).
    Gzip,
    /// No compression.
    None,
}

impl ParquetCodec {
    /// The writer setting.
    pub fn compression(self) -> Compression {
        match self {
            ParquetCodec::Zstd => Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()),
            ParquetCodec::Snappy => Compression::SNAPPY,
            ParquetCodec::Lz4 => Compression::LZ4_RAW,
            ParquetCodec::Gzip => Compression::GZIP(Default::default()),
            ParquetCodec::None => Compression::UNCOMPRESSED,
        }
    }
}

/// `indexer.parquet`: where the data set is written and how its files are cut.
///
/// Files are named `<partition>/<hash of uri and etag>-<first row ordinal>.parquet`, so
/// a retried or resumed input writes the same names again and never duplicates rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// `path`: directory of the data set (created if missing), or `s3://bucket/prefix`:
    /// each file is then written under `staging_dir` and uploaded whole in one
    /// PutObject when it is committed. Default `./lakehouse`.
    pub path: String,
    /// `staging_dir`: local directory where files are written before their upload, for
    /// an `s3://` path (ignored otherwise); it needs room for each thread's open files.
    /// Default `null`: `paraflow-parquet-staging` in the system's temporary directory.
    pub staging_dir: Option<String>,
    /// `partition_by`: column whose record time (timestamp, date, epoch-millisecond
    /// integer or ISO-8601 string) names each row's Hive partition `date=YYYY-MM-DD`;
    /// rows without a usable time go to `date=__HIVE_DEFAULT_PARTITION__`. `null`: no
    /// partitions. Default `timestamp`.
    pub partition_by: Option<String>,
    /// `compression`: `zstd`, `snappy`, `lz4`, `gzip` or `none`. Default `zstd`.
    pub compression: ParquetCodec,
    /// `row_group_rows`: rows per row group. Default `131072`.
    pub row_group_rows: usize,
    /// `target_file_bytes`: a file is closed (made visible, and the input's resume point
    /// recorded) at the first resume point after the part it belongs to reached this
    /// many encoded bytes, bytes; a smaller remainder closes at the end of the input.
    /// Also how much a resumed input writes again. Default `67108864` (64 MiB).
    pub target_file_bytes: u64,
    /// `max_buffered_bytes`: encoded row-group bytes a pipeline thread holds in memory
    /// over all its open files; above it the largest row group is written early, so
    /// memory stays bounded however many dates a part spans, bytes. Default
    /// `16777216` (16 MiB): a 131,072-row group of the generated transactions is 4.4 MB
    /// once ZSTD-compressed, so one partition's groups stay whole, while a part spread
    /// over 61 dates peaked at 201 MB RSS instead of 313 MB with 128 MiB, at the same
    /// speed.
    pub max_buffered_bytes: usize,
    /// `lineage`: add `_source_uri` and `_source_row` (the record's ordinal in its
    /// file, as in alerts' `uri` and `row` and in document ids) to every row, so alerts
    /// join their transactions and any row traces back to its input. Default `true`.
    /// `_source_uri` follows `dictionary` like every column: written plain, ZSTD takes
    /// out its one repeated value (a dictionary for it alone changed neither speed nor
    /// size on the generated transactions and held 17 MB more over 61 open files).
    pub lineage: bool,
    /// `dictionary`: dictionary-encode columns. Default `false`: on generated
    /// transactions with the shipped rules it costs a third of the write speed for 5%
    /// smaller files, since ZSTD already takes out the repetition.
    pub dictionary: bool,
}

impl Default for ParquetSinkConfig {
    fn default() -> Self {
        ParquetSinkConfig {
            path: "./lakehouse".into(),
            staging_dir: None,
            partition_by: Some("timestamp".into()),
            compression: ParquetCodec::Zstd,
            row_group_rows: 131_072,
            target_file_bytes: 64 << 20,
            max_buffered_bytes: 16 << 20,
            lineage: true,
            dictionary: false,
        }
    }
}

/// Largest `target_file_bytes` for an `s3://` path: a file is closed at the first resume
/// point past the target, so this leaves a margin below PutObject's 5 GiB.
pub const MAX_S3_FILE_BYTES: u64 = 4 << 30;

impl ParquetSinkConfig {
    /// True when `path` names an S3 prefix.
    pub fn is_s3(&self) -> bool {
        self.path.starts_with("s3://")
    }

    /// Where files are written before their upload (S3) or their rename (local).
    pub fn staging_root(&self) -> std::path::PathBuf {
        match (&self.staging_dir, self.is_s3()) {
            (_, false) => self.path.clone().into(),
            (Some(dir), true) => dir.into(),
            (None, true) => std::env::temp_dir().join("paraflow-parquet-staging"),
        }
    }

    /// Checks the values a run cannot start with, naming the key.
    pub fn validate(&self) -> Result<()> {
        if self.path.trim().is_empty() {
            return Err(PfError::config("indexer.parquet.path", "must not be empty"));
        }
        if self.is_s3() && self.target_file_bytes > MAX_S3_FILE_BYTES {
            return Err(PfError::config(
                "indexer.parquet.target_file_bytes",
                format!(
                    "{} is too large for an s3:// path: a file is uploaded in one PutObject (at most 5 GiB), so keep it at or below {MAX_S3_FILE_BYTES} (4 GiB)",
                    self.target_file_bytes
                ),
            ));
        }
        require_at_least_one("indexer.parquet.row_group_rows", self.row_group_rows)?;
        require_at_least_one(
            "indexer.parquet.max_buffered_bytes",
            self.max_buffered_bytes,
        )?;
        if self.partition_by.as_deref().is_some_and(str::is_empty) {
            return Err(PfError::config(
                "indexer.parquet.partition_by",
                "must name a column, or be null for no partitions",
            ));
        }
        Ok(())
    }
}
