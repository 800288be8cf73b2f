//! Reading a table file into a key column and a batch of value columns.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, RecordBatchOptions, StringArray,
    StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatchReader;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pf_error::{PfError, Result};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::config::TableFormat;

/// What a loader hands to the index builder.
pub(crate) struct Source {
    /// The key column as text; nulls are rejected by the builder.
    pub(crate) keys: StringArray,
    /// The value columns, in the configured order.
    pub(crate) values: RecordBatch,
    /// The 1-based line of each row, for formats that have lines.
    pub(crate) lines: Option<Vec<u64>>,
}

/// Which columns to read.
pub(crate) struct Columns<'a> {
    /// The table name, for messages.
    pub(crate) table: &'a str,
    pub(crate) key: &'a str,
    /// Empty means every column but the key.
    pub(crate) values: &'a [String],
}

impl Columns<'_> {
    /// The value columns to keep given the file's columns, or the reason it cannot be done.
    fn select<'n>(&self, available: &[&'n str], location: &str) -> Result<Vec<&'n str>> {
        if !available.contains(&self.key) {
            return Err(PfError::Schema {
                location: location.to_owned(),
                message: format!(
                    "table `{}`: key column `{}` not found; the file has {}",
                    self.table,
                    self.key,
                    ColumnList(available)
                ),
            });
        }
        if self.values.is_empty() {
            return Ok(available
                .iter()
                .copied()
                .filter(|c| *c != self.key)
                .collect());
        }
        self.values
            .iter()
            .map(|v| {
                available
                    .iter()
                    .copied()
                    .find(|c| *c == v.as_str())
                    .ok_or_else(|| PfError::Schema {
                        location: location.to_owned(),
                        message: format!(
                            "table `{}`: unknown value column `{v}`; the file has {}",
                            self.table,
                            ColumnList(available)
                        ),
                    })
            })
            .collect()
    }
}

/// Renders column names for error messages: `columns a, b, c` or `no columns`.
struct ColumnList<'a, 'b>(&'a [&'b str]);

impl fmt::Display for ColumnList<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no columns");
        }
        f.write_str("columns ")?;
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{c}`")?;
        }
        Ok(())
    }
}

/// Loads `path` as `format`.
pub(crate) fn load(path: &Path, format: TableFormat, columns: &Columns<'_>) -> Result<Source> {
    match format {
        TableFormat::Csv => load_csv(path, columns),
        TableFormat::Ndjson => load_ndjson(path, columns),
        TableFormat::Parquet => load_parquet(path, columns),
    }
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| PfError::io(path.display().to_string(), e))
}

/// Rejects a file that names a selected column twice, since lookups go by column name.
fn check_unique(names: &[&str], location: &str, table: &str) -> Result<()> {
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(PfError::Schema {
                location: location.to_owned(),
                message: format!("table `{table}`: column `{n}` appears more than once"),
            });
        }
    }
    Ok(())
}

/// A batch of `columns` that keeps its row count even with no columns.
fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| PfError::Schema {
        location: "enrichment table".to_owned(),
        message: e.to_string(),
    })
}

/// A file with no configured value columns present still has the configured shape, so
/// scripts referring to a column of an empty table get "no match" instead of an error.
fn empty_source(columns: &Columns<'_>) -> Result<Source> {
    let fields = columns
        .values
        .iter()
        .map(|v| Field::new(v, DataType::Utf8, true))
        .collect();
    let arrays = columns
        .values
        .iter()
        .map(|_| Arc::new(StringArray::from(Vec::<&str>::new())) as ArrayRef)
        .collect();
    Ok(Source {
        keys: StringArray::from(Vec::<&str>::new()),
        values: batch(fields, arrays, 0)?,
        lines: Some(Vec::new()),
    })
}

fn load_csv(path: &Path, columns: &Columns<'_>) -> Result<Source> {
    let name = path.display().to_string();
    let csv_error = |e: csv::Error| -> PfError {
        let location = match e.position() {
            Some(p) => format!("{name}:{}", p.line()),
            None => name.clone(),
        };
        if !e.is_io_error() {
            return PfError::invalid_data(location, "csv", e);
        }
        match e.into_kind() {
            csv::ErrorKind::Io(io) => PfError::io(location, io),
            _ => PfError::invalid_data(location, "csv", "unreadable CSV"),
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(BufReader::new(open(path)?));
    let headers = reader.headers().map_err(&csv_error)?.clone();
    if headers.is_empty() {
        return empty_source(columns);
    }
    let header_names: Vec<&str> = headers.iter().collect();
    let selected = columns.select(&header_names, &format!("{name}:1"))?;
    let mut wanted = selected.clone();
    wanted.push(columns.key);
    // Duplicate headers only matter if one of them is used, since lookups go by name.
    let used: Vec<&str> = header_names
        .iter()
        .copied()
        .filter(|n| wanted.contains(n))
        .collect();
    check_unique(&used, &format!("{name}:1"), columns.table)?;
    let position = |c: &str| header_names.iter().position(|h| *h == c).unwrap_or(0);
    let key_idx = position(columns.key);
    let value_idx: Vec<usize> = selected.iter().map(|c| position(c)).collect();

    let mut keys = StringBuilder::new();
    let mut values: Vec<StringBuilder> = value_idx.iter().map(|_| StringBuilder::new()).collect();
    let mut lines = Vec::new();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(&csv_error)? {
        lines.push(record.position().map_or(0, |p| p.line()));
        keys.append_option(record.get(key_idx));
        for (builder, &i) in values.iter_mut().zip(&value_idx) {
            // An empty cell is how CSV spells "no value".
            builder.append_option(record.get(i).filter(|v| !v.is_empty()));
        }
    }
    let rows = lines.len();
    let fields = selected
        .iter()
        .map(|c| Field::new(*c, DataType::Utf8, true))
        .collect();
    let arrays = values
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    Ok(Source {
        keys: keys.finish(),
        values: batch(fields, arrays, rows)?,
        lines: Some(lines),
    })
}

/// One NDJSON cell, before the column's type is decided.
enum Cell {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Objects, arrays and numbers outside i64/f64 range, kept as JSON text.
    Other(String),
}

impl Cell {
    fn from_value(v: Value) -> Cell {
        match v {
            Value::Null => Cell::Null,
            Value::String(s) => Cell::Str(s),
            Value::Bool(b) => Cell::Bool(b),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Cell::Int(i),
                (None, Some(f)) if !n.is_u64() => Cell::Float(f),
                _ => Cell::Other(n.to_string()),
            },
            other => Cell::Other(other.to_string()),
        }
    }

    fn text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Str(s) | Cell::Other(s) => Some(s.clone()),
            Cell::Int(i) => Some(i.to_string()),
            Cell::Float(f) => Some(f.to_string()),
            Cell::Bool(b) => Some(b.to_string()),
        }
    }

    /// The integer, for an Int64 column; `None` (null) for anything else.
    fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number widened to f64, for a Float64 column; `None` (null) for anything else.
    fn float(&self) -> Option<f64> {
        match self {
            Cell::Int(i) => Some(*i as f64),
            Cell::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The boolean, for a Boolean column; `None` (null) for anything else.
    fn bool(&self) -> Option<bool> {
        match self {
            Cell::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// A JSON object with its members in file order (`serde_json::Map` sorts them), so "all
/// other columns" come out in the order the file has them.
struct Object(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Object, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Object(members))
            }
        }
        d.deserialize_map(V)
    }
}

fn load_ndjson(path: &Path, columns: &Columns<'_>) -> Result<Source> {
    let name = path.display().to_string();
    let mut reader = BufReader::new(open(path)?);
    let mut keys = StringBuilder::new();
    let mut lines = Vec::new();
    // Value columns by name; with no configured list they are discovered as they appear.
    let mut names: Vec<String> = columns.values.to_vec();
    let mut cells: Vec<Vec<Cell>> = names.iter().map(|_| Vec::new()).collect();
    let mut by_name: HashMap<String, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    let discover = columns.values.is_empty();
    // Which configured value columns at least one line had, to report unknown ones.
    let mut seen = vec![false; names.len()];

    let mut buf = String::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_line(&mut buf)
            .map_err(|e| PfError::io(format!("{name}:{}", line_no + 1), e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        // Editors on Windows like to start UTF-8 files with a byte-order mark.
        let text = if line_no == 1 {
            buf.trim_start_matches('\u{feff}').trim()
        } else {
            buf.trim()
        };
        if text.is_empty() {
            continue;
        }
        let location = || format!("{name}:{line_no}");
        let Object(members) = serde_json::from_str(text)
            .map_err(|e| PfError::invalid_data(location(), "ndjson", e))?;
        let row = lines.len();
        let mut key = None;
        for (field, value) in members {
            if field == columns.key {
                key = Some(match &value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => {
                        return Err(PfError::invalid_data(
                            location(),
                            "ndjson",
                            format!(
                                "table `{}`: key column `{}` must be a string or a number, got {other}",
                                columns.table, columns.key
                            ),
                        ));
                    }
                });
                if discover {
                    continue;
                }
            }
            let col = match by_name.get(&field) {
                Some(&c) => c,
                None if discover => {
                    by_name.insert(field.clone(), names.len());
                    names.push(field);
                    let mut backfill = Vec::with_capacity(row + 1);
                    backfill.resize_with(row, || Cell::Null);
                    cells.push(backfill);
                    seen.push(true);
                    names.len() - 1
                }
                None => continue,
            };
            let Some(column) = cells.get_mut(col) else {
                continue;
            };
            // A repeated member overwrites, as in every JSON parser that builds a map.
            if column.len() > row {
                column.truncate(row);
            }
            column.push(Cell::from_value(value));
            if let Some(s) = seen.get_mut(col) {
                *s = true;
            }
        }
        let Some(key) = key else {
            return Err(PfError::Schema {
                location: location(),
                message: format!(
                    "table `{}`: key column `{}` missing from this line",
                    columns.table, columns.key
                ),
            });
        };
        keys.append_value(key);
        for column in &mut cells {
            if column.len() == row {
                column.push(Cell::Null);
            }
        }
        lines.push(line_no);
    }
    if lines.is_empty() {
        return empty_source(columns);
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        let available: Vec<&str> = names
            .iter()
            .zip(&seen)
            .filter(|(_, s)| **s)
            .map(|(n, _)| n.as_str())
            .collect();
        return Err(PfError::Schema {
            location: name,
            message: format!(
                "table `{}`: unknown value column `{}`: no line has it; lines have {}",
                columns.table,
                names[i],
                ColumnList(&available)
            ),
        });
    }
    let rows = lines.len();
    let mut fields = Vec::with_capacity(names.len());
    let mut arrays = Vec::with_capacity(names.len());
    for (name, column) in names.iter().zip(cells) {
        let array = typed_column(column);
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    Ok(Source {
        keys: keys.finish(),
        values: batch(fields, arrays, rows)?,
        lines: Some(lines),
    })
}

/// The narrowest Arrow type that holds every cell: Int64, Float64, Boolean, else Utf8
/// (numbers and booleans then kept as their JSON text).
fn typed_column(cells: Vec<Cell>) -> ArrayRef {
    let (mut ints, mut floats, mut bools, mut other) = (0, 0, 0, 0);
    for c in &cells {
        match c {
            Cell::Null => {}
            Cell::Int(_) => ints += 1,
            Cell::Float(_) => floats += 1,
            Cell::Bool(_) => bools += 1,
            Cell::Str(_) | Cell::Other(_) => other += 1,
        }
    }
    if other == 0 && bools == 0 && floats == 0 && ints > 0 {
        let values: Int64Array = cells.iter().map(Cell::int).collect();
        return Arc::new(values);
    }
    if other == 0 && bools == 0 && floats > 0 {
        let values: Float64Array = cells.iter().map(Cell::float).collect();
        return Arc::new(values);
    }
    if other == 0 && ints == 0 && floats == 0 && bools > 0 {
        let values: BooleanArray = cells.iter().map(Cell::bool).collect();
        return Arc::new(values);
    }
    let values: StringArray = cells.iter().map(Cell::text).collect();
    Arc::new(values)
}

fn load_parquet(path: &Path, columns: &Columns<'_>) -> Result<Source> {
    let name = path.display().to_string();
    let invalid =
        |e: parquet::errors::ParquetError| PfError::invalid_data(name.clone(), "parquet", e);
    let builder = ParquetRecordBatchReaderBuilder::try_new(open(path)?).map_err(invalid)?;
    let schema = builder.schema().clone();
    let available: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let selected = columns.select(&available, &name)?;
    let mut wanted = selected.clone();
    wanted.push(columns.key);
    let roots: Vec<usize> = available
        .iter()
        .enumerate()
        .filter(|(_, c)| wanted.contains(c))
        .map(|(i, _)| i)
        .collect();
    let picked: Vec<&str> = roots
        .iter()
        .filter_map(|&i| available.get(i).copied())
        .collect();
    check_unique(&picked, &name, columns.table)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(invalid)?;
    let projected = reader.schema();
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| PfError::invalid_data(name.clone(), "parquet", e))?);
    }
    let all = arrow::compute::concat_batches(&projected, &batches)
        .map_err(|e| PfError::invalid_data(name.clone(), "parquet", e))?;
    let column = |c: &str| -> Result<ArrayRef> {
        all.column_by_name(c)
            .cloned()
            .ok_or_else(|| PfError::Schema {
                location: name.clone(),
                message: format!(
                    "table `{}`: column `{c}` vanished on projection",
                    columns.table
                ),
            })
    };
    let key_array = column(columns.key)?;
    let keys = to_text(&key_array).map_err(|message| PfError::Schema {
        location: name.clone(),
        message: format!(
            "table `{}`: key column `{}`: {message}",
            columns.table, columns.key
        ),
    })?;
    let mut fields = Vec::with_capacity(selected.len());
    let mut arrays = Vec::with_capacity(selected.len());
    for c in &selected {
        let array = column(c)?;
        fields.push(Field::new(*c, array.data_type().clone(), true));
        arrays.push(array);
    }
    Ok(Source {
        keys,
        values: batch(fields, arrays, all.num_rows())?,
        lines: None,
    })
}

/// `array` as a Utf8 array, by Arrow's cast rules (numbers in decimal, dictionary values
/// resolved); an error for types that have no text form (lists, structs, …).
pub(crate) fn to_text(array: &ArrayRef) -> std::result::Result<StringArray, String> {
    if let Some(s) = array.as_any().downcast_ref::<StringArray>() {
        return Ok(s.clone());
    }
    let cast = arrow::compute::cast(array, &DataType::Utf8)
        .map_err(|e| format!("type {} cannot be read as text: {e}", array.data_type()))?;
    cast.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| format!("type {} cannot be read as text", array.data_type()))
}
