//! How a table is declared in the worker configuration.

use std::fmt;
use std::path::{Path, PathBuf};

use pf_error::{PfError, Result};
use serde::{Deserialize, Serialize};

/// One enrichment table, an entry of `transform.tables` in `worker.yaml`.
///
/// ```yaml
/// - name: geo
///   kind: cidr
///   path: config/enrichment/geo.csv
///   key: network
///   values: [country, city, asn]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// The name scripts and rules use to refer to the table (`lookup("users", id)`);
    /// unique among all tables.
    pub name: String,
    /// How keys are matched: `cidr` (longest-prefix match on IP addresses) or `exact`.
    pub kind: TableKind,
    /// The file to load. A relative path is opened as given, i.e. relative to the
    /// process's working directory; the configuration loader resolves paths against the
    /// configuration file's directory before they get here.
    pub path: PathBuf,
    /// The file format; inferred from the extension when absent (`.csv`, `.ndjson` /
    /// `.jsonl` / `.json`, `.parquet` / `.pq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TableFormat>,
    /// The key column: a CIDR prefix or bare IP address for `cidr` tables, any string for
    /// `exact` tables.
    pub key: String,
    /// The value columns to keep, in this order; empty keeps every column except the key,
    /// in file order. Naming a column the file does not have is an error at load time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl TableConfig {
    /// The format to read `path` as: the configured one, else inferred from the extension.
    pub fn resolved_format(&self) -> Result<TableFormat> {
        if let Some(format) = self.format {
            return Ok(format);
        }
        TableFormat::from_path(&self.path).ok_or_else(|| {
            PfError::config(
                self.config_key("format"),
                format!(
                    "cannot infer the format of `{}` from its extension; \
                     set `format` to csv, ndjson or parquet",
                    self.path.display()
                ),
            )
        })
    }

    /// The configuration key of `field` of this table, for error messages:
    /// `transform.tables.<name>.<field>`; [`EnrichmentTables::load`](crate::EnrichmentTables::load)
    /// turns it into the entry's index (`transform.tables[0].<field>`).
    pub(crate) fn config_key(&self, field: &str) -> String {
        format!("transform.tables.{}.{field}", self.name)
    }
}

/// How a table's keys are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// Keys are IPv4/IPv6 prefixes; a lookup returns the longest prefix containing the
    /// address.
    Cidr,
    /// Keys are strings; a lookup returns the row whose key equals the string exactly.
    Exact,
}

impl TableKind {
    /// The name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Cidr => "cidr",
            TableKind::Exact => "exact",
        }
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The file format of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    /// Comma-separated values with a header row; every column is read as text.
    Csv,
    /// One JSON object per line; column types are inferred from the values.
    Ndjson,
    /// Apache Parquet; column types are kept.
    Parquet,
}

impl TableFormat {
    /// The format implied by `path`'s extension (case-insensitive), if any.
    pub fn from_path(path: &Path) -> Option<TableFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(TableFormat::Csv),
            "ndjson" | "jsonl" | "json" => Some(TableFormat::Ndjson),
            "parquet" | "pq" => Some(TableFormat::Parquet),
            _ => None,
        }
    }

    /// The name used in configuration files and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TableFormat::Csv => "csv",
            TableFormat::Ndjson => "ndjson",
            TableFormat::Parquet => "parquet",
        }
    }
}

impl fmt::Display for TableFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_and_rejects_unknown_fields() {
        let cfg: TableConfig = serde_json::from_str(
            r#"{"name":"geo","kind":"cidr","path":"geo.CSV","key":"network"}"#,
        )
        .unwrap();
        assert_eq!(cfg.kind, TableKind::Cidr);
        assert!(cfg.values.is_empty());
        assert_eq!(cfg.resolved_format().unwrap(), TableFormat::Csv);

        let err = serde_json::from_str::<TableConfig>(
            r#"{"name":"geo","kind":"cidr","path":"g.csv","key":"k","colour":1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let err = serde_json::from_str::<TableConfig>(
            r#"{"name":"geo","kind":"prefix","path":"g.csv","key":"k"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("prefix"), "{err}");
    }

    #[test]
    fn format_inference() {
        for (p, f) in [
            ("a.ndjson", Some(TableFormat::Ndjson)),
            ("a.jsonl", Some(TableFormat::Ndjson)),
            ("a.json", Some(TableFormat::Ndjson)),
            ("dir.x/a.parquet", Some(TableFormat::Parquet)),
            ("a.pq", Some(TableFormat::Parquet)),
            ("a.txt", None),
            ("a", None),
        ] {
            assert_eq!(TableFormat::from_path(Path::new(p)), f, "{p}");
        }
        let cfg = TableConfig {
            name: "t".into(),
            kind: TableKind::Exact,
            path: "t.txt".into(),
            format: None,
            key: "k".into(),
            values: vec![],
        };
        let err = cfg.resolved_format().unwrap_err();
        assert!(
            err.to_string().contains("transform.tables.t.format"),
            "{err}"
        );
        let cfg = TableConfig {
            format: Some(TableFormat::Csv),
            ..cfg
        };
        assert_eq!(cfg.resolved_format().unwrap(), TableFormat::Csv);
    }
}
