//! Exact decoding of integer columns.
//!
//! arrow-json's own integer decoder reads a number that is not an integer (`5.5`) as a
//! float and casts it, truncating it to `5`. A column the file's head shows as integer
//! that later holds fractions would then be altered without a trace. Here a value
//! becomes an integer only when it is one exactly (`5`, `5.0`, `5e2`, `"5"`); anything
//! else fails its line, which goes to the record DLQ like any other type mismatch.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder};
use arrow::datatypes::{DataType, FieldRef};
use arrow::error::ArrowError;
use arrow::json::reader::{ArrayDecoder, DecoderContext, DecoderFactory, Tape, TapeElement};

/// Hands [`ExactInt64`] to every `Int64` field, at any depth.
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
        Ok(match field.data_type() {
            DataType::Int64 => Some(Box::new(ExactInt64)),
            _ => None,
        })
    }
}

/// Decodes `Int64` values that are integers exactly, and fails on any other.
struct ExactInt64;

/// Largest magnitude a float holds every integer up to (2^53): beyond it, a float
/// written in the file may already have lost digits.
const EXACT_FLOAT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// `text` as an integer, when it is one exactly.
fn exact(text: &str) -> Option<i64> {
    text.parse::<i64>()
        .ok()
        .or_else(|| text.parse().ok().and_then(exact_float))
}

/// `v` as an integer, when it is one exactly.
fn exact_float(v: f64) -> Option<i64> {
    (v.fract() == 0.0 && v.abs() <= EXACT_FLOAT_LIMIT).then_some(v as i64)
}

fn not_an_integer(value: impl std::fmt::Display) -> ArrowError {
    ArrowError::JsonError(format!(
        "{value} is not an integer, but its column is Int64 (inferred from the file's first lines unless reader.ndjson.schema says so); not truncated"
    ))
}

impl ArrayDecoder for ExactInt64 {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let mut out = Int64Builder::with_capacity(pos.len());
        for &p in pos {
            match tape.get(p) {
                TapeElement::Null => out.append_null(),
                TapeElement::Number(idx) | TapeElement::String(idx) => {
                    let text = tape.get_string(idx);
                    out.append_value(exact(text).ok_or_else(|| not_an_integer(text))?);
                }
                TapeElement::I32(v) => out.append_value(i64::from(v)),
                TapeElement::I64(high) => match tape.get(p + 1) {
                    TapeElement::I32(low) => {
                        out.append_value((i64::from(high) << 32) | i64::from(low as u32))
                    }
                    _ => return Err(tape.error(p, "integer")),
                },
                TapeElement::F32(bits) => {
                    let v = f64::from(f32::from_bits(bits));
                    out.append_value(exact_float(v).ok_or_else(|| not_an_integer(v))?);
                }
                TapeElement::F64(high) => match tape.get(p + 1) {
                    TapeElement::F32(low) => {
                        let v = f64::from_bits((u64::from(high) << 32) | u64::from(low));
                        out.append_value(exact_float(v).ok_or_else(|| not_an_integer(v))?);
                    }
                    _ => return Err(tape.error(p, "integer")),
                },
                _ => return Err(tape.error(p, "integer")),
            }
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
            ("9223372036854775807", Some(i64::MAX)),
            ("5.5", None),
            ("1e-3", None),
            ("1e300", None),
            ("9223372036854775808", None),
            ("abc", None),
        ] {
            assert_eq!(exact(text), want, "{text}");
        }
    }
}
