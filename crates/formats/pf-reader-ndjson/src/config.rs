//! `reader.ndjson`: the one declaration of the NDJSON reader's settings.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use pf_error::{PfError, Result, require_at_least_one};
use serde::{Deserialize, Serialize};

use crate::{NdjsonReader, NdjsonReaderOptions};

/// `reader.ndjson`: NDJSON reader settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NdjsonConfig {
    /// `max_line_bytes`: longer lines are record failures, so one runaway line cannot
    /// exhaust memory, bytes. Default `1048576` (1 MiB).
    pub max_line_bytes: usize,
    /// `max_batch_bytes`: a batch ends once the lines decoded into it reach this many
    /// bytes, even before `reader.batch_size` records, so memory per thread stays bounded
    /// whatever the record width. Default `8388608` (8 MiB).
    pub max_batch_bytes: usize,
    /// `infer_rows`: lines sampled to infer the schema when `schema` is null. Default
    /// `1000`.
    pub infer_rows: usize,
    /// `schema`: fixed schema, a list of `{name, type, nullable}`. Default `null`:
    /// inferred from the first `infer_rows` lines.
    pub schema: Option<Vec<FieldSpec>>,
}

impl Default for NdjsonConfig {
    fn default() -> Self {
        NdjsonConfig {
            max_line_bytes: crate::DEFAULT_MAX_LINE_BYTES,
            max_batch_bytes: crate::DEFAULT_MAX_BATCH_BYTES,
            infer_rows: crate::DEFAULT_INFER_ROWS,
            schema: None,
        }
    }
}

/// One entry of `reader.ndjson.schema`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// `name`: the JSON key. Required, unique within the schema.
    pub name: String,
    /// `type`: the Arrow type the value is decoded as. Required.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// `nullable`: whether the key may be missing or null. Default `true`.
    #[serde(default = "default_true")]
    pub nullable: bool,
}

fn default_true() -> bool {
    true
}

/// The value type of a [`FieldSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// UTF-8 text.
    String,
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// `true` / `false`.
    Boolean,
    /// Microseconds since the Unix epoch, UTC (RFC 3339 strings are parsed).
    Timestamp,
}

impl FieldType {
    /// The Arrow type values are decoded as.
    pub fn data_type(self) -> DataType {
        match self {
            FieldType::String => DataType::Utf8,
            FieldType::Int64 => DataType::Int64,
            FieldType::Float64 => DataType::Float64,
            FieldType::Boolean => DataType::Boolean,
            FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

impl NdjsonConfig {
    /// The fixed schema as Arrow, when one is configured.
    pub fn arrow_schema(&self) -> Option<SchemaRef> {
        let fields: Vec<Field> = self
            .schema
            .as_ref()?
            .iter()
            .map(|f| Field::new(&f.name, f.field_type.data_type(), f.nullable))
            .collect();
        Some(Arc::new(Schema::new(fields)))
    }

    /// Checks ranges and the schema's names; errors name the key.
    pub fn validate(&self) -> Result<()> {
        require_at_least_one("reader.ndjson.max_line_bytes", self.max_line_bytes)?;
        require_at_least_one("reader.ndjson.max_batch_bytes", self.max_batch_bytes)?;
        require_at_least_one("reader.ndjson.infer_rows", self.infer_rows)?;
        let Some(schema) = &self.schema else {
            return Ok(());
        };
        if schema.is_empty() {
            return Err(PfError::config(
                "reader.ndjson.schema",
                "must list at least one field (null infers the schema)",
            ));
        }
        let mut seen = HashSet::new();
        for (i, f) in schema.iter().enumerate() {
            let key = format!("reader.ndjson.schema[{i}].name");
            if f.name.trim().is_empty() {
                return Err(PfError::config(key, "must not be empty"));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(PfError::config(key, format!("duplicate name `{}`", f.name)));
            }
        }
        Ok(())
    }

    /// The reader, cutting batches at `batch_size` records (`reader.batch_size`).
    pub fn build(&self, batch_size: usize) -> NdjsonReader {
        NdjsonReader::new(NdjsonReaderOptions {
            batch_size,
            schema: self.arrow_schema(),
            infer_rows: self.infer_rows,
            max_line_bytes: self.max_line_bytes,
            max_batch_bytes: self.max_batch_bytes,
        })
    }
}
