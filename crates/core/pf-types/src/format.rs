use std::fmt;

use serde::{Deserialize, Serialize};

/// The record encoding of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Apache Parquet.
    Parquet,
    /// Newline-delimited JSON, one object per line.
    Ndjson,
}

/// The byte-level compression wrapped around a whole file (not Parquet's page codecs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain bytes.
    #[default]
    None,
    /// gzip (`.gz`).
    Gzip,
    /// Zstandard (`.zst`).
    Zstd,
}

impl FileFormat {
    /// Infers format and compression from an object key or path, e.g.
    /// `a/b.ndjson.gz` → (`Ndjson`, `Gzip`). Returns `None` for unknown extensions.
    pub fn infer(key: &str) -> Option<(FileFormat, Compression)> {
        let name = key.rsplit('/').next().unwrap_or(key).to_ascii_lowercase();
        let (stem, compression) = if let Some(s) = name.strip_suffix(".gz") {
            (s, Compression::Gzip)
        } else if let Some(s) = name.strip_suffix(".zst") {
            (s, Compression::Zstd)
        } else {
            (name.as_str(), Compression::None)
        };
        let format = match stem.rsplit_once('.')?.1 {
            "parquet" => FileFormat::Parquet,
            "ndjson" | "jsonl" | "json" => FileFormat::Ndjson,
            _ => return None,
        };
        if format == FileFormat::Parquet && compression != Compression::None {
            // Parquet compresses its pages itself; a wrapped file cannot be read by ranges.
            return None;
        }
        Some((format, compression))
    }

    /// The lower-case name used in work items and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Ndjson => "ndjson",
        }
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Compression {
    /// The lower-case name used in work items and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_formats_and_compression() {
        use Compression::*;
        use FileFormat::*;
        let cases = [
            ("s3://b/x/y.parquet", Some((Parquet, None))),
            ("y.PARQUET", Some((Parquet, None))),
            ("a.ndjson", Some((Ndjson, None))),
            ("a.jsonl", Some((Ndjson, None))),
            ("a.json", Some((Ndjson, None))),
            ("a.ndjson.gz", Some((Ndjson, Gzip))),
            ("dir.v2/a.jsonl.zst", Some((Ndjson, Zstd))),
            ("a.parquet.gz", Option::None),
            ("a.csv", Option::None),
            ("noext", Option::None),
            ("a.gz", Option::None),
            ("dir.parquet/readme", Option::None),
        ];
        for (key, want) in cases {
            assert_eq!(FileFormat::infer(key), want, "{key}");
        }
    }
}
