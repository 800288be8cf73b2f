//! Arrow rows → JSON documents, written straight into a byte buffer: no
//! `serde_json::Value`, no per-row allocation. Every JSON output of the pipeline (the
//! Elasticsearch `_bulk` source lines, the `stdout` destination) writes documents with
//! [`DocEncoder`], so they are the same bytes and the same speed.
//!
//! A document is a JSON object of the record's non-null fields, in column order:
//! strings escaped, integers and floats as their shortest text (non-finite floats as
//! `null`), timestamps as RFC 3339 UTC with the unit's digits, `Date32` as
//! `YYYY-MM-DD`; any other type (lists, structs, dictionaries, decimals…) as arrow-json
//! writes it.

pub mod json;
mod time;

pub use time::{RecordTime, days_from_civil, parse_iso_seconds, source_hash_hex};

use std::sync::OnceLock;

use arrow::array::{
    Array, AsArray, BooleanArray, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Date32Type, FieldRef, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::json::writer::{EncoderOptions, NullableEncoder, make_encoder};

use crate::json::TimeWriter;

/// A timestamp column's raw values, its ticks per second and its fraction digits
/// (`a` must be a timestamp array of `unit`).
pub fn timestamp_ticks(a: &dyn Array, unit: TimeUnit) -> (&[i64], i64, u32) {
    match unit {
        TimeUnit::Second => (a.as_primitive::<TimestampSecondType>().values(), 1, 0),
        TimeUnit::Millisecond => (
            a.as_primitive::<TimestampMillisecondType>().values(),
            1_000,
            3,
        ),
        TimeUnit::Microsecond => (
            a.as_primitive::<TimestampMicrosecondType>().values(),
            1_000_000,
            6,
        ),
        TimeUnit::Nanosecond => (
            a.as_primitive::<TimestampNanosecondType>().values(),
            1_000_000_000,
            9,
        ),
    }
}

/// A column no JSON encoder could be made for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot serialize column `{column}`: {message}")]
pub struct EncodeError {
    /// The column's name.
    pub column: String,
    /// What arrow-json said.
    pub message: String,
}

/// Writes one batch's rows as JSON documents. Built once per batch (columns are
/// downcast here, not per row).
pub struct DocEncoder<'a> {
    /// Per column: `"name":`, escaped once per batch, and its encoder.
    columns: Vec<(Vec<u8>, ColumnEncoder<'a>)>,
}

impl<'a> DocEncoder<'a> {
    /// Prepares every column of `batch`.
    pub fn new(batch: &'a RecordBatch) -> Result<Self, EncodeError> {
        let schema = batch.schema_ref();
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let mut key = Vec::with_capacity(field.name().len() + 3);
            json::write_str(field.name().as_bytes(), &mut key);
            key.push(b':');
            columns.push((key, ColumnEncoder::new(field, array.as_ref())?));
        }
        Ok(DocEncoder { columns })
    }

    /// Appends row `row`'s document (one JSON object, no newline).
    #[inline]
    pub fn write_doc(&mut self, row: usize, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        for (key, column) in &mut self.columns {
            if column.is_null(row) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key);
            column.write(row, out);
        }
        out.push(b'}');
    }
}

fn encoder_options() -> &'static EncoderOptions {
    static OPTIONS: OnceLock<EncoderOptions> = OnceLock::new();
    OPTIONS.get_or_init(EncoderOptions::default)
}

/// One column, downcast once per batch.
enum Values<'a> {
    Str(&'a StringArray),
    LargeStr(&'a LargeStringArray),
    View(&'a StringViewArray),
    I64(&'a [i64]),
    I32(&'a [i32]),
    I16(&'a [i16]),
    I8(&'a [i8]),
    U64(&'a [u64]),
    U32(&'a [u32]),
    U16(&'a [u16]),
    U8(&'a [u8]),
    F64(&'a [f64]),
    F32(&'a [f32]),
    Bool(&'a BooleanArray),
    Time {
        values: &'a [i64],
        per_sec: i64,
        digits: u32,
        writer: TimeWriter,
    },
    Date32(&'a [i32]),
    /// Anything else (lists, structs, dictionaries, decimals…): arrow-json's encoder.
    Other(NullableEncoder<'a>),
}

/// One column, downcast once per batch, written row by row.
pub struct ColumnEncoder<'a> {
    nulls: Option<&'a NullBuffer>,
    values: Values<'a>,
}

fn values_of<'a>(
    field: &'a arrow::datatypes::FieldRef,
    a: &'a dyn Array,
) -> Result<Values<'a>, EncodeError> {
    Ok(match a.data_type() {
        DataType::Utf8 => Values::Str(a.as_string::<i32>()),
        DataType::LargeUtf8 => Values::LargeStr(a.as_string::<i64>()),
        DataType::Utf8View => Values::View(a.as_string_view()),
        DataType::Int64 => Values::I64(a.as_primitive::<Int64Type>().values()),
        DataType::Int32 => Values::I32(a.as_primitive::<Int32Type>().values()),
        DataType::Int16 => Values::I16(a.as_primitive::<Int16Type>().values()),
        DataType::Int8 => Values::I8(a.as_primitive::<Int8Type>().values()),
        DataType::UInt64 => Values::U64(a.as_primitive::<UInt64Type>().values()),
        DataType::UInt32 => Values::U32(a.as_primitive::<UInt32Type>().values()),
        DataType::UInt16 => Values::U16(a.as_primitive::<UInt16Type>().values()),
        DataType::UInt8 => Values::U8(a.as_primitive::<UInt8Type>().values()),
        DataType::Float64 => Values::F64(a.as_primitive::<Float64Type>().values()),
        DataType::Float32 => Values::F32(a.as_primitive::<Float32Type>().values()),
        DataType::Boolean => Values::Bool(a.as_boolean()),
        DataType::Timestamp(unit, _) => {
            let (values, per_sec, digits) = timestamp_ticks(a, *unit);
            Values::Time {
                values,
                per_sec,
                digits,
                writer: TimeWriter::default(),
            }
        }
        DataType::Date32 => Values::Date32(a.as_primitive::<Date32Type>().values()),
        _ => Values::Other(
            make_encoder(field, a, encoder_options()).map_err(|e| EncodeError {
                column: field.name().clone(),
                message: e.to_string(),
            })?,
        ),
    })
}

impl<'a> ColumnEncoder<'a> {
    /// Prepares `array` (the column `field`) for writing.
    pub fn new(field: &'a FieldRef, array: &'a dyn Array) -> Result<Self, EncodeError> {
        Ok(ColumnEncoder {
            nulls: array.nulls(),
            values: values_of(field, array)?,
        })
    }

    /// Whether row `row` is null (and is left out of its document).
    #[inline]
    pub fn is_null(&self, row: usize) -> bool {
        self.nulls.is_some_and(|n| n.is_null(row))
    }

    /// Appends row `row`'s value as it reads in an identifier: a string's escaped body
    /// (no quotes) or an integer's digits. `false`, with nothing written, for any other
    /// type.
    pub fn write_key_text(&self, row: usize, out: &mut Vec<u8>) -> bool {
        match &self.values {
            Values::Str(a) => json::write_str_body(a.value(row).as_bytes(), out),
            Values::LargeStr(a) => json::write_str_body(a.value(row).as_bytes(), out),
            Values::View(a) => json::write_str_body(a.value(row).as_bytes(), out),
            Values::I64(v) => json::write_int(v[row], out),
            Values::I32(v) => json::write_int(v[row], out),
            Values::U64(v) => json::write_int(v[row], out),
            Values::U32(v) => json::write_int(v[row], out),
            _ => return false,
        }
        true
    }

    /// Appends row `row`'s (non-null) value as JSON.
    #[inline]
    pub fn write(&mut self, row: usize, out: &mut Vec<u8>) {
        match &mut self.values {
            Values::Str(a) => json::write_str(a.value(row).as_bytes(), out),
            Values::LargeStr(a) => json::write_str(a.value(row).as_bytes(), out),
            Values::View(a) => json::write_str(a.value(row).as_bytes(), out),
            Values::I64(v) => json::write_int(v[row], out),
            Values::I32(v) => json::write_int(v[row], out),
            Values::I16(v) => json::write_int(v[row], out),
            Values::I8(v) => json::write_int(v[row], out),
            Values::U64(v) => json::write_int(v[row], out),
            Values::U32(v) => json::write_int(v[row], out),
            Values::U16(v) => json::write_int(v[row], out),
            Values::U8(v) => json::write_int(v[row], out),
            Values::F64(v) => json::write_f64(v[row], out),
            Values::F32(v) => json::write_f64(f64::from(v[row]), out),
            Values::Bool(a) => out.extend_from_slice(if a.value(row) { b"true" } else { b"false" }),
            Values::Time {
                values,
                per_sec,
                digits,
                writer,
            } => writer.write(values[row], *per_sec, *digits, out),
            Values::Date32(v) => match json::date_bytes(i64::from(v[row])) {
                Some(d) => {
                    out.push(b'"');
                    out.extend_from_slice(&d);
                    out.push(b'"');
                }
                None => json::write_int(i64::from(v[row]) * 86_400_000, out),
            },
            Values::Other(e) => e.encode(row, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::RecordBatch;

    use super::*;

    #[test]
    fn documents_leave_out_nulls_escape_strings_and_write_utc_times() {
        use arrow::array::{StringArray, TimestampMicrosecondArray};
        let ts = TimestampMicrosecondArray::from(vec![Some(1_767_225_600_000_000), None])
            .with_timezone("UTC");
        let batch = RecordBatch::try_from_iter([
            ("t", Arc::new(ts) as _),
            ("s", Arc::new(StringArray::from(vec!["a\"b", "c"])) as _),
        ])
        .unwrap();
        let mut encoder = DocEncoder::new(&batch).unwrap();
        let mut out = Vec::new();
        for row in 0..2 {
            encoder.write_doc(row, &mut out);
            out.push(b'\n');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"t\":\"2026-01-01T00:00:00.000000Z\",\"s\":\"a\\\"b\"}\n{\"s\":\"c\"}\n"
        );
    }
}
