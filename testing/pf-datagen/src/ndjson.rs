//! A direct Arrow → NDJSON serializer.
//!
//! Going straight from the typed arrays into one reused byte buffer avoids building a
//! JSON value tree or a `String` per row, which is what makes NDJSON output keep pace
//! with the generator.

use arrow::array::{
    Array, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, TimeUnit};
use pf_error::PfError;

use crate::text;

/// A column downcast once per batch, so the per-row loop only branches on an enum.
enum Column<'a> {
    Utf8(&'a StringArray),
    Float64(&'a Float64Array),
    Boolean(&'a BooleanArray),
    TimestampMicros(&'a TimestampMicrosecondArray),
}

/// Appends every row of `batch` to `out` as one JSON object per line.
///
/// Supports the column types of [`crate::transaction_schema`]: Utf8 (escaped per
/// RFC 8259), Float64 (two decimals when the value is an exact two-decimal number, as
/// amounts are, otherwise the shortest round-trip form; non-finite values become
/// `null`), Boolean, and microsecond timestamps (RFC 3339 UTC with six fractional
/// digits and `Z`). Nulls are written as `null`. Any other type is a
/// [`PfError::Schema`] error, reported before anything is written.
pub fn write_ndjson_batch(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), PfError> {
    let schema = batch.schema();
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let any = array.as_any();
        let column = match field.data_type() {
            DataType::Utf8 => any.downcast_ref().map(Column::Utf8),
            DataType::Float64 => any.downcast_ref().map(Column::Float64),
            DataType::Boolean => any.downcast_ref().map(Column::Boolean),
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                any.downcast_ref().map(Column::TimestampMicros)
            }
            _ => None,
        };
        let column = column.ok_or_else(|| PfError::Schema {
            location: "ndjson serializer".to_owned(),
            message: format!(
                "column `{}` has type {}, which the serializer does not support",
                field.name(),
                field.data_type()
            ),
        })?;
        // Keys are escaped once per batch; `{` or `,` is part of the prefix.
        let mut key = Vec::with_capacity(field.name().len() + 4);
        key.push(if columns.is_empty() { b'{' } else { b',' });
        push_json_str(&mut key, field.name().as_bytes());
        key.push(b':');
        columns.push((key, array.logical_nulls(), column));
    }
    for row in 0..batch.num_rows() {
        if columns.is_empty() {
            out.push(b'{');
        }
        for (key, nulls, column) in &columns {
            out.extend_from_slice(key);
            if is_null(nulls.as_ref(), row) {
                out.extend_from_slice(b"null");
                continue;
            }
            match column {
                Column::Utf8(a) => push_json_str(out, a.value(row).as_bytes()),
                Column::Float64(a) => push_f64(out, a.value(row)),
                Column::Boolean(a) => {
                    out.extend_from_slice(if a.value(row) { b"true" } else { b"false" })
                }
                Column::TimestampMicros(a) => {
                    out.push(b'"');
                    text::push_rfc3339_micros(out, a.value(row));
                    out.push(b'"');
                }
            }
        }
        out.extend_from_slice(b"}\n");
    }
    Ok(())
}

#[inline]
fn is_null(nulls: Option<&NullBuffer>, row: usize) -> bool {
    nulls.is_some_and(|n| n.is_null(row))
}

fn push_f64(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    let cents = (v * 100.0).round();
    // Only when the two-decimal text reads back as the same f64 is it a faithful form.
    if cents.abs() < 9.0e15 && cents / 100.0 == v {
        text::push_cents(out, cents as i64);
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

/// Bytes that JSON strings cannot hold literally.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Appends `s` (valid UTF-8) as a quoted JSON string.
#[inline]
fn push_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    if s.iter().any(|&b| NEEDS_ESCAPE[b as usize]) {
        push_escaped(out, s);
    } else {
        out.extend_from_slice(s);
    }
    out.push(b'"');
}

#[cold]
fn push_escaped(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            b if b < 0x20 => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xF) as usize]);
            }
            b => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int32Array};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn escapes_strings_and_writes_nulls_and_floats() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("f", DataType::Float64, true),
            Field::new("b", DataType::Boolean, false),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![
                Some("a\"b\\c\n\u{1}é"),
                None,
                Some(""),
            ])),
            Arc::new(Float64Array::from(vec![
                Some(12.5),
                Some(0.1 + 0.2),
                Some(f64::NAN),
            ])),
            Arc::new(BooleanArray::from(vec![true, false, true])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![0, 1_767_620_712_123_456, -1])
                    .with_timezone("UTC"),
            ),
        ];
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        let mut out = Vec::new();
        write_ndjson_batch(&batch, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"s":"a\"b\\c\n\u0001é","f":12.50,"b":true,"t":"1970-01-01T00:00:00.000000Z"}"#
        );
        assert_eq!(
            lines[1],
            r#"{"s":null,"f":0.30000000000000004,"b":false,"t":"2026-01-05T13:45:12.123456Z"}"#
        );
        assert_eq!(
            lines[2],
            r#"{"s":"","f":null,"b":true,"t":"1969-12-31T23:59:59.999999Z"}"#
        );
        for line in lines {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }

    #[test]
    fn rejects_unsupported_types() {
        let schema = Arc::new(Schema::new(vec![Field::new("i", DataType::Int32, false)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int32Array::from(vec![1])) as ArrayRef],
        )
        .unwrap();
        let err = write_ndjson_batch(&batch, &mut Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("column `i` has type Int32"),
            "{err}"
        );
    }
}
