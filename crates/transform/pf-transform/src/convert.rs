//! Arrow values ↔ Rhai values.
//!
//! Arrow → Rhai (what a script sees):
//!
//! | Arrow type                                         | Rhai value                     |
//! |----------------------------------------------------|--------------------------------|
//! | Int8…Int64, UInt8…UInt32                           | `i64`                          |
//! | UInt64                                             | `i64`; above `i64::MAX` `()`   |
//! | Float16, Float32, Float64                          | `f64`                          |
//! | Decimal32, Decimal64, Decimal128, Decimal256       | `f64`, as Arrow casts it (as the rule engine reads decimals, so `amount > 1000.0` works) |
//! | Boolean                                            | `bool`                         |
//! | Utf8, LargeUtf8, Utf8View                          | string                         |
//! | Dictionary(_, V)                                   | as V                           |
//! | Timestamp(any unit, any or no time zone)           | `i64` µs since the epoch (UTC; ns floored; `()` if it overflows) |
//! | Date32                                             | `i64` days since the epoch     |
//! | null (any type), Null                              | `()`                           |
//! | anything else (Date64, Time, List, Struct…)        | string: Arrow's display form   |
//!
//! Rhai → Arrow (what a changed or new field becomes) is in [`build_sparse`] and the
//! transform docs.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Float64Builder, Int64Builder,
    RecordBatch, StringBuilder,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{
    DataType, Date32Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use rhai::{Dynamic, ImmutableString, Map};

/// Reads one column's values as Rhai values; built once per batch per referenced column,
/// so the per-row path is one `match` and no downcast.
pub(crate) enum Reader {
    I8(arrow::array::Int8Array),
    I16(arrow::array::Int16Array),
    I32(arrow::array::Int32Array),
    I64(arrow::array::Int64Array),
    U8(arrow::array::UInt8Array),
    U16(arrow::array::UInt16Array),
    U32(arrow::array::UInt32Array),
    U64(arrow::array::UInt64Array),
    F16(arrow::array::Float16Array),
    F32(arrow::array::Float32Array),
    F64(arrow::array::Float64Array),
    Bool(BooleanArray),
    Utf8(arrow::array::StringArray),
    LargeUtf8(arrow::array::LargeStringArray),
    Utf8View(arrow::array::StringViewArray),
    /// Any timestamp unit; values scaled to microseconds on read.
    Timestamp(arrow::array::Int64Array, TimeUnit),
    Date32(arrow::array::Date32Array),
    /// Any decimal type; each value cast to f64 by Arrow on read (the same cast the
    /// rule engine applies to the whole column, so both see the same number).
    Decimal(ArrayRef),
    Dict {
        keys: ArrayRef,
        values: Box<Reader>,
    },
    Null,
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
        match array.data_type() {
            DataType::Int8 => Reader::I8(array.as_primitive::<Int8Type>().clone()),
            DataType::Int16 => Reader::I16(array.as_primitive::<Int16Type>().clone()),
            DataType::Int32 => Reader::I32(array.as_primitive::<Int32Type>().clone()),
            DataType::Int64 => Reader::I64(array.as_primitive::<Int64Type>().clone()),
            DataType::UInt8 => Reader::U8(array.as_primitive::<UInt8Type>().clone()),
            DataType::UInt16 => Reader::U16(array.as_primitive::<UInt16Type>().clone()),
            DataType::UInt32 => Reader::U32(array.as_primitive::<UInt32Type>().clone()),
            DataType::UInt64 => Reader::U64(array.as_primitive::<UInt64Type>().clone()),
            DataType::Float16 => Reader::F16(array.as_primitive::<Float16Type>().clone()),
            DataType::Float32 => Reader::F32(array.as_primitive::<Float32Type>().clone()),
            DataType::Float64 => Reader::F64(array.as_primitive::<Float64Type>().clone()),
            DataType::Boolean => Reader::Bool(array.as_boolean().clone()),
            DataType::Utf8 => Reader::Utf8(array.as_string::<i32>().clone()),
            DataType::LargeUtf8 => Reader::LargeUtf8(array.as_string::<i64>().clone()),
            DataType::Utf8View => Reader::Utf8View(array.as_string_view().clone()),
            DataType::Timestamp(unit, _) => {
                let values = match unit {
                    TimeUnit::Second => array
                        .as_primitive::<TimestampSecondType>()
                        .reinterpret_cast::<Int64Type>(),
                    TimeUnit::Millisecond => array
                        .as_primitive::<TimestampMillisecondType>()
                        .reinterpret_cast::<Int64Type>(),
                    TimeUnit::Microsecond => array
                        .as_primitive::<TimestampMicrosecondType>()
                        .reinterpret_cast::<Int64Type>(),
                    TimeUnit::Nanosecond => array
                        .as_primitive::<TimestampNanosecondType>()
                        .reinterpret_cast::<Int64Type>(),
                };
                Reader::Timestamp(values, *unit)
            }
            DataType::Date32 => Reader::Date32(array.as_primitive::<Date32Type>().clone()),
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => Reader::Decimal(array.clone()),
            DataType::Dictionary(..) => match array.as_any_dictionary_opt() {
                Some(dict) => Reader::Dict {
                    keys: dict.keys().slice(0, dict.keys().len()),
                    values: Box::new(Reader::new(dict.values())),
                },
                None => Reader::Display(array.clone()),
            },
            DataType::Null => Reader::Null,
            _ => Reader::Display(array.clone()),
        }
    }

    /// What the values of a column of `data_type` arrive as.
    pub(crate) fn kind_of(data_type: &DataType) -> Kind {
        match data_type {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Timestamp(..)
            | DataType::Date32 => Kind::Int,
            DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => Kind::Float,
            DataType::Boolean => Kind::Bool,
            DataType::Dictionary(_, v) => Reader::kind_of(v),
            _ => Kind::Str,
        }
    }

    /// The value at `row`; `()` for nulls and for rows out of range.
    pub(crate) fn get(&self, row: usize) -> Dynamic {
        macro_rules! prim {
            ($a:expr, $conv:expr) => {{
                let a = $a;
                if row >= a.len() || a.is_null(row) {
                    Dynamic::UNIT
                } else {
                    let conv = $conv;
                    conv(a.value(row))
                }
            }};
        }
        match self {
            Reader::I8(a) => prim!(a, |v: i8| Dynamic::from_int(v.into())),
            Reader::I16(a) => prim!(a, |v: i16| Dynamic::from_int(v.into())),
            Reader::I32(a) => prim!(a, |v: i32| Dynamic::from_int(v.into())),
            Reader::I64(a) => prim!(a, Dynamic::from_int),
            Reader::U8(a) => prim!(a, |v: u8| Dynamic::from_int(v.into())),
            Reader::U16(a) => prim!(a, |v: u16| Dynamic::from_int(v.into())),
            Reader::U32(a) => prim!(a, |v: u32| Dynamic::from_int(v.into())),
            Reader::U64(a) => prim!(a, |v: u64| i64::try_from(v)
                .map_or(Dynamic::UNIT, Dynamic::from_int)),
            Reader::F16(a) => prim!(a, |v| Dynamic::from_float(f64::from(v))),
            Reader::F32(a) => prim!(a, |v: f32| Dynamic::from_float(v.into())),
            Reader::F64(a) => prim!(a, Dynamic::from_float),
            Reader::Bool(a) => prim!(a, Dynamic::from_bool),
            Reader::Utf8(a) => prim!(a, |v: &str| Dynamic::from(ImmutableString::from(v))),
            Reader::LargeUtf8(a) => prim!(a, |v: &str| Dynamic::from(ImmutableString::from(v))),
            Reader::Utf8View(a) => prim!(a, |v: &str| Dynamic::from(ImmutableString::from(v))),
            Reader::Timestamp(a, unit) => prim!(a, |v: i64| {
                let micros = match unit {
                    TimeUnit::Second => v.checked_mul(1_000_000),
                    TimeUnit::Millisecond => v.checked_mul(1_000),
                    TimeUnit::Microsecond => Some(v),
                    TimeUnit::Nanosecond => Some(v.div_euclid(1_000)),
                };
                micros.map_or(Dynamic::UNIT, Dynamic::from_int)
            }),
            Reader::Date32(a) => prim!(a, |v: i32| Dynamic::from_int(v.into())),
            Reader::Decimal(a) => {
                if row >= a.len() || a.is_null(row) {
                    return Dynamic::UNIT;
                }
                match cast_with_options(
                    &a.slice(row, 1),
                    &DataType::Float64,
                    &CastOptions::default(),
                ) {
                    Ok(f) if f.is_valid(0) => {
                        Dynamic::from_float(f.as_primitive::<Float64Type>().value(0))
                    }
                    _ => Dynamic::UNIT,
                }
            }
            Reader::Dict { keys, values } => match dictionary_key(keys, row) {
                Some(k) => values.get(k),
                None => Dynamic::UNIT,
            },
            Reader::Null => Dynamic::UNIT,
            Reader::Display(a) => {
                if row >= a.len() || a.is_null(row) {
                    return Dynamic::UNIT;
                }
                match ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default()) {
                    Ok(f) => Dynamic::from(ImmutableString::from(f.value(row).to_string())),
                    Err(_) => Dynamic::UNIT,
                }
            }
        }
    }
}

/// The dictionary key at `row` as an index into the values; `None` for nulls, rows out
/// of range and negative keys.
fn dictionary_key(keys: &ArrayRef, row: usize) -> Option<usize> {
    if row >= keys.len() || keys.is_null(row) {
        return None;
    }
    macro_rules! key {
        ($t:ty) => {
            usize::try_from(keys.as_primitive::<$t>().value(row)).ok()
        };
    }
    match keys.data_type() {
        DataType::Int8 => key!(Int8Type),
        DataType::Int16 => key!(Int16Type),
        DataType::Int32 => key!(Int32Type),
        DataType::Int64 => key!(Int64Type),
        DataType::UInt8 => key!(UInt8Type),
        DataType::UInt16 => key!(UInt16Type),
        DataType::UInt32 => key!(UInt32Type),
        DataType::UInt64 => key!(UInt64Type),
        _ => None,
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
