//! Hand-written JSON output for the hot path: strings, numbers and ISO-8601 times
//! appended straight to a byte buffer.

/// For each byte: 0 when it can be copied as is, else the character after `\` (`u` for
/// the `\u00XX` form).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Two-digit decimal strings `00`..`99`.
static DIGITS2: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// Appends `s` as a quoted JSON string.
#[inline]
pub fn write_str(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    write_str_body(s, out);
    out.push(b'"');
}

/// Whether any of the 8 bytes of `v` is a control character, `"` or `\\` (SWAR: the
/// high bit of a byte survives only where the byte matched).
#[inline]
fn chunk_needs_escape(v: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = v.wrapping_sub(ONES * 0x20) & !v;
    let q = v ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = v ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (below_space | quote | backslash) & HIGH != 0
}

/// Whether `s` has any byte that JSON strings must escape; 8 bytes at a time, since
/// most values have none.
#[inline]
fn needs_escape(s: &[u8]) -> bool {
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if chunk_needs_escape(v) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| ESCAPE[b as usize] != 0)
}

/// Appends `s` escaped, without quotes.
#[inline]
pub fn write_str_body(s: &[u8], out: &mut Vec<u8>) {
    if !needs_escape(s) {
        out.extend_from_slice(s);
        return;
    }
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let e = ESCAPE[b as usize];
        if e == 0 {
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        if e == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.push(b'\\');
            out.push(e);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

/// Appends an integer.
#[inline]
pub fn write_int<I: itoa::Integer>(v: I, out: &mut Vec<u8>) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// Appends a float; JSON has no NaN or infinity, so those become `null`.
///
/// Values with at most two decimals (amounts, the common case) are written from their
/// integer cents, which gives the same text as the shortest round-trip form at a
/// fraction of the cost: `cents / 100.0` is the double nearest to the decimal, so the
/// text parses back to exactly `v`.
#[inline]
pub fn write_f64(v: f64, out: &mut Vec<u8>) {
    let cents = (v * 100.0).round();
    if cents.abs() < 9.0e15 && cents / 100.0 == v && !(v == 0.0 && v.is_sign_negative()) {
        let c = cents.abs() as u64;
        if v < 0.0 {
            out.push(b'-');
        }
        write_int(c / 100, out);
        let frac = (c % 100) as usize;
        out.push(b'.');
        if frac.is_multiple_of(10) {
            out.push(b'0' + (frac / 10) as u8);
        } else {
            out.extend_from_slice(&DIGITS2[frac]);
        }
        return;
    }
    if v.is_finite() {
        let mut b = ryu::Buffer::new();
        out.extend_from_slice(b.format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` for a day number, when the year has four digits.
pub fn date_bytes(days: i64) -> Option<[u8; 10]> {
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let y = y as usize;
    let mut b = *b"0000-00-00";
    b[0..2].copy_from_slice(&DIGITS2[y / 100]);
    b[2..4].copy_from_slice(&DIGITS2[y % 100]);
    b[5..7].copy_from_slice(&DIGITS2[m as usize]);
    b[8..10].copy_from_slice(&DIGITS2[d as usize]);
    Some(b)
}

/// Formats timestamps as `YYYY-MM-DDTHH:MM:SS[.fff…]Z`, caching the date part, since
/// consecutive records usually share a day.
#[derive(Debug, Default)]
pub struct TimeWriter {
    day: Option<(i64, [u8; 10])>,
}

impl TimeWriter {
    /// Appends `value` in `units_per_sec` (1, 1e3, 1e6, 1e9) with `frac_digits`
    /// (0, 3, 6, 9) fractional digits, quoted. Years outside 0–9999 are written as
    /// epoch milliseconds (a number), which Elasticsearch's default date format accepts.
    #[inline]
    pub fn write(&mut self, value: i64, units_per_sec: i64, frac_digits: u32, out: &mut Vec<u8>) {
        let secs = value.div_euclid(units_per_sec);
        let frac = value.rem_euclid(units_per_sec);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as usize;
        let date = match self.day {
            Some((d, b)) if d == days => b,
            _ => match date_bytes(days) {
                Some(b) => {
                    self.day = Some((days, b));
                    b
                }
                None => {
                    let millis = value.saturating_mul(1000) / units_per_sec;
                    write_int(millis, out);
                    return;
                }
            },
        };
        out.push(b'"');
        out.extend_from_slice(&date);
        out.push(b'T');
        out.extend_from_slice(&DIGITS2[sod / 3600]);
        out.push(b':');
        out.extend_from_slice(&DIGITS2[sod / 60 % 60]);
        out.push(b':');
        out.extend_from_slice(&DIGITS2[sod % 60]);
        if frac_digits > 0 {
            out.push(b'.');
            let mut buf = [b'0'; 9];
            let mut f = frac as u64;
            for i in (0..frac_digits as usize).rev() {
                buf[i] = b'0' + (f % 10) as u8;
                f /= 10;
            }
            out.extend_from_slice(&buf[..frac_digits as usize]);
        }
        out.extend_from_slice(b"Z\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_like_serde_json() {
        for s in [
            "plain",
            "quote \" back \\ slash",
            "ctl \n\r\t\u{1}\u{1f}",
            "ünï €",
        ] {
            let mut out = Vec::new();
            write_str(s.as_bytes(), &mut out);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn the_fast_escape_check_agrees_with_the_table() {
        for b in 0u8..=255 {
            for pos in 0..9 {
                let mut s = vec![b'a'; 9];
                s[pos] = b;
                assert_eq!(
                    needs_escape(&s),
                    ESCAPE[b as usize] != 0,
                    "byte {b} at {pos}"
                );
            }
        }
    }

    #[test]
    fn times_are_iso_8601_utc() {
        let mut w = TimeWriter::default();
        let mut out = Vec::new();
        w.write(1_700_000_000_123_456, 1_000_000, 6, &mut out);
        assert_eq!(out, b"\"2023-11-14T22:13:20.123456Z\"");
        out.clear();
        w.write(-1, 1, 0, &mut out);
        assert_eq!(out, b"\"1969-12-31T23:59:59Z\"");
        out.clear();
        w.write(951_782_400_000, 1000, 3, &mut out);
        assert_eq!(out, b"\"2000-02-29T00:00:00.000Z\"");
        out.clear();
        w.write(i64::MAX / 1000, 1000, 3, &mut out);
        assert!(
            out[0].is_ascii_digit(),
            "out-of-range years become epoch millis"
        );
    }

    #[test]
    fn floats_match_the_shortest_round_trip_form() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut values = vec![
            0.0,
            -0.0,
            12.5,
            -3.07,
            0.01,
            100.0,
            1e15,
            1e17,
            0.1 + 0.2,
            1.0 / 3.0,
        ];
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            values.push((state % 10_000_000) as f64 / 100.0);
            values.push(f64::from_bits(state >> 2));
        }
        for v in values {
            if !v.is_finite() {
                continue;
            }
            let mut out = Vec::new();
            write_f64(v, &mut out);
            let text = std::str::from_utf8(&out).unwrap();
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                v.to_bits(),
                "{v} → {text}"
            );
            assert_eq!(
                text,
                ryu::Buffer::new().format_finite(v),
                "same text as ryu for {v}"
            );
        }
    }

    #[test]
    fn floats_without_json_form_become_null() {
        let mut out = Vec::new();
        write_f64(f64::NAN, &mut out);
        out.push(b',');
        write_f64(12.5, &mut out);
        assert_eq!(out, b"null,12.5");
    }
}
