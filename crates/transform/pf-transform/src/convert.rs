//! Arrow values ↔ Rhai values.
//!
//! Arrow → Rhai (what a script sees) is the language's one mapping,
//! [`pf_lang::semantics::column_value`] (the table is in `pf_lang::semantics`): the same
//! reading the vectorized rules use, so a field has the same value in a rule and in a
//! script. Types that mapping does not read (Time, List, Struct, …) arrive as Arrow's
//! display text.
//!
//! Rhai → Arrow (what a changed or new field becomes) is in [`build_sparse`] and the
//! transform docs.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use pf_lang::semantics::{self, ColumnValues};
use rhai::{Dynamic, ImmutableString, Map};

/// Reads one column's values as Rhai values; built once per batch per referenced column
/// (the column is converted once), so the per-row path is one `match` and no downcast.
pub(crate) enum Reader {
    /// A column the language reads natively.
    Values(ColumnValues),
    /// Anything else, read as Arrow's display text.
    Display(ArrayRef),
}

/// The Rhai type a column's values arrive as (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Float,
    Bool,
    Str,
    /// Mixed or structured values, stored as text.
    Text,
}

impl Kind {
    /// The kind a column holding both `self` and `other` values needs.
    pub(crate) fn widen(self, other: Kind) -> Kind {
        match (self, other) {
            (a, b) if a == b => a,
            (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
            _ => Kind::Text,
        }
    }

    /// Whether values of kind `self` can be written to a column read as `column`
    /// without changing the column's type.
    pub(crate) fn fits(self, column: Kind) -> bool {
        match column {
            Kind::Float => matches!(self, Kind::Int | Kind::Float),
            other => self == other,
        }
    }
}

impl Reader {
    pub(crate) fn new(array: &ArrayRef) -> Reader {
        match semantics::column_value(array.as_ref()) {
            Ok(values) => Reader::Values(values),
            Err(_) => Reader::Display(array.clone()),
        }
    }

    /// What the values of a column of `data_type` arrive as.
    pub(crate) fn kind_of(data_type: &DataType) -> Kind {
        match semantics::value_type(data_type) {
            Some(semantics::ValueType::Int) => Kind::Int,
            Some(semantics::ValueType::Float) => Kind::Float,
            Some(semantics::ValueType::Bool) => Kind::Bool,
            _ => Kind::Str,
        }
    }

    /// The value at `row`; `()` for nulls and for rows out of range.
    pub(crate) fn get(&self, row: usize) -> Dynamic {
        fn valid(a: &dyn Array, row: usize) -> bool {
            row < a.len() && a.is_valid(row)
        }
        match self {
            Reader::Values(ColumnValues::Int(a)) if valid(a, row) => {
                Dynamic::from_int(a.value(row))
            }
            Reader::Values(ColumnValues::Float(a)) if valid(a, row) => {
                Dynamic::from_float(a.value(row))
            }
            Reader::Values(ColumnValues::Bool(a)) if valid(a, row) => {
                Dynamic::from_bool(a.value(row))
            }
            Reader::Values(ColumnValues::Str(a)) if valid(a, row) => {
                Dynamic::from(ImmutableString::from(a.value(row)))
            }
            Reader::Display(a) if valid(a.as_ref(), row) => {
                match ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default()) {
                    Ok(f) => Dynamic::from(ImmutableString::from(f.value(row).to_string())),
                    Err(_) => Dynamic::UNIT,
                }
            }
            _ => Dynamic::UNIT,
        }
    }
}

/// The value at `row` of `array`, for one-off reads (rule conditions).
pub(crate) fn value_at(array: &ArrayRef, row: usize) -> Dynamic {
    Reader::new(array).get(row)
}

/// The kind of a non-unit value.
pub(crate) fn kind(value: &Dynamic) -> Kind {
    if value.is_int() {
        Kind::Int
    } else if value.is_float() {
        Kind::Float
    } else if value.is_bool() {
        Kind::Bool
    } else if value.is_string() {
        Kind::Str
    } else {
        Kind::Text
    }
}

/// The kind that holds every non-unit value, `None` when all are `()`.
pub(crate) fn infer<'a>(values: impl IntoIterator<Item = &'a Dynamic>) -> Option<Kind> {
    let mut out: Option<Kind> = None;
    for v in values {
        if v.is_unit() {
            continue;
        }
        let k = kind(v);
        out = Some(match out {
            None => k,
            Some(prev) => prev.widen(k),
        });
        if out == Some(Kind::Text) {
            break;
        }
    }
    out
}

/// Whether a script left a value as it was. Exact: floats compare by bits, so NaN is
/// unchanged and `-0.0` differs from `0.0`; a value that changed type has changed.
pub(crate) fn same_value(before: &Dynamic, after: &Dynamic) -> bool {
    if before.is_unit() {
        return after.is_unit();
    }
    if let Ok(a) = before.as_int() {
        return after.as_int() == Ok(a);
    }
    if let Ok(a) = before.as_float() {
        return after.as_float().map(f64::to_bits) == Ok(a.to_bits());
    }
    if let Ok(a) = before.as_bool() {
        return after.as_bool() == Ok(a);
    }
    if let (Ok(a), Ok(b)) = (
        before.as_immutable_string_ref(),
        after.as_immutable_string_ref(),
    ) {
        return *a == *b;
    }
    false
}

/// The JSON form of a Rhai value (alert details, text columns): maps and arrays
/// recursively, non-finite floats as `null`, other types (characters, function
/// pointers, …) as their display text.
pub(crate) fn to_json(value: &Dynamic) -> serde_json::Value {
    use serde_json::Value;
    if value.is_unit() {
        return Value::Null;
    }
    if let Ok(i) = value.as_int() {
        return Value::from(i);
    }
    if let Ok(f) = value.as_float() {
        return serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
    }
    if let Ok(b) = value.as_bool() {
        return Value::Bool(b);
    }
    if let Ok(s) = value.as_immutable_string_ref() {
        return Value::String(s.to_string());
    }
    if let Ok(m) = value.as_map_ref() {
        return Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect());
    }
    if let Ok(a) = value.as_array_ref() {
        return Value::Array(a.iter().map(to_json).collect());
    }
    Value::String(value.to_string())
}

/// The text form of a value for Utf8 columns and hashing: strings as they are, numbers
/// and booleans as literals (`1`, `1.5`, `true`), everything else as JSON.
pub(crate) fn text(value: &Dynamic) -> String {
    if let Ok(s) = value.as_immutable_string_ref() {
        return s.to_string();
    }
    if let Ok(i) = value.as_int() {
        return i.to_string();
    }
    if let Ok(f) = value.as_float() {
        return format!("{f:?}");
    }
    if let Ok(b) = value.as_bool() {
        return b.to_string();
    }
    if let Ok(c) = value.as_char() {
        return c.to_string();
    }
    to_json(value).to_string()
}

/// A column of `len` rows of kind `kind` with `values` (position, value) set, sorted by
/// position, and nulls elsewhere. `()` values are nulls. Values that do not match
/// `kind` (never the case when `kind` came from [`infer`]) are nulls too.
pub(crate) fn build_sparse(len: usize, values: &[(u32, Dynamic)], kind: Kind) -> ArrayRef {
    let mut at = values.iter().peekable();
    let mut next = |pos: usize| -> Option<&Dynamic> {
        let mut found = None;
        while let Some((p, v)) = at.peek() {
            let p = *p as usize;
            if p < pos {
                at.next();
            } else {
                if p == pos {
                    found = Some(v);
                }
                break;
            }
        }
        found.filter(|v| !v.is_unit())
    };
    match kind {
        Kind::Int => {
            let mut b = Int64Builder::with_capacity(len);
            for pos in 0..len {
                b.append_option(next(pos).and_then(|v| v.as_int().ok()));
            }
            Arc::new(b.finish())
        }
        Kind::Float => {
            let mut b = Float64Builder::with_capacity(len);
            for pos in 0..len {
                b.append_option(next(pos).and_then(|v| {
                    v.as_float()
                        .ok()
                        .or_else(|| v.as_int().ok().map(|i| i as f64))
                }));
            }
            Arc::new(b.finish())
        }
        Kind::Bool => {
            let mut b = BooleanBuilder::with_capacity(len);
            for pos in 0..len {
                b.append_option(next(pos).and_then(|v| v.as_bool().ok()));
            }
            Arc::new(b.finish())
        }
        Kind::Str | Kind::Text => {
            let mut b = StringBuilder::with_capacity(len, len * 8);
            for pos in 0..len {
                match next(pos) {
                    Some(v) => match v.as_immutable_string_ref() {
                        Ok(s) => b.append_value(s.as_str()),
                        Err(_) => b.append_value(text(v)),
                    },
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    }
}

/// `native` (built by [`build_sparse`]) as `target`. Timestamps and dates are converted
/// from the script's units (µs, days), not reinterpreted.
pub(crate) fn to_type(
    native: &ArrayRef,
    target: &DataType,
    safe: bool,
) -> Result<ArrayRef, ArrowError> {
    if native.data_type() == target {
        return Ok(native.clone());
    }
    let options = CastOptions {
        safe,
        ..CastOptions::default()
    };
    match (native.data_type(), target) {
        (DataType::Int64, DataType::Timestamp(unit, tz)) if *unit != TimeUnit::Microsecond => {
            let micros = cast_with_options(
                native,
                &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
                &options,
            )?;
            cast_with_options(&micros, target, &options)
        }
        (DataType::Int64, DataType::Date32) => {
            let days = cast_with_options(native, &DataType::Int32, &options)?;
            cast_with_options(&days, target, &options)
        }
        _ => cast_with_options(native, target, &options),
    }
}

/// Kept positions whose value `to_type` turned into a null: values of a declared output
/// type that do not convert.
pub(crate) fn lost_in_cast(native: &dyn Array, cast: &dyn Array) -> Vec<usize> {
    (0..native.len().min(cast.len()))
        .filter(|&i| native.is_valid(i) && cast.is_null(i))
        .collect()
}

/// One row of `batch` as a JSON object, for failure reports.
pub(crate) fn row_json(batch: &RecordBatch, row: usize) -> Option<String> {
    if row >= batch.num_rows() {
        return None;
    }
    let slice = batch.slice(row, 1);
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    writer.write(&slice).ok()?;
    writer.finish().ok()?;
    let mut out = String::from_utf8(writer.into_inner()).ok()?;
    while out.ends_with('\n') {
        out.pop();
    }
    Some(out)
}

/// An empty map with `names` as keys, all `()`: cloning it and overwriting its values in
/// key order builds a record map with one allocation.
pub(crate) fn template<'a>(names: impl IntoIterator<Item = &'a str>) -> Map {
    names
        .into_iter()
        .map(|n| (n.into(), Dynamic::UNIT))
        .collect()
}
