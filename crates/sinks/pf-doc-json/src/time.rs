//! A record's time, read from one column of any time-like type: the one place that
//! decides which columns can name an index (Elasticsearch) or a partition (Parquet).

use arrow::array::{Array, AsArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Date32Type, Date64Type, Int64Type};

use crate::timestamp_ticks;

/// Seconds since the epoch (UTC) of each row of one column.
pub enum RecordTime<'a> {
    /// Timestamps, `Date64` or epoch-millisecond integers.
    Ticks {
        /// Null rows have no time.
        nulls: Option<&'a NullBuffer>,
        /// Raw values.
        values: &'a [i64],
        /// Values per second.
        per_sec: i64,
    },
    /// `Date32` day numbers.
    Days {
        /// Null rows have no time.
        nulls: Option<&'a NullBuffer>,
        /// Days since 1970-01-01.
        values: &'a [i32],
    },
    /// ISO-8601 strings (`YYYY-MM-DD[THH…]`).
    Text(&'a dyn Array),
}

impl<'a> RecordTime<'a> {
    /// Reads times from `array`: a timestamp of any unit, `Date32`, `Date64`, an `Int64`
    /// of epoch milliseconds or an ISO-8601 string column. Any other type is returned
    /// as the error, for the caller to name with its setting.
    pub fn new(array: &'a dyn Array) -> Result<Self, DataType> {
        Ok(match array.data_type() {
            DataType::Timestamp(unit, _) => {
                let (values, per_sec, _) = timestamp_ticks(array, *unit);
                RecordTime::Ticks {
                    nulls: array.nulls(),
                    values,
                    per_sec,
                }
            }
            DataType::Date64 => RecordTime::Ticks {
                nulls: array.nulls(),
                values: array.as_primitive::<Date64Type>().values(),
                per_sec: 1_000,
            },
            DataType::Int64 => RecordTime::Ticks {
                nulls: array.nulls(),
                values: array.as_primitive::<Int64Type>().values(),
                per_sec: 1_000,
            },
            DataType::Date32 => RecordTime::Days {
                nulls: array.nulls(),
                values: array.as_primitive::<Date32Type>().values(),
            },
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => RecordTime::Text(array),
            other => return Err(other.clone()),
        })
    }

    /// Seconds since the epoch of row `row`; `None` when it is null or unparseable.
    pub fn seconds(&self, row: usize) -> Option<i64> {
        match self {
            RecordTime::Ticks {
                nulls,
                values,
                per_sec,
            } => (!nulls.is_some_and(|n| n.is_null(row))).then(|| values[row].div_euclid(*per_sec)),
            RecordTime::Days { nulls, values } => {
                (!nulls.is_some_and(|n| n.is_null(row))).then(|| i64::from(values[row]) * 86_400)
            }
            RecordTime::Text(a) => {
                if a.is_null(row) {
                    return None;
                }
                let s = match a.data_type() {
                    DataType::Utf8 => a.as_string::<i32>().value(row),
                    DataType::LargeUtf8 => a.as_string::<i64>().value(row),
                    _ => a.as_string_view().value(row),
                };
                parse_iso_seconds(s)
            }
        }
    }
}

/// Seconds since the epoch of `YYYY-MM-DD[THH…]` (UTC; the rest is ignored).
pub fn parse_iso_seconds(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = b.get(r)?;
        if !t.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(t).ok()?.parse().ok()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let h = if matches!(b.get(10), Some(b'T' | b' ')) {
        num(11..13).filter(|h| *h < 24).unwrap_or(0)
    } else {
        0
    };
    Some(days_from_civil(y, m as u32, d as u32) * 86_400 + h * 3600)
}

/// (year, month, day) → days since 1970-01-01, proleptic Gregorian (the inverse of
/// [`crate::json::civil_from_days`]).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `hex(xxh3_128(uri ‖ 0x00 ‖ etag-or-""))`: what generated document ids and output
/// file names of one object version start with.
pub fn source_hash_hex(uri: &str, etag: Option<&str>) -> [u8; 32] {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(uri.as_bytes());
    h.update(&[0]);
    h.update(etag.unwrap_or("").as_bytes());
    let digest = h.digest128();
    let mut hex = [0u8; 32];
    for (i, byte) in digest.to_be_bytes().iter().enumerate() {
        hex[2 * i] = b"0123456789abcdef"[(byte >> 4) as usize];
        hex[2 * i + 1] = b"0123456789abcdef"[(byte & 0xf) as usize];
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMillisecondArray};

    #[test]
    fn iso_strings_and_timestamps_give_seconds() {
        assert_eq!(
            parse_iso_seconds("1970-01-02T01:00:00Z"),
            Some(86_400 + 3600)
        );
        assert_eq!(
            parse_iso_seconds("2000-03-01"),
            Some(days_from_civil(2000, 3, 1) * 86_400)
        );
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(parse_iso_seconds("yesterday"), None);

        let ts = TimestampMillisecondArray::from(vec![Some(86_400_500), None]);
        let t = RecordTime::new(&ts).unwrap();
        assert_eq!((t.seconds(0), t.seconds(1)), (Some(86_400), None));
        let text = StringArray::from(vec!["2000-03-01", "soon"]);
        let t = RecordTime::new(&text).unwrap();
        assert_eq!(t.seconds(0), Some(11_017 * 86_400));
        assert_eq!(t.seconds(1), None);
        let floats = arrow::array::Float64Array::from(vec![1.0]);
        assert_eq!(RecordTime::new(&floats).err(), Some(DataType::Float64));
    }

    #[test]
    fn source_hashes_differ_by_version() {
        let a = source_hash_hex("s3://b/k", Some("e1"));
        assert_eq!(a, source_hash_hex("s3://b/k", Some("e1")));
        assert_ne!(a, source_hash_hex("s3://b/k", Some("e2")));
        assert!(a.iter().all(u8::is_ascii_hexdigit));
    }
}
