//! Exact decoding of integer columns.
//!
//! arrow-json's own integer decoder reads a number that is not an integer (`5.5`) as a
//! float and casts it, truncating it to `5`. A column the file's head shows as integer
//! (or a configured schema declares so) that later holds fractions would then be altered
//! without a trace. Here a value becomes an integer only when it is one exactly (`5`,
//! `5.0`, `5e2`, `"5"`) and fits the column's type; anything else fails its line, which
//! goes to the record DLQ like any other type mismatch.

use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::{ArrayRef, PrimitiveBuilder};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, FieldRef, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow::error::ArrowError;
use arrow::json::reader::{ArrayDecoder, DecoderContext, DecoderFactory, Tape, TapeElement};

/// Hands an [`ExactInteger`] decoder to every integer field, at any depth.
#[derive(Debug)]
pub(crate) struct ExactIntegers;

impl ExactIntegers {
    pub(crate) fn factory() -> Arc<dyn DecoderFactory> {
        Arc::new(ExactIntegers)
    }
}

impl DecoderFactory for ExactIntegers {
    fn make_default_decoder(
        &self,
        _ctx: &DecoderContext,
        field: &FieldRef,
        _is_nullable: bool,
    ) -> Result<Option<Box<dyn ArrayDecoder>>, ArrowError> {
        fn exact<T>() -> Option<Box<dyn ArrayDecoder>>
        where
            T: ArrowPrimitiveType,
            T::Native: TryFrom<i128>,
        {
            Some(Box::new(ExactInteger::<T>(PhantomData)))
        }
        Ok(match field.data_type() {
            DataType::Int8 => exact::<Int8Type>(),
            DataType::Int16 => exact::<Int16Type>(),
            DataType::Int32 => exact::<Int32Type>(),
            DataType::Int64 => exact::<Int64Type>(),
            DataType::UInt8 => exact::<UInt8Type>(),
            DataType::UInt16 => exact::<UInt16Type>(),
            DataType::UInt32 => exact::<UInt32Type>(),
            DataType::UInt64 => exact::<UInt64Type>(),
            _ => None,
        })
    }
}

/// Decodes values of integer type `T` that are integers exactly and fit `T`, and fails
/// on any other.
struct ExactInteger<T>(PhantomData<fn() -> T>);

/// Largest magnitude a float holds every integer up to (2^53): beyond it, a float
/// written in the file may already have lost digits.
const EXACT_FLOAT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// `text` as an integer, when it is one exactly.
fn exact(text: &str) -> Option<i128> {
    // i64 first: nearly every value fits, and it parses faster than i128.
    text.parse::<i64>()
        .map(i128::from)
        .or_else(|_| text.parse::<i128>())
        .ok()
        .or_else(|| text.parse().ok().and_then(exact_float))
}

/// `v` as an integer, when it is one exactly.
fn exact_float(v: f64) -> Option<i128> {
    (v.fract() == 0.0 && v.abs() <= EXACT_FLOAT_LIMIT).then_some(v as i128)
}

fn not_an_integer(value: impl std::fmt::Display, column: &DataType) -> ArrowError {
    ArrowError::JsonError(format!(
        "{value} is not an integer that fits {column}, the column's type (inferred from the file's first lines unless reader.ndjson.schema says so); not truncated"
    ))
}

impl<T> ArrayDecoder for ExactInteger<T>
where
    T: ArrowPrimitiveType,
    T::Native: TryFrom<i128>,
{
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let mut out = PrimitiveBuilder::<T>::with_capacity(pos.len());
        for &p in pos {
            // The value, or its text for the error (built only on failure).
            let value: Result<i128, String> = match tape.get(p) {
                TapeElement::Null => {
                    out.append_null();
                    continue;
                }
                TapeElement::Number(idx) | TapeElement::String(idx) => {
                    let text = tape.get_string(idx);
                    exact(text).ok_or_else(|| text.to_owned())
                }
                TapeElement::I32(v) => Ok(i128::from(v)),
                TapeElement::I64(high) => match tape.get(p + 1) {
                    TapeElement::I32(low) => {
                        Ok(i128::from((i64::from(high) << 32) | i64::from(low as u32)))
                    }
                    _ => return Err(tape.error(p, "integer")),
                },
                TapeElement::F32(bits) => {
                    let v = f64::from(f32::from_bits(bits));
                    exact_float(v).ok_or_else(|| v.to_string())
                }
                TapeElement::F64(high) => match tape.get(p + 1) {
                    TapeElement::F32(low) => {
                        let v = f64::from_bits((u64::from(high) << 32) | u64::from(low));
                        exact_float(v).ok_or_else(|| v.to_string())
                    }
                    _ => return Err(tape.error(p, "integer")),
                },
                _ => return Err(tape.error(p, "integer")),
            };
            let native = value.and_then(|v| T::Native::try_from(v).map_err(|_| v.to_string()));
            out.append_value(native.map_err(|shown| not_an_integer(shown, &T::DATA_TYPE))?);
        }
        Ok(Arc::new(out.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_integers_pass() {
        for (text, want) in [
            ("5", Some(5)),
            ("-12", Some(-12)),
            ("5.0", Some(5)),
            ("5e2", Some(500)),
            ("9223372036854775807", Some(i128::from(i64::MAX))),
            ("18446744073709551615", Some(i128::from(u64::MAX))),
            ("5.5", None),
            ("1e-3", None),
            ("1e300", None),
            ("abc", None),
        ] {
            assert_eq!(exact(text), want, "{text}");
        }
    }
}
