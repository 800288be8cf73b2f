//! One loaded table: key column, value columns and the index over the keys.

use std::fmt;

use arrow::array::{
    Array, ArrayRef, LargeStringArray, RecordBatch, StringArray, StringViewArray, UInt32Array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use std::sync::Arc;

use arrow::array::RecordBatchOptions;
use arrow::datatypes::{DataType, Schema};
use pf_error::{PfError, Result};

use crate::cidr::{CidrIndex, LANES, NONE};
use crate::config::{TableConfig, TableKind};
use crate::exact::ExactIndex;
use crate::ip::parse_prefix;
use crate::load::{self, Columns, Source};

#[derive(Clone)]
enum Index {
    Cidr(CidrIndex),
    Exact(ExactIndex),
}

/// A read-only lookup table, loaded once and shared across pipeline threads in an
/// [`Arc`](std::sync::Arc). Row `i` of [`values`](Self::values) belongs to row `i` of
/// [`keys`](Self::keys); lookups return row numbers into both.
///
/// Every row of the source is kept, including rows whose key a later row repeats (see
/// the crate docs for which row a lookup then finds), so row numbers are the source's
/// data rows in order.
#[derive(Clone)]
pub struct EnrichmentTable {
    name: String,
    kind: TableKind,
    source: String,
    keys: StringArray,
    values: RecordBatch,
    /// Each value column as text, for the per-record path; Utf8 columns share their
    /// buffers with `values`.
    text: Vec<StringArray>,
    index: Index,
}

impl EnrichmentTable {
    /// Loads the table described by `config`.
    ///
    /// Errors name the file and, where the format has lines, the line (`geo.csv:17`), or
    /// the 1-based data row for Parquet (`geo.parquet row 17`), and the column.
    pub fn load(config: &TableConfig) -> Result<EnrichmentTable> {
        if config.name.is_empty() {
            return Err(PfError::config(
                "transform.tables.name",
                "a table needs a non-empty name",
            ));
        }
        let format = config.resolved_format()?;
        let columns = Columns {
            table: &config.name,
            key: &config.key,
            values: &config.values,
        };
        let mut seen = Vec::with_capacity(config.values.len());
        for v in &config.values {
            if seen.contains(&v) {
                return Err(PfError::config(
                    config.config_key("values"),
                    format!("value column `{v}` is listed twice"),
                ));
            }
            seen.push(v);
        }
        let source = load::load(&config.path, format, &columns)?;
        let path = config.path.display().to_string();
        Self::build(
            &config.name,
            config.kind,
            &path,
            format.as_str(),
            &config.key,
            source,
        )
    }

    /// A table built from an in-memory batch: `key_column` holds the keys (any type with a
    /// text form), every other column becomes a value column. Meant for tests and for
    /// tables computed at start-up; errors name the 1-based row.
    pub fn from_batch(
        name: &str,
        kind: TableKind,
        key_column: &str,
        batch: &RecordBatch,
    ) -> Result<EnrichmentTable> {
        let location = format!("table `{name}`");
        let schema = batch.schema();
        let key_idx = schema.index_of(key_column).map_err(|_| PfError::Schema {
            location: location.clone(),
            message: format!("table `{name}`: key column `{key_column}` not found"),
        })?;
        let keys = load::to_text(batch.column(key_idx)).map_err(|m| PfError::Schema {
            location: location.clone(),
            message: format!("table `{name}`: key column `{key_column}`: {m}"),
        })?;
        let mut values = batch.clone();
        values.remove_column(key_idx);
        let source = Source {
            keys,
            values,
            lines: None,
        };
        Self::build(name, kind, &location, "arrow", key_column, source)
    }

    fn build(
        name: &str,
        kind: TableKind,
        location: &str,
        format: &'static str,
        key_column: &str,
        source: Source,
    ) -> Result<EnrichmentTable> {
        let Source {
            keys,
            values,
            lines,
        } = source;
        let values = nullable(values).map_err(|e| PfError::Schema {
            location: location.to_owned(),
            message: format!("table `{name}`: {e}"),
        })?;
        let at = |row: usize| match lines.as_ref().and_then(|l| l.get(row)) {
            Some(line) => format!("{location}:{line}"),
            None => format!("{location} row {}", row + 1),
        };
        if keys.len() >= u32::MAX as usize {
            return Err(PfError::invalid_data(
                location,
                format,
                format!("table `{name}` has more rows than the 4,294,967,294 supported"),
            ));
        }
        for row in 0..keys.len() {
            if keys.is_null(row) || keys.value(row).is_empty() {
                return Err(PfError::invalid_data(
                    at(row),
                    format,
                    format!("table `{name}`, column `{key_column}`: empty key"),
                ));
            }
        }
        let index = match kind {
            TableKind::Exact => Index::Exact(ExactIndex::build(keys.clone())),
            TableKind::Cidr => {
                let mut prefixes = Vec::with_capacity(keys.len());
                for (row, key) in keys.iter().enumerate() {
                    let key = key.unwrap_or_default();
                    let prefix = parse_prefix(key).map_err(|why| {
                        PfError::invalid_data(
                            at(row),
                            format,
                            format!(
                                "table `{name}`, column `{key_column}`: invalid CIDR `{key}`: {why}"
                            ),
                        )
                    })?;
                    prefixes.push((prefix, row as u32));
                }
                Index::Cidr(CidrIndex::build(prefixes))
            }
        };
        let mut text = Vec::with_capacity(values.num_columns());
        for (field, column) in values.schema().fields().iter().zip(values.columns()) {
            text.push(load::to_text(column).map_err(|m| PfError::Schema {
                location: location.to_owned(),
                message: format!("table `{name}`, value column `{}`: {m}", field.name()),
            })?);
        }
        Ok(EnrichmentTable {
            name: name.to_owned(),
            kind,
            source: location.to_owned(),
            keys,
            values,
            text,
            index,
        })
    }

    /// The table's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How keys are matched.
    pub fn kind(&self) -> TableKind {
        self.kind
    }

    /// Where the table was loaded from (a path, or `table `name`` for in-memory tables).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Number of rows (entries), including rows shadowed by a later duplicate key.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the table has no rows; every lookup then misses.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key of each row as written in the source (CIDR keys not normalized).
    pub fn keys(&self) -> &StringArray {
        &self.keys
    }

    /// The value columns, one row per entry; CSV columns are Utf8, NDJSON and Parquet
    /// columns keep their types. Use with [`arrow::compute::take`] and the row numbers from
    /// [`lookup_rows`](Self::lookup_rows), or call [`take_values`](Self::take_values).
    pub fn values(&self) -> &RecordBatch {
        &self.values
    }

    /// The position of value column `name` in [`values`](Self::values).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.values.schema_ref().index_of(name).ok()
    }

    /// How many rows are shadowed by a later row with the same key (or, for CIDR tables,
    /// the same normalized prefix). Worth logging at start-up: usually a data problem.
    pub fn duplicate_keys(&self) -> usize {
        match &self.index {
            Index::Cidr(c) => c.duplicates(),
            Index::Exact(e) => e.duplicates(),
        }
    }

    /// The row for `key`: for `cidr` tables the longest prefix containing the IP address
    /// `key` (no match if `key` is not an address), for `exact` tables the row whose key
    /// equals `key`.
    #[inline]
    pub fn lookup_row(&self, key: &str) -> Option<u32> {
        match &self.index {
            Index::Cidr(c) => c.lookup(key),
            Index::Exact(e) => e.lookup(key),
        }
    }

    /// [`lookup_row`](Self::lookup_row) for every element of `keys`: null where the key is
    /// null or matches nothing. Feed the result to [`arrow::compute::take`] on
    /// [`values`](Self::values) columns to get the enriched columns.
    pub fn lookup_rows(&self, keys: &StringArray) -> UInt32Array {
        self.lookup_iter(keys.len(), keys.iter())
    }

    /// [`lookup_rows`](Self::lookup_rows) for any string-like array (Utf8, LargeUtf8,
    /// Utf8View, or anything castable to Utf8 such as dictionaries of strings).
    pub fn lookup_array(&self, keys: &dyn Array) -> Result<UInt32Array> {
        if let Some(a) = keys.as_any().downcast_ref::<StringArray>() {
            return Ok(self.lookup_rows(a));
        }
        if let Some(a) = keys.as_any().downcast_ref::<StringViewArray>() {
            return Ok(self.lookup_iter(a.len(), a.iter()));
        }
        if let Some(a) = keys.as_any().downcast_ref::<LargeStringArray>() {
            return Ok(self.lookup_iter(a.len(), a.iter()));
        }
        let cast = arrow::compute::cast(keys, &DataType::Utf8).map_err(|e| PfError::Schema {
            location: format!("lookup in table `{}`", self.name),
            message: format!(
                "keys of type {} cannot be read as text: {e}",
                keys.data_type()
            ),
        })?;
        let cast = cast
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| PfError::Schema {
                location: format!("lookup in table `{}`", self.name),
                message: format!("keys of type {} cannot be read as text", keys.data_type()),
            })?;
        Ok(self.lookup_rows(cast))
    }

    fn lookup_iter<'a>(
        &self,
        len: usize,
        keys: impl Iterator<Item = Option<&'a str>>,
    ) -> UInt32Array {
        // One match on the kind per batch rather than per key keeps the loops tight.
        match &self.index {
            Index::Cidr(c) => collect_rows(len, keys, |k, out| c.lookup_lanes(k, out)),
            Index::Exact(e) => collect_rows(len, keys, |k, out| e.lookup_lanes(k, out)),
        }
    }

    /// The value columns at `rows` (from [`lookup_rows`](Self::lookup_rows)); null rows
    /// give null values.
    pub fn take_values(&self, rows: &UInt32Array) -> Result<RecordBatch> {
        arrow::compute::take_record_batch(&self.values, rows).map_err(|e| PfError::Schema {
            location: format!("table `{}`", self.name),
            message: e.to_string(),
        })
    }

    /// The text of value column `column` for the entry matching `key`; `None` if nothing
    /// matches, the column does not exist or the value is null. The per-record (script)
    /// path; non-text columns are rendered as by Arrow's cast to Utf8.
    pub fn lookup_value(&self, key: &str, column: &str) -> Option<&str> {
        let col = self.column_index(column)?;
        self.value_text(self.lookup_row(key)?, col)
    }

    /// The text of value column number `column` at `row`, without looking up the column
    /// name each time.
    #[inline]
    pub fn value_text(&self, row: u32, column: usize) -> Option<&str> {
        let array = self.text.get(column)?;
        let row = row as usize;
        (row < array.len() && array.is_valid(row)).then(|| array.value(row))
    }

    /// A value column by name.
    pub fn column(&self, name: &str) -> Option<&ArrayRef> {
        self.values.column_by_name(name)
    }
}

/// The batch with every field nullable: a lookup that misses yields nulls in every value
/// column, so [`EnrichmentTable::take_values`] must be able to produce them.
fn nullable(values: RecordBatch) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let schema = values.schema();
    if schema.fields().iter().all(|f| f.is_nullable()) {
        return Ok(values);
    }
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    RecordBatch::try_new_with_options(
        schema,
        values.columns().to_vec(),
        &RecordBatchOptions::new().with_row_count(Some(values.num_rows())),
    )
}

/// Runs `lookup_lanes` over `keys` [`LANES`] at a time and builds the row array: null
/// where `lookup_lanes` reported [`NONE`].
fn collect_rows<'a>(
    len: usize,
    mut keys: impl Iterator<Item = Option<&'a str>>,
    lookup_lanes: impl Fn(&[Option<&str>], &mut [u32]),
) -> UInt32Array {
    let mut rows = vec![NONE; len];
    let mut lane_keys: [Option<&str>; LANES] = [None; LANES];
    for chunk in rows.chunks_mut(LANES) {
        let mut n = 0;
        for slot in lane_keys.iter_mut().take(chunk.len()) {
            // `len` is the iterator's length; a shorter one leaves NONE (null) behind.
            *slot = keys.next().flatten();
            n += 1;
        }
        lookup_lanes(&lane_keys[..n], chunk);
    }
    let valid = BooleanBuffer::collect_bool(len, |i| rows[i] != NONE);
    // Null slots still hold an index; 0 keeps them harmless for kernels that read them.
    for r in &mut rows {
        if *r == NONE {
            *r = 0;
        }
    }
    let nulls = NullBuffer::new(valid);
    UInt32Array::new(rows.into(), (nulls.null_count() > 0).then_some(nulls))
}

impl fmt::Debug for EnrichmentTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrichmentTable")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("source", &self.source)
            .field("rows", &self.len())
            .field(
                "columns",
                &self
                    .values
                    .schema_ref()
                    .fields()
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
