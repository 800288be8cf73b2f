//! The per-record meaning of conditions, in one place.
//!
//! The vectorized evaluator must give exactly what the Rhai script engine gives for the
//! same record. This module is the written-down contract between the two: the scalar
//! functions here define each operation on one [`Value`], the vectorized kernels are
//! tested against them value by value (including nulls, NaN, `-0.0`, overflow), and the
//! script crate can call them (or check itself against them) so both stay in step. To
//! change a rule of the language, change it here and in the kernels, and the cross-check
//! tests say whether the two still agree.
//!
//! # Values
//!
//! A record field becomes one of five values ([`column_value`] / [`value_at`]):
//!
//! | Arrow type | value |
//! |------------|-------|
//! | any null, or type `Null` | `()` |
//! | `Boolean` | `bool` |
//! | `Int8`…`Int64`, `UInt8`…`UInt32` | `INT` (i64) |
//! | `UInt64` | `INT`; values above `i64::MAX` are `()` |
//! | `Float16`…`Float64` | `FLOAT` (f64) |
//! | `Decimal32`…`Decimal256` | `FLOAT`: f64 as Arrow casts them (the Rhai side reads them the same way, so `amount > 1000.0` works on a decimal column) |
//! | `Utf8`, `LargeUtf8`, `Utf8View`, dictionaries of these | string |
//! | `Timestamp(unit, any zone)` | `INT`: microseconds since the epoch, UTC (ns floored; a value that does not fit is `()`) |
//! | `Date32` | `INT`: days since 1970-01-01 (as the Rhai side reads it; **not** µs, so `hour`/`day_of_week` of a Date32 field are not meaningful) |
//! | `Date64` | string: Arrow's display form (as the Rhai side reads it, e.g. `2026-01-01T00:00:00`) |
//! | anything else | not readable by rules: an error for the record (handed to the Rhai fallback, which reads it as its display text) |
//!
//! # Operators
//!
//! * `==` / `!=`: `() == ()` is true; values of different types (including `()` against
//!   anything else) are not equal (`!=` is true); `INT` with `INT` is exact.
//! * `< <= > >=`: numbers, strings (byte-wise, which is code-point order) and booleans
//!   (`false < true`); anything involving `()` or two different types is false.
//! * **Floats, and `INT` mixed with `FLOAT`** (the `INT` converted with `as f64`) compare
//!   as Rhai does in checked mode ([`float_compare`]), with a relative epsilon, **not**
//!   IEEE 754. With `ε = f64::EPSILON` and `m = 1.0` if `x * y == 0.0`, else
//!   `max(|x|, |y|)` (`f64::max`, which ignores NaN):
//!   - if `m == 0.0` (only NaN against ±0.0): `==`, `<=`, `>=` are true, the rest false;
//!   - `x == y` ⇔ `|x − y| / m <= ε`, `x != y` ⇔ `|x − y| / m > ε`;
//!   - `x > y` ⇔ `(x − y) / m > ε`, `x >= y` ⇔ `(x − y) / m > −ε`;
//!   - `x < y` ⇔ `(y − x) / m > ε`, `x <= y` ⇔ `(y − x) / m > −ε`.
//!
//!   So `10000.000000000002 == 10000.0` (and is not `> 10000.0`), `0.1 + 0.2 == 0.3`,
//!   `1e-300 == 0.0`, `-0.0 == 0.0`; NaN and ±infinity are false under every operator,
//!   `!=` included (`NaN != NaN` is false, `inf == inf` is false), except NaN against
//!   ±0.0, which is "equal". `!=` is therefore **not** `!(==)` for floats. The verified
//!   table is `pf-transform/tests/semantics.rs`.
//! * `+ - * / %`: `INT` with `INT` is checked i64 arithmetic (overflow, division or
//!   remainder by zero are errors; `/` and `%` truncate toward zero); any `FLOAT` operand
//!   makes it f64 arithmetic (never an error: `1.0 / 0` is infinity). String `+` string
//!   concatenates. Anything else — in particular any `()` operand — is an error.
//! * Unary `-`: checked for `INT` (`-i64::MIN` is an error), plain for `FLOAT`; else error.
//! * `!`, `&&`, `||`: operands must be `bool`, else error. `&&` and `||` short-circuit:
//!   the right operand is not evaluated (cannot fail) when the left decides.
//! * `x in [a, b, …]`: `x == a || x == b || …` with `==` above.
//! * `hour`, `minute`, `day_of_week` of `INT` microseconds (UTC; day of week as Rhai's
//!   built-in gives it: Monday = 0 … Sunday = 6) or of an RFC 3339 string (surrounding
//!   whitespace trimmed; unparsable → `()`); of `()` they are `()`; of anything else an
//!   error.
//! * `lookup(t, k).c` / `lookup_cidr(t, k).c`: column `c` of the matching row, `()` when
//!   nothing matches or the value is null. `in_table(t, k)`: whether a row matches. The
//!   key is a string, an `INT` (looked up as its decimal text) or `()` (matches nothing);
//!   any other key is an error.
//! * A missing field: `record.x` is `()`; a bare `x` is an error ("variable not found").
//! * The condition's result must be a `bool`; anything else (including `()`) is an error.
//!
//! Errors are record-level failures of the record and rule.
//!
//! # What the Rhai engine adds per record
//!
//! Rules outside the vectorized subset, and scripts, run on Rhai itself, which also has
//! (checked against the engine by `pf-transform/tests/semantics.rs`):
//!
//! * **Strings**: `+` concatenates a string with anything (`"a" + 1 == "a1"`,
//!   `1 + "a" == "1a"`, `() + "s" == "s"`); `-` removes every occurrence of a string or
//!   character (`"abc" - "c" == "ab"`); a character literal equals the one-character
//!   string (`'a' == "a"`). The vectorized subset has no character literals, and
//!   concatenation with a non-string is an error there: such rows go to the engine.
//! * **Literal operands of `&&` / `||`**: the optimizer removes a literal `true` operand
//!   of `&&` and a literal `false` operand of `||`, so `x && true` is just `x`; a literal
//!   non-bool operand (`1 && x`, `() || x`) does not compile.
//! * **Missing map properties** are `()`: `record.absent`, `lookup("t", miss).col`,
//!   `#{a: 1}["b"]`.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::{
    DataType, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};

use crate::condition::{BinaryOp, TimeFn};

/// Microseconds per minute.
pub const MINUTE_US: i64 = 60_000_000;
/// Microseconds per hour.
pub const HOUR_US: i64 = 60 * MINUTE_US;
/// Microseconds per day.
pub const DAY_US: i64 = 24 * HOUR_US;

/// One record value as a condition sees it (Rhai's dynamic value, restricted to what
/// record fields and table values can be).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `()`: null or missing.
    Unit,
    /// `bool`.
    Bool(bool),
    /// `INT`.
    Int(i64),
    /// `FLOAT`.
    Float(f64),
    /// A string.
    Str(String),
}

impl Value {
    /// The type's name as Rhai prints it, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Unit => "()",
            Value::Bool(_) => "bool",
            Value::Int(_) => "i64",
            Value::Float(_) => "f64",
            Value::Str(_) => "string",
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            _ => None,
        }
    }
}

/// `x op y` for floats (and integers mixed with floats, converted with `as f64`) as Rhai
/// compares them in checked mode: a relative epsilon, not IEEE 754 (see the module docs).
/// False for a non-comparison operator.
#[inline]
pub fn float_compare(op: BinaryOp, x: f64, y: f64) -> bool {
    const EPS: f64 = f64::EPSILON;
    let m = if x * y == 0.0 {
        1.0
    } else {
        // `f64::max` ignores NaN: NaN against ±0.0 gives 0.0.
        x.abs().max(y.abs())
    };
    if m == 0.0 {
        return matches!(op, BinaryOp::Eq | BinaryOp::Le | BinaryOp::Ge);
    }
    match op {
        BinaryOp::Eq => (x - y).abs() / m <= EPS,
        BinaryOp::Ne => (x - y).abs() / m > EPS,
        BinaryOp::Gt => (x - y) / m > EPS,
        BinaryOp::Ge => (x - y) / m > -EPS,
        BinaryOp::Lt => (y - x) / m > EPS,
        BinaryOp::Le => (y - x) / m > -EPS,
        _ => false,
    }
}

/// `a == b`.
pub fn equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Unit, Value::Unit) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => a
            .as_f64()
            .zip(b.as_f64())
            .is_some_and(|(x, y)| float_compare(BinaryOp::Eq, x, y)),
        _ => false,
    }
}

/// `a op b` for a comparison operator (`== != < <= > >=`); false for any other operator.
pub fn compare(op: BinaryOp, a: &Value, b: &Value) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    if let (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) = (a, b)
        && !matches!((a, b), (Value::Int(_), Value::Int(_)))
    {
        return a
            .as_f64()
            .zip(b.as_f64())
            .is_some_and(|(x, y)| float_compare(op, x, y));
    }
    match op {
        BinaryOp::Eq => return equals(a, b),
        BinaryOp::Ne => return !equals(a, b),
        _ => {}
    }
    let ord = match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Str(x), Value::Str(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    };
    matches!(
        (op, ord),
        (BinaryOp::Lt, Some(Less))
            | (BinaryOp::Le, Some(Less | Equal))
            | (BinaryOp::Gt, Some(Greater))
            | (BinaryOp::Ge, Some(Greater | Equal))
    )
}

/// `a op b` for an arithmetic operator (`+ - * / %`).
pub fn arithmetic(op: BinaryOp, a: &Value, b: &Value) -> Result<Value, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => int_arithmetic(op, *x, *y).map(Value::Int),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            match a.as_f64().zip(b.as_f64()) {
                Some((x, y)) => float_arithmetic(op, x, y).map(Value::Float),
                None => Err(mismatch(op, a, b)),
            }
        }
        (Value::Str(x), Value::Str(y)) if op == BinaryOp::Add => Ok(Value::Str(format!("{x}{y}"))),
        _ => Err(mismatch(op, a, b)),
    }
}

fn mismatch(op: BinaryOp, a: &Value, b: &Value) -> String {
    format!(
        "operator `{}` is not defined for {} and {}",
        op.symbol(),
        a.type_name(),
        b.type_name()
    )
}

/// Checked i64 arithmetic, shared by the reference interpreter and the kernels.
#[inline]
pub fn int_arithmetic(op: BinaryOp, x: i64, y: i64) -> Result<i64, String> {
    let r = match op {
        BinaryOp::Add => x.checked_add(y),
        BinaryOp::Sub => x.checked_sub(y),
        BinaryOp::Mul => x.checked_mul(y),
        BinaryOp::Div | BinaryOp::Rem if y == 0 => return Err("division by zero".into()),
        BinaryOp::Div => x.checked_div(y),
        BinaryOp::Rem => x.checked_rem(y),
        _ => return Err(format!("`{}` is not arithmetic", op.symbol())),
    };
    r.ok_or_else(|| format!("integer overflow: {x} {} {y}", op.symbol()))
}

/// f64 arithmetic, IEEE 754 (never an error for arithmetic operators).
#[inline]
pub fn float_arithmetic(op: BinaryOp, x: f64, y: f64) -> Result<f64, String> {
    Ok(match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Rem => x % y,
        _ => return Err(format!("`{}` is not arithmetic", op.symbol())),
    })
}

/// Unary `-a`.
pub fn negate(a: &Value) -> Result<Value, String> {
    match a {
        Value::Int(i) => i
            .checked_neg()
            .map(Value::Int)
            .ok_or_else(|| format!("integer overflow: -({i})")),
        Value::Float(x) => Ok(Value::Float(-x)),
        other => Err(format!(
            "operator `-` is not defined for {}",
            other.type_name()
        )),
    }
}

/// An operand of `!`, `&&`, `||`, or the condition's result, as a boolean.
pub fn as_bool(a: &Value, role: &str) -> Result<bool, String> {
    match a {
        Value::Bool(b) => Ok(*b),
        other => Err(format!("{role} must be a bool, not {}", other.type_name())),
    }
}

/// `hour`, `minute` or `day_of_week` of a value.
pub fn time_part(f: TimeFn, a: &Value) -> Result<Value, String> {
    let micros = match a {
        Value::Int(us) => *us,
        Value::Str(s) => match parse_rfc3339_micros(s) {
            Some(us) => us,
            None => return Ok(Value::Unit),
        },
        Value::Unit => return Ok(Value::Unit),
        other => {
            return Err(format!(
                "`{}` needs a timestamp (i64 µs or RFC 3339 string), not {}",
                f.name(),
                other.type_name()
            ));
        }
    };
    Ok(Value::Int(time_of_micros(f, micros)))
}

/// `hour`, `minute` or `day_of_week` of microseconds since the epoch, UTC.
#[inline]
pub fn time_of_micros(f: TimeFn, us: i64) -> i64 {
    match f {
        TimeFn::Hour => us.rem_euclid(DAY_US) / HOUR_US,
        TimeFn::Minute => us.rem_euclid(HOUR_US) / MINUTE_US,
        // Monday = 0 … Sunday = 6, as Rhai's built-in; 1970-01-01 was a Thursday (3).
        TimeFn::DayOfWeek => (us.div_euclid(DAY_US) + 3).rem_euclid(7),
    }
}

/// Microseconds since the epoch of an RFC 3339 timestamp (as chrono's
/// `DateTime::parse_from_rfc3339` reads it: any offset, fractional seconds; surrounding
/// whitespace trimmed, as the Rhai built-ins do); `None` when the text is not one.
pub fn parse_rfc3339_micros(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_micros())
}

/// The text a lookup key is matched as: `Ok(None)` matches nothing.
pub fn lookup_key(key: &Value) -> Result<Option<String>, String> {
    match key {
        Value::Str(s) => Ok(Some(s.clone())),
        Value::Int(i) => Ok(Some(i.to_string())),
        Value::Unit => Ok(None),
        other => Err(format!(
            "a lookup key must be a string or an integer, not {}",
            other.type_name()
        )),
    }
}

/// A column in one of the five value representations (see the module docs). Nulls are
/// `()`.
#[derive(Debug, Clone)]
pub enum ColumnValues {
    /// Every row is `()`.
    Unit(usize),
    /// `bool` values.
    Bool(BooleanArray),
    /// `INT` values.
    Int(Int64Array),
    /// `FLOAT` values.
    Float(Float64Array),
    /// Strings.
    Str(StringArray),
}

impl ColumnValues {
    /// The value at `row` (`()` past the end).
    pub fn value(&self, row: usize) -> Value {
        match self {
            ColumnValues::Unit(_) => Value::Unit,
            ColumnValues::Bool(a) if row < a.len() && a.is_valid(row) => Value::Bool(a.value(row)),
            ColumnValues::Int(a) if row < a.len() && a.is_valid(row) => Value::Int(a.value(row)),
            ColumnValues::Float(a) if row < a.len() && a.is_valid(row) => {
                Value::Float(a.value(row))
            }
            ColumnValues::Str(a) if row < a.len() && a.is_valid(row) => {
                Value::Str(a.value(row).to_owned())
            }
            _ => Value::Unit,
        }
    }
}

/// The five kinds of [`Value`], as a column type maps to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Every value is `()`.
    Unit,
    /// `bool`.
    Bool,
    /// `INT`.
    Int,
    /// `FLOAT`.
    Float,
    /// String.
    Str,
}

/// What a column of `data_type` reads as (the table in the module docs; the same answer
/// [`column_value`] gives); `None` for a type the language does not read natively.
pub fn value_type(data_type: &DataType) -> Option<ValueType> {
    Some(match data_type {
        DataType::Null => ValueType::Unit,
        DataType::Boolean => ValueType::Bool,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Timestamp(..)
        | DataType::Date32 => ValueType::Int,
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => ValueType::Float,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Date64 => {
            ValueType::Str
        }
        DataType::Dictionary(_, values) => return value_type(values),
        _ => return None,
    })
}

/// A whole column as rule values (the table in the module docs); `Err` names a type rules
/// cannot read.
pub fn column_value(array: &dyn Array) -> Result<ColumnValues, String> {
    let cast = |to: &DataType| {
        arrow::compute::cast(array, to)
            .map_err(|e| format!("cannot read {} as {to}: {e}", array.data_type()))
    };
    Ok(match array.data_type() {
        DataType::Null => ColumnValues::Unit(array.len()),
        DataType::Boolean => ColumnValues::Bool(array.as_boolean().clone()),
        DataType::Int64 => ColumnValues::Int(array.as_primitive::<Int64Type>().clone()),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            // Safe casting turns UInt64 values above i64::MAX into nulls.
            ColumnValues::Int(cast(&DataType::Int64)?.as_primitive::<Int64Type>().clone())
        }
        DataType::Float64 => ColumnValues::Float(array.as_primitive().clone()),
        DataType::Float16
        | DataType::Float32
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => {
            ColumnValues::Float(cast(&DataType::Float64)?.as_primitive().clone())
        }
        DataType::Utf8 => ColumnValues::Str(array.as_string::<i32>().clone()),
        DataType::LargeUtf8 | DataType::Utf8View => {
            ColumnValues::Str(cast(&DataType::Utf8)?.as_string::<i32>().clone())
        }
        DataType::Dictionary(_, value_type) => {
            let plain = cast(value_type)?;
            return column_value(plain.as_ref());
        }
        DataType::Timestamp(unit, _) => ColumnValues::Int(timestamp_micros(array, *unit)),
        // Days, as the Rhai side reads them (not µs of midnight).
        DataType::Date32 => {
            ColumnValues::Int(cast(&DataType::Int64)?.as_primitive::<Int64Type>().clone())
        }
        // Arrow's display text, as the Rhai side reads it.
        DataType::Date64 => ColumnValues::Str(display_strings(array)?),
        other => return Err(format!("columns of type {other} cannot be read by rules")),
    })
}

/// Every value of `array` as Arrow displays it (the Rhai side's reading of types it has
/// no native value for); nulls stay null.
fn display_strings(array: &dyn Array) -> Result<StringArray, String> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let f = ArrayFormatter::try_new(array, &FormatOptions::default())
        .map_err(|e| format!("cannot display {}: {e}", array.data_type()))?;
    Ok((0..array.len())
        .map(|i| array.is_valid(i).then(|| f.value(i).to_string()))
        .collect())
}

/// Timestamps of any unit as µs; `array` must be a timestamp array of `unit`.
fn timestamp_micros(array: &dyn Array, unit: TimeUnit) -> Int64Array {
    match unit {
        TimeUnit::Microsecond => {
            let a = array.as_primitive::<TimestampMicrosecondType>();
            Int64Array::new(a.values().clone(), a.nulls().cloned())
        }
        TimeUnit::Millisecond => {
            map_checked(array.as_primitive::<TimestampMillisecondType>(), |ms| {
                ms.checked_mul(1_000)
            })
        }
        TimeUnit::Second => map_checked(array.as_primitive::<TimestampSecondType>(), |s| {
            s.checked_mul(1_000_000)
        }),
        TimeUnit::Nanosecond => {
            map_checked(array.as_primitive::<TimestampNanosecondType>(), |ns| {
                Some(ns.div_euclid(1_000))
            })
        }
    }
}

/// Maps every valid value; `None` results become nulls.
fn map_checked<T: arrow::datatypes::ArrowPrimitiveType>(
    array: &arrow::array::PrimitiveArray<T>,
    f: impl Fn(T::Native) -> Option<i64>,
) -> Int64Array {
    let mut values = Vec::with_capacity(array.len());
    let mut valid = Vec::with_capacity(array.len());
    for i in 0..array.len() {
        let v = if array.is_valid(i) {
            f(array.value(i))
        } else {
            None
        };
        values.push(v.unwrap_or(0));
        valid.push(v.is_some());
    }
    let nulls = NullBuffer::from(valid);
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    Int64Array::new(ScalarBuffer::from(values), nulls)
}

/// The value of `array` at `row`, by the same mapping as [`column_value`] (common types
/// are read directly; others through a one-row [`column_value`], so the two never
/// disagree).
pub fn value_at(array: &ArrayRef, row: usize) -> Result<Value, String> {
    if row >= array.len() {
        return Ok(Value::Unit);
    }
    if array.is_null(row) {
        return Ok(Value::Unit);
    }
    Ok(match array.data_type() {
        DataType::Utf8 => Value::Str(array.as_string::<i32>().value(row).to_owned()),
        DataType::Float64 => Value::Float(
            array
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(row),
        ),
        DataType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Value::Int(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        _ => column_value(array.slice(row, 1).as_ref())?.value(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_parts_match_chrono() {
        use chrono::{Datelike, Timelike};
        for us in [
            0i64,
            1,
            -1,
            DAY_US - 1,
            1_767_225_600_000_000,
            -86_400_000_001,
            1_767_312_000_123_456,
            253_402_300_799_000_000,
            -62_135_596_800_000_000,
        ] {
            let t = chrono::DateTime::from_timestamp_micros(us).unwrap();
            assert_eq!(
                time_of_micros(TimeFn::Hour, us),
                i64::from(t.hour()),
                "{us}"
            );
            assert_eq!(
                time_of_micros(TimeFn::Minute, us),
                i64::from(t.minute()),
                "{us}"
            );
            assert_eq!(
                time_of_micros(TimeFn::DayOfWeek, us),
                i64::from(t.weekday().num_days_from_monday()),
                "{us}"
            );
        }
    }

    #[test]
    fn value_type_agrees_with_column_value() {
        use arrow::datatypes::{IntervalUnit, TimeUnit};
        let types = [
            DataType::Null,
            DataType::Boolean,
            DataType::Int8,
            DataType::UInt64,
            DataType::Float16,
            DataType::Decimal128(10, 2),
            DataType::Utf8View,
            DataType::LargeUtf8,
            DataType::Timestamp(TimeUnit::Nanosecond, Some("+01:00".into())),
            DataType::Date32,
            DataType::Date64,
            DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)),
            DataType::Time64(TimeUnit::Microsecond),
            DataType::Interval(IntervalUnit::DayTime),
            DataType::Binary,
        ];
        for t in types {
            let read = column_value(arrow::array::new_empty_array(&t).as_ref()).ok();
            let read = read.map(|c| match c {
                ColumnValues::Unit(_) => ValueType::Unit,
                ColumnValues::Bool(_) => ValueType::Bool,
                ColumnValues::Int(_) => ValueType::Int,
                ColumnValues::Float(_) => ValueType::Float,
                ColumnValues::Str(_) => ValueType::Str,
            });
            assert_eq!(read, value_type(&t), "{t}");
        }
    }

    #[test]
    fn operator_table() {
        use Value::*;
        assert!(equals(&Unit, &Unit));
        assert!(!equals(&Unit, &Int(0)));
        assert!(equals(&Int(1), &Float(1.0)));
        assert!(!equals(&Float(f64::NAN), &Float(f64::NAN)));
        assert!(!compare(BinaryOp::Ne, &Float(f64::NAN), &Float(f64::NAN)));
        assert!(equals(&Float(f64::NAN), &Float(0.0)));
        assert!(!equals(&Float(f64::INFINITY), &Float(f64::INFINITY)));
        assert!(equals(&Float(-0.0), &Int(0)));
        assert!(equals(&Float(10_000.000_000_000_002), &Int(10_000)));
        assert!(!compare(
            BinaryOp::Gt,
            &Float(10_000.000_000_000_002),
            &Float(10_000.0)
        ));
        assert!(equals(&Float(1e-300), &Float(0.0)));
        assert!(compare(
            BinaryOp::Ne,
            &Int(9_007_199_254_740_993),
            &Int(9_007_199_254_740_992)
        ));
        assert!(!compare(BinaryOp::Lt, &Unit, &Unit));
        assert!(!compare(BinaryOp::Le, &Unit, &Unit));
        assert!(compare(BinaryOp::Ne, &Str("1".into()), &Int(1)));
        assert!(!compare(BinaryOp::Gt, &Str("1".into()), &Int(0)));
        assert!(compare(BinaryOp::Lt, &Bool(false), &Bool(true)));
        assert!(compare(BinaryOp::Lt, &Int(1), &Float(1.5)));
        assert!(arithmetic(BinaryOp::Add, &Int(1), &Unit).is_err());
        assert!(arithmetic(BinaryOp::Div, &Int(1), &Int(0)).is_err());
        assert_eq!(
            arithmetic(BinaryOp::Div, &Int(1), &Float(0.0)),
            Ok(Float(f64::INFINITY))
        );
        assert_eq!(arithmetic(BinaryOp::Rem, &Int(-7), &Int(2)), Ok(Int(-1)));
        assert!(arithmetic(BinaryOp::Mul, &Int(i64::MAX), &Int(2)).is_err());
        assert!(negate(&Int(i64::MIN)).is_err());
        assert_eq!(time_part(TimeFn::Hour, &Str("nope".into())), Ok(Unit));
        assert_eq!(
            time_part(TimeFn::Hour, &Str("2026-01-01T03:04:05+01:00".into())),
            Ok(Int(2))
        );
        assert!(time_part(TimeFn::Hour, &Float(1.0)).is_err());
    }
}
